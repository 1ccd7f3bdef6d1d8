"""Trained modules -> one single-file checkpoint in the original SD key layout, fp16 to halve the
size (the loader casts to fp32), plus the hints the loader needs (derive.py HINT_KEYS)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lego_backend.demo_train.architecture import Architecture
from lego_backend.models.ldm_export import clip_to_ldm, unet_to_ldm, vae_to_ldm
from lego_backend.models.safetensors_io import save_tensors


def checkpoint_tensors(unet: Any, vae: Any, text_encoder: Any) -> dict[str, torch.Tensor]:
    tensors = {**unet_to_ldm(unet), **vae_to_ldm(vae), **clip_to_ldm(text_encoder)}
    return {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in tensors.items()}


def write_checkpoint(path: Path, unet: Any, vae: Any, text_encoder: Any, arch: Architecture,
                     info: dict[str, str], prediction: str = "epsilon") -> Path:
    # The prediction type travels in the metadata, where the loader (models/detect.py) and
    # other tools (modelspec.prediction_type) read it.
    metadata = {"format": "pt", "lego.demo": "shapes", "lego.kind": "checkpoint",
                "lego.prediction_type": prediction, "modelspec.prediction_type": prediction,
                **arch.metadata(), **info}
    save_tensors(checkpoint_tensors(unet, vae, text_encoder), Path(path), metadata)
    return Path(path)
