"""The shapes of the demo-shapes model: SD1.5's architecture (diffusers configs on top of the
shipped SD1.5 ones), narrow and shallow enough to train on two CPU cores in minutes.

Latents keep SD1.5's format (4 channels, 8x downsampling, the engine's fixed scaling factor
0.18215): a 64x64 image is an 8x8x4 latent. CLIP keeps the real 49408-token vocabulary and 77
positions so users type ordinary prompts; only the width and depth are small.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from lego_backend.models.configs import load_shipped_config

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel


@dataclass(frozen=True)
class Architecture:
    """Overrides of the SD1.5 configs. Group-norm group counts and head counts that differ from
    SD's are written into the checkpoint's metadata, which is how the loader learns them."""

    vae: dict[str, Any] = field(default_factory=lambda: {
        "block_out_channels": [16, 16, 32, 64], "layers_per_block": 1, "norm_num_groups": 16})
    unet: dict[str, Any] = field(default_factory=lambda: {
        "block_out_channels": [64, 64], "layers_per_block": 1, "cross_attention_dim": 64,
        "attention_head_dim": 4, "norm_num_groups": 32,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]})
    text: dict[str, Any] = field(default_factory=lambda: {
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 256})

    def metadata(self) -> dict[str, str]:
        """The derive.py hints this architecture needs."""
        return {
            "lego.unet.attention_head_dim": str(self.unet["attention_head_dim"]),
            "lego.unet.norm_num_groups": str(self.unet["norm_num_groups"]),
            "lego.vae.norm_num_groups": str(self.vae["norm_num_groups"]),
            "lego.text_encoder.num_attention_heads": str(self.text["num_attention_heads"]),
        }

    @staticmethod
    def tiny() -> Architecture:
        """A much smaller variant for smoke tests of the training loop."""
        return Architecture(
            vae={"block_out_channels": [8, 8, 8, 8], "layers_per_block": 1, "norm_num_groups": 8},
            unet={"block_out_channels": [32, 32], "layers_per_block": 1,
                  "cross_attention_dim": 32, "attention_head_dim": 4, "norm_num_groups": 8,
                  "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]},
            text={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "intermediate_size": 64})


def build_vae(arch: Architecture, seed: int) -> AutoencoderKL:
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKL.from_config({**load_shipped_config("sd15", "vae"), **arch.vae})


def build_unet(arch: Architecture, seed: int) -> UNet2DConditionModel:
    from diffusers import UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DConditionModel.from_config(
            {**load_shipped_config("sd15", "unet"), **arch.unet})


def build_text_encoder(arch: Architecture, seed: int) -> CLIPTextModel:
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = {k: v for k, v in {**load_shipped_config("sd15", "text_encoder"), **arch.text}.items()
           if k not in ("architectures", "model_type")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPTextModel(CLIPTextConfig(**cfg))
