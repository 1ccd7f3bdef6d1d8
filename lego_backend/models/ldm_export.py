"""diffusers / transformers modules -> state dicts in the original single-file (LDM) layout,
i.e. the layout ComfyUI users' `.safetensors` checkpoints, VAEs and ControlNets have.
"""
from __future__ import annotations

import torch

from lego_backend.models.ldm_keys import layout_from_diffusers_keys, unet_key_to_ldm
from lego_backend.models.ldm_keys_vae import (
    CLIP_PREFIX,
    CONTROLNET_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    clip_key_to_ldm,
    vae_state_to_ldm,
)

Tensors = dict[str, torch.Tensor]


def _state(module: torch.nn.Module) -> Tensors:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def unet_to_ldm(unet: torch.nn.Module, prefix: str = UNET_PREFIX) -> Tensors:
    """UNet2DConditionModel -> `model.diffusion_model.*` tensors."""
    state = _state(unet)
    layout = layout_from_diffusers_keys(state)
    return {prefix + unet_key_to_ldm(k, layout): v for k, v in state.items()}


def controlnet_to_ldm(controlnet: torch.nn.Module, prefix: str = CONTROLNET_PREFIX) -> Tensors:
    """ControlNetModel -> `control_model.*` tensors (the layout of lllyasviel's files)."""
    return unet_to_ldm(controlnet, prefix)


def vae_to_ldm(vae: torch.nn.Module, prefix: str = VAE_PREFIX) -> Tensors:
    """AutoencoderKL -> `first_stage_model.*` tensors ("" for a standalone VAE file)."""
    return {prefix + k: v for k, v in vae_state_to_ldm(_state(vae)).items()}


def clip_to_ldm(text_encoder: torch.nn.Module, prefix: str = CLIP_PREFIX) -> Tensors:
    """CLIPTextModel -> `cond_stage_model.transformer.text_model.*` tensors."""
    return {prefix + clip_key_to_ldm(k): v for k, v in _state(text_encoder).items()
            if not k.endswith("position_ids")}
