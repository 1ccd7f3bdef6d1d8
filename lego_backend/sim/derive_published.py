"""Builds profiles/gpu-published.json from the DiffServe whole-request latencies (copied with
attribution in profiles/sources/). Run `python -m lego_backend.sim.derive_published` after
changing the sources or the assumptions below; a test checks the shipped file is current.

Derivation, per batch size b, for a 50-step CFG model L50(b) and its distilled sibling at the
same resolution Lk(b) (k steps, no CFG, same UNet architecture, same text encoder and VAE):
    L50(b) = ED(b) + 50 * s(b)           s = one CFG step (2b UNet rows)
    Lk(b)  = ED(b) + k * s(b) / 2         no CFG: half the rows; UNet time ~ linear in rows
so s(b) = (L50(b) - Lk(b)) / (50 - k/2) and ED(b) = Lk(b) - k * s(b) / 2, where ED is text
encode + VAE decode. Pairs: SD1.5 with SD-Turbo (k=1, 512 px), SDXL with SDXL-Lightning (k=2,
1024 px). Everything the CSVs do not contain is in ASSUMED and marked so in the output."""
from __future__ import annotations

import csv
import json
from importlib import resources
from types import MappingProxyType
from typing import Any

STEPS = 50
# (kind, csv file, heavy label, light label, light steps, resolution)
PAIRS = (("sd15", "stable_diffusion_runtimes_sdturbo.csv", "sdv15", "sdturbo", 1, 512),
         ("sdxl", "stable_diffusion_runtimes_sdxlltn.csv", "sdv15", "sdturbo", 2, 1024))
DID_NOT_FIT = 100000.0
GIB = 1 << 30
# Not in the published latencies; each is stated where it is used and flagged in the output.
ASSUMED = MappingProxyType({
    "encode_share_of_ED": 0.05,  # CLIP text encoding is small next to the VAE decode
    "controlnet_step_fraction": 0.45,  # ControlNet = UNet encoder + middle block copy
    "load_bandwidth_bytes_per_s": 2.0e9,  # NVMe/host -> GPU, cold load
    # fp16 file sizes of the public checkpoints (Hugging Face model repos): SD1.5 unet 1.72 GB,
    # text encoder 246 MB, VAE 167 MB, ControlNet 723 MB, a typical rank-128 LoRA 144 MB; SDXL
    # unet 5.14 GB, both text encoders 1.63 GB, VAE 167 MB, ControlNet 2.50 GB, LoRA 456 MB
    "weights_bytes": {
        "sd15": {"unet": 1_720_000_000, "text_encoder": 246_000_000, "vae": 167_000_000,
                 "controlnet": 723_000_000, "lora": 144_000_000},
        "sdxl": {"unet": 5_140_000_000, "text_encoder": 1_630_000_000, "vae": 167_000_000,
                 "controlnet": 2_500_000_000, "lora": 456_000_000},
    },
    # peak working memory per request in a batch (fp16, CFG, attention at full resolution)
    "activation_bytes_per_sample": {"sd15": GIB // 2, "sdxl": 2 * GIB},
})


def _latencies(filename: str) -> dict[str, dict[int, float]]:
    """label -> batch -> avg_runtime ms (the Accel column does not change the numbers)."""
    src = resources.files("lego_backend.sim.profiles").joinpath("sources", "diffserve", filename)
    out: dict[str, dict[int, float]] = {}
    with src.open("r", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["Model"], {})[int(row["batchsize"])] = float(row["avg_runtime"])
    return out


def _model(kind: str, filename: str, heavy: str, light: str, k: int, res: int
           ) -> dict[str, Any]:
    lat = _latencies(filename)
    rows = []
    for b in sorted(lat[heavy]):
        l50, lk = lat[heavy][b], lat[light].get(b, DID_NOT_FIT)
        if l50 >= DID_NOT_FIT or lk >= DID_NOT_FIT:
            continue  # did not fit on the GPU: max batch is the last row that did
        s = (l50 - lk) / (STEPS - k / 2)
        ed = lk - k * s / 2
        enc = ed * ASSUMED["encode_share_of_ED"]
        rows.append({"batch": b, "step_ms": round(s, 3),
                     "controlnet_step_ms": round(s * ASSUMED["controlnet_step_fraction"], 3),
                     "encode_ms": round(enc, 3), "decode_ms": round(ed - enc, 3),
                     "published_request_ms": l50, "published_distilled_ms": lk})
    weights = ASSUMED["weights_bytes"][kind]
    bw = ASSUMED["load_bandwidth_bytes_per_s"]
    return {"kind": kind, "resolution": res, "default_steps": STEPS, "rows": rows,
            "weights_bytes": weights,
            "load_ms": {c: round(1000.0 * n / bw, 1) for c, n in weights.items()},
            "activation_bytes_per_sample": ASSUMED["activation_bytes_per_sample"][kind]}


def build() -> dict[str, Any]:
    return {
        "schema": "lego-sim-profile/1", "name": "gpu-published", "device": "GPU (as published)",
        "derived_from_published": True,
        "sources": [
            ("DiffServe (Ahmad et al., MLSys 2025), artifact github.com/qizhengyang98/DiffServe "
             "profiling/stable_diffusion_runtimes_sdturbo.csv (SD1.5 50 steps, SD-Turbo 1 step)"),
            ("same artifact, profiling/stable_diffusion_runtimes_sdxlltn.csv (SDXL 50 steps, "
             "SDXL-Lightning 2 steps; rows labelled sdv15/sdturbo)"),
            ("step counts: DiffServe src/worker/model.py; weights bytes (ASSUMED from public "
             "fp16 file sizes): Hugging Face repos runwayml/stable-diffusion-v1-5, stabilityai/"
             "stable-diffusion-xl-base-1.0, lllyasviel/sd-controlnet-canny, diffusers/"
             "controlnet-canny-sdxl-1.0")],
        "derivation": (__doc__ or "").strip(),
        "assumed": {k: v for k, v in ASSUMED.items()},
        "models": [_model(*pair) for pair in PAIRS],
    }


if __name__ == "__main__":
    from pathlib import Path
    out = Path(__file__).parent / "profiles" / "gpu-published.json"
    out.write_text(json.dumps(build(), indent=1) + "\n", "utf-8")
    print(f"wrote {out}")
