"""A tiny SDXL-architecture demo checkpoint, built offline and deterministically.

Same family as SDXL base 1.0 in every way the serving code can see: the single-file key layout
(`conditioner.embedders.0.transformer.*` CLIP ViT-L, `conditioner.embedders.1.model.*` OpenCLIP
bigG with `text_projection`, UNet with `label_emb` for the pooled-text + size embedding,
`first_stage_model.*` VAE), per-token context = both encoders' penultimate hidden states side by
side, a pooled projection, six size numbers of 256 sinusoidal features each, linear transformer
projections, several transformer layers per block, no attention at the top level, and latents
with the SDXL scaling factor 0.13025. Just narrow and shallow, with random weights: it draws noise,
not pictures. Same seed => byte-identical file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lego_backend.models.configs import load_shipped_config
from lego_backend.models.ldm_export import clip_to_ldm, unet_to_ldm, vae_to_ldm
from lego_backend.models.ldm_keys_sdxl import (
    CLIP_G_PREFIX,
    CLIP_L_PREFIX,
    open_clip_from_transformers,
)
from lego_backend.models.safetensors_io import save_tensors

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

DEMO_SDXL_CHECKPOINT = "lego-demo-sdxl.safetensors"
DEMO_SDXL_FILES = {"checkpoint_sdxl": f"checkpoints/{DEMO_SDXL_CHECKPOINT}"}

HEAD_WIDTH = 16  # channels per UNet attention head (real SDXL: 64); declared in the metadata
CLIP_L_OVERRIDES: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2,
                                    "num_attention_heads": 4, "intermediate_size": 64,
                                    "projection_dim": 32}
CLIP_G_OVERRIDES: dict[str, Any] = {"hidden_size": 64, "num_hidden_layers": 3,
                                    "num_attention_heads": 4, "intermediate_size": 128,
                                    "projection_dim": 64}
_CONTEXT = CLIP_L_OVERRIDES["hidden_size"] + CLIP_G_OVERRIDES["hidden_size"]
UNET_OVERRIDES: dict[str, Any] = {
    "block_out_channels": [32, 64], "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2],
    "attention_head_dim": [32 // HEAD_WIDTH, 64 // HEAD_WIDTH],
    "cross_attention_dim": _CONTEXT,
    # pooled bigG projection + 6 size numbers x 256 features, as in SDXL base
    "projection_class_embeddings_input_dim": CLIP_G_OVERRIDES["projection_dim"] + 6 * 256,
}
VAE_OVERRIDES: dict[str, Any] = {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1}


@dataclass
class SdxlDemoModules:
    """The diffusers / transformers modules the demo SDXL checkpoint is written from."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    clip_l: CLIPTextModel
    clip_g: CLIPTextModelWithProjection


def _config(component: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {**load_shipped_config("sdxl", component), **overrides}


def _clip_config(component: str, overrides: dict[str, Any]) -> Any:
    from transformers import CLIPTextConfig

    cfg = {k: v for k, v in _config(component, overrides).items()
           if k not in ("architectures", "model_type")}
    return CLIPTextConfig(**cfg)


def build_sdxl_demo_modules(seed: int = 0) -> SdxlDemoModules:
    """Build the modules under fixed seeds without touching the global RNG state. Seeds are
    offset from the SD1.5 demo's (seed + 100...) so the two never share weights by accident."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 100)
        unet = UNet2DConditionModel.from_config(_config("unet", UNET_OVERRIDES))
        torch.manual_seed(seed + 101)
        vae = AutoencoderKL.from_config(_config("vae", VAE_OVERRIDES))
        torch.manual_seed(seed + 102)
        clip_l = CLIPTextModel(_clip_config("text_encoder", CLIP_L_OVERRIDES))
        torch.manual_seed(seed + 103)
        clip_g = CLIPTextModelWithProjection(_clip_config("text_encoder_2", CLIP_G_OVERRIDES))
    mods = SdxlDemoModules(unet, vae, clip_l, clip_g)
    for m in (mods.unet, mods.vae, mods.clip_l, mods.clip_g):
        m.eval().requires_grad_(False)
    return mods


def sdxl_checkpoint_tensors(mods: SdxlDemoModules) -> dict[str, torch.Tensor]:
    """The modules as one SDXL single-file state dict (original key layout)."""
    clip_g = {CLIP_G_PREFIX + k: v
              for k, v in open_clip_from_transformers(mods.clip_g.state_dict()).items()}
    return {**unet_to_ldm(mods.unet), **vae_to_ldm(mods.vae),
            **clip_to_ldm(mods.clip_l, prefix=CLIP_L_PREFIX), **clip_g}


def build_sdxl_demo(models_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write the SDXL demo checkpoint under `models_dir` (ComfyUI layout); returns key -> path
    for the keys of DEMO_SDXL_FILES. Same seed => byte-identical file."""
    path = Path(models_dir) / DEMO_SDXL_FILES["checkpoint_sdxl"]
    metadata = {
        "format": "pt", "lego.demo": "1", "lego.seed": str(seed), "lego.kind": "checkpoint",
        "lego.prediction_type": "epsilon",
        # shapes cannot tell how widths split into heads: the tiny sizes say it here
        "lego.unet.head_dim": str(HEAD_WIDTH),
        "lego.text_encoder.num_attention_heads": str(CLIP_L_OVERRIDES["num_attention_heads"]),
        "lego.text_encoder_2.num_attention_heads": str(CLIP_G_OVERRIDES["num_attention_heads"]),
    }
    save_tensors(sdxl_checkpoint_tensors(build_sdxl_demo_modules(seed)), path, metadata)
    return {"checkpoint_sdxl": path}


def sdxl_demo_present(models_dir: Path) -> bool:
    return all((Path(models_dir) / rel).is_file() for rel in DEMO_SDXL_FILES.values())
