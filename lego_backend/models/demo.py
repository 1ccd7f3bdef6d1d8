"""Tiny demo models in the formats real users have, built offline and deterministically.

The checkpoint is a miniature SD1.5: same architecture family and key layout (ComfyUI single-
file, original LDM keys), same latent space shape (4 channels, 8x downsampling, scaling factor
0.18215), same CLIP vocabulary and 77 positions, just narrow and shallow. So the code that
serves a real SD1.5 checkpoint is the code that serves these. Modules are built with diffusers /
transformers under a fixed seed, converted to the LDM layout by our own mapping (ldm_export.py)
and written by our deterministic safetensors writer: same seed => byte-identical files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lego_backend.models.configs import load_shipped_config
from lego_backend.models.demo_extra import EXTRA_FILES, write_demo_extras
from lego_backend.models.demo_lora import write_demo_loras
from lego_backend.models.ldm_export import clip_to_ldm, controlnet_to_ldm, unet_to_ldm, vae_to_ldm
from lego_backend.models.safetensors_io import save_tensors

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel

DEMO_CHECKPOINT = "lego-demo-sd15.safetensors"
DEMO_LORA = "lego-demo-lora.safetensors"
DEMO_LORA_PEFT = "lego-demo-lora-peft.safetensors"
DEMO_CONTROLNET = "lego-demo-controlnet.safetensors"
DEMO_VAE = "lego-demo-vae.safetensors"
DEMO_FILES = {  # result key -> path relative to the models dir
    "checkpoint": f"checkpoints/{DEMO_CHECKPOINT}",
    "lora": f"loras/{DEMO_LORA}",
    "lora_peft": f"loras/{DEMO_LORA_PEFT}",
    "controlnet": f"controlnet/{DEMO_CONTROLNET}",
    "vae": f"vae/{DEMO_VAE}",
    **EXTRA_FILES,  # upscaler, embedding (demo_extra.py)
}

# Overrides of the shipped SD1.5 configs. Channel counts stay multiples of 32 so SD's
# GroupNorm(32) and 8-head attention apply unchanged; only CLIP's head count needs a hint.
UNET_OVERRIDES: dict[str, Any] = {
    "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}
VAE_OVERRIDES: dict[str, Any] = {"block_out_channels": [32, 32, 32, 32], "layers_per_block": 1}
CLIP_OVERRIDES: dict[str, Any] = {"hidden_size": 32, "num_hidden_layers": 2,
                                  "num_attention_heads": 4, "intermediate_size": 64}
CONTROLNET_OVERRIDES: dict[str, Any] = {
    "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "conditioning_embedding_out_channels": [8, 8, 16, 16],
}
ZERO_CONV_STD = 0.05  # real zero-convs start at 0; ours are non-zero so control is visible


@dataclass
class DemoModules:
    """The diffusers / transformers modules the demo files are written from."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL  # the checkpoint's VAE
    text_encoder: CLIPTextModel
    controlnet: ControlNetModel
    standalone_vae: AutoencoderKL  # vae/lego-demo-vae.safetensors (another seed)


def _config(component: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {**load_shipped_config("sd15", component), **overrides}


def build_demo_modules(seed: int = 0) -> DemoModules:
    """Build the demo modules under fixed seeds without touching the global RNG state."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(_config("unet", UNET_OVERRIDES))
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL.from_config(_config("vae", VAE_OVERRIDES))
        torch.manual_seed(seed + 2)
        clip_cfg = {k: v for k, v in _config("text_encoder", CLIP_OVERRIDES).items()
                    if k not in ("architectures", "model_type")}
        text_encoder = CLIPTextModel(CLIPTextConfig(**clip_cfg))
        torch.manual_seed(seed + 3)
        controlnet = ControlNetModel.from_config(_config("controlnet", CONTROLNET_OVERRIDES))
        with torch.no_grad():
            zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                          controlnet.controlnet_cond_embedding.conv_out]
            for conv in zero_convs:
                conv.weight.normal_(0.0, ZERO_CONV_STD)
                conv.bias.normal_(0.0, ZERO_CONV_STD)
        torch.manual_seed(seed + 4)
        standalone_vae = AutoencoderKL.from_config(_config("vae", VAE_OVERRIDES))
    mods = DemoModules(unet, vae, text_encoder, controlnet, standalone_vae)
    for m in (mods.unet, mods.vae, mods.text_encoder, mods.controlnet, mods.standalone_vae):
        m.eval().requires_grad_(False)
    return mods


def _metadata(seed: int, kind: str, **extra: str) -> dict[str, str]:
    return {"format": "pt", "lego.demo": "1", "lego.seed": str(seed), "lego.kind": kind, **extra}


def build_demo_models(models_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write all demo files under `models_dir` (ComfyUI layout); returns key -> path for the
    keys of DEMO_FILES. Same seed => byte-identical files."""
    models_dir = Path(models_dir)
    mods = build_demo_modules(seed)
    paths = {key: models_dir / rel for key, rel in DEMO_FILES.items()}
    checkpoint = {**unet_to_ldm(mods.unet), **vae_to_ldm(mods.vae),
                  **clip_to_ldm(mods.text_encoder)}
    save_tensors(checkpoint, paths["checkpoint"], _metadata(
        seed, "checkpoint", **{
            "lego.prediction_type": "epsilon",
            "lego.text_encoder.num_attention_heads": str(CLIP_OVERRIDES["num_attention_heads"]),
        }))
    save_tensors(vae_to_ldm(mods.standalone_vae, prefix=""), paths["vae"], _metadata(seed, "vae"))
    save_tensors(controlnet_to_ldm(mods.controlnet), paths["controlnet"],
                 _metadata(seed, "controlnet"))
    write_demo_loras(mods.unet, mods.text_encoder, paths["lora"], paths["lora_peft"],
                     seed=seed, metadata=_metadata(seed, "lora"))
    write_demo_extras(models_dir, seed, CLIP_OVERRIDES["hidden_size"], _metadata(seed, "extra"))
    return paths


def demo_models_present(models_dir: Path) -> bool:
    """True when every demo file exists under `models_dir`."""
    return all((Path(models_dir) / rel).is_file() for rel in DEMO_FILES.values())
