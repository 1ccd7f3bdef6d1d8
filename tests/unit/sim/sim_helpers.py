"""A toy profile: one model kind whose step costs 10 ms + 2 ms per extra request (batching pays
off), encode and decode 5 ms. Small numbers keep simulated runs fast and easy to reason about."""
from __future__ import annotations

from typing import Any


def toy_doc() -> dict[str, Any]:
    rows = [{"batch": b, "step_ms": 10 + 2 * (b - 1), "controlnet_step_ms": 5 + (b - 1),
             "encode_ms": 5, "decode_ms": 5} for b in (1, 2, 4, 8)]
    comp = ("unet", "text_encoder", "vae", "controlnet", "lora")
    return {"schema": "lego-sim-profile/1", "name": "toy",
            "models": [{"kind": "toy", "resolution": 64, "default_steps": 10, "rows": rows,
                        "weights_bytes": {c: 1000 for c in comp},
                        "load_ms": {c: 1.0 for c in comp},
                        "activation_bytes_per_sample": 10}]}
