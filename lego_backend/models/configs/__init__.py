"""Configs the project ships for real model families (SD1.5, SDXL base), as small JSON data files.

They are the diffusers/transformers-format configs of the published Stable Diffusion 1.5 and
SDXL 1.0 base components (SDXL: `text_encoder` is CLIP ViT-L, `text_encoder_2` OpenCLIP bigG
with projection), with every field that loading derives from tensor shapes written out
explicitly, so a checkpoint with real shapes derives exactly these dicts. Flat file names (no sub-folders)
keep them inside the package's `*.json` package-data pattern.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import Any


def load_shipped_config(family: str, component: str) -> dict[str, Any]:
    """A fresh copy of a shipped config, e.g. ("sd15", "unet")."""
    name = f"{family}_{component}.json"
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
