"""ControlNet service (SwiftDiffusion's split): residuals for the denoiser, called once per step,
a separate service so its weights are shared and it can scale and batch on its own."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes


class ControlNetService(ModelService):
    """ops: residuals(x, t, context, hint, strength) -> (down handles list, mid handle).
    hint: [n, 3, H, W] in 0..1 at pixel resolution (8x the latent)."""

    model: Any = None

    def load(self) -> None:
        self.model = loading.load_controlnet(self.spec.path).eval().requires_grad_(False)

    def unload(self) -> None:
        self.model = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    @torch.inference_mode()
    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        results = []
        for c in calls:
            a = c.args
            get = self.store.get
            down, mid = self.model(get(a["x"]), get(a["t"]), encoder_hidden_states=get(a["context"]),
                                   controlnet_cond=get(a["hint"]),
                                   conditioning_scale=float(a["strength"]), return_dict=False)
            results.append(([self.store.put(d) for d in down], self.store.put(mid)))
        return results
