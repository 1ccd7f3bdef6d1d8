"""Load SD components from ComfyUI single-file checkpoints and diffusers folders, offline.

Single files (original LDM key layout, or diffusers layout for standalone parts) go through
diffusers' single-file machinery: `from_single_file` for UNet / VAE / ControlNet and
`create_diffusers_clip_model_from_ldm` for CLIP, with a config folder WE provide: derived from
the tensor shapes on top of the shipped SD1.5 configs (derive.py) and written to the cache.
Before anything is built, the converted key set is checked against the model's own, because
diffusers (without accelerate) loads with strict=False and would leave missing weights random.

Diffusers folders load with `frompretrained(local_files_only=True, use_safetensors=True)`.
Every loader returns an fp32, eval()-mode module on CPU with requires_grad off (inference only).
Only safetensors is read; pickle files are refused (safetensors_io.ensure_safetensors).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.cache import config_dir
from lego_backend.models.derive import (
    derive_clip_config,
    derive_controlnet_config,
    derive_unet_config,
    derive_vae_config,
    strip_prefix,
)
from lego_backend.models.detect import CheckpointInfo, detect_checkpoint
from lego_backend.models.ldm_keys import layout_from_diffusers_keys, unet_key_to_ldm
from lego_backend.models.ldm_keys_vae import (
    CLIP_PREFIX,
    CONTROLNET_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    clip_key_to_ldm,
    vae_state_to_ldm,
)
from lego_backend.models.load_common import (
    check_keys,
    component_dir,
    diffusers_kwargs,
    finish,
    pretrained,
    single_file,
)
from lego_backend.models.lora import LoraDelta, LoraWeights, load_lora, merge_lora
from lego_backend.models.safetensors_io import load_tensors, read_header
from lego_backend.models.store import is_diffusers_folder
from lego_backend.models.tokenizer import load_clip_tokenizer

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

__all__ = [
    "CheckpointInfo", "LoraDelta", "LoraWeights", "detect_checkpoint", "load_checkpoint_vae",
    "load_controlnet", "load_lora", "load_text_encoder", "load_unet", "load_vae", "merge_lora",
]
Tensors = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- shared steps
def _checkpoint(path: Path, prefix: str, what: str) -> tuple[Tensors, dict[str, str]]:
    """A full checkpoint's tensors under `prefix` (prefix removed) and its metadata."""
    header = read_header(path)
    if not any(k.startswith(prefix) for k in header.shapes):
        raise ModelLoadError(f"{path.name} holds no {what} weights (no '{prefix}*' tensors)")
    detect_checkpoint(path).require_supported()
    return strip_prefix(load_tensors(path, prefixes=(prefix,)), prefix), header.metadata


def _shapes(state: Tensors) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _ldm_shapes(state: Tensors, what: str) -> dict[str, tuple[int, ...]]:
    """Shapes of a diffusers-keyed UNet/ControlNet under their LDM names (for derive.py)."""
    layout = layout_from_diffusers_keys(state)
    try:
        return {unet_key_to_ldm(k, layout): tuple(v.shape) for k, v in state.items()}
    except (KeyError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"{what}: unsupported diffusers UNet layout: {exc}") from exc


# ----------------------------------------------------------------------------- UNet
def _unet_from_state(state: Tensors, hints: dict[str, str], cache_dir: Path | None,
                     what: str) -> UNet2DConditionModel:
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    if "conv_in.weight" in state:  # diffusers layout: derive from the LDM names of its shapes
        config = derive_unet_config(_ldm_shapes(state, what), hints)
        return single_file(UNet2DConditionModel, "unet", config, state, None, cache_dir, what)
    config = derive_unet_config(_shapes(state), hints)

    def convert(sd: Tensors, cfg: dict[str, Any]) -> Tensors:
        return convert_ldm_unet_checkpoint({UNET_PREFIX + k: v for k, v in sd.items()}, cfg)

    return single_file(UNet2DConditionModel, "unet", config, state, convert, cache_dir, what)


def load_unet(path: Path, *, cache_dir: Path | None = None) -> UNet2DConditionModel:
    """The UNet of a checkpoint file, a diffusers folder, or a standalone UNet file
    (diffusion_models/: LDM keys with or without `model.diffusion_model.`, or diffusers keys)."""
    from diffusers import UNet2DConditionModel

    path = Path(path)
    folder = component_dir(path, "unet")
    if folder is not None:
        return pretrained(UNet2DConditionModel, folder, "UNet", **diffusers_kwargs())
    header = read_header(path)
    if any(k.startswith(UNET_PREFIX) for k in header.shapes):
        state, hints = _checkpoint(path, UNET_PREFIX, "UNet")
    elif "input_blocks.0.0.weight" in header.shapes or "conv_in.weight" in header.shapes:
        state, hints = load_tensors(path), header.metadata
    else:
        raise ModelLoadError(f"{path.name} holds no UNet weights")
    return _unet_from_state(state, hints, cache_dir, f"UNet of {path.name}")


# ----------------------------------------------------------------------------- VAE
def _vae_from_state(state: Tensors, hints: dict[str, str], cache_dir: Path | None,
                    what: str, family: str = "sd15") -> AutoencoderKL:
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    if any(k.startswith("encoder.down_blocks.") for k in state):
        try:  # one derivation path: everything via LDM names
            state = vae_state_to_ldm(state)
        except (KeyError, ValueError) as exc:
            raise ModelLoadError(f"{what}: unsupported diffusers VAE layout: {exc}") from exc
    config = derive_vae_config(_shapes(state), hints, family)

    def convert(sd: Tensors, cfg: dict[str, Any]) -> Tensors:
        return convert_ldm_vae_checkpoint({VAE_PREFIX + k: v for k, v in sd.items()}, cfg)

    return single_file(AutoencoderKL, "vae", config, state, convert, cache_dir, what)


def load_checkpoint_vae(path: Path, *, cache_dir: Path | None = None) -> AutoencoderKL:
    """The VAE inside a checkpoint file or diffusers folder."""
    from diffusers import AutoencoderKL

    path = Path(path)
    if is_diffusers_folder(path):
        return pretrained(AutoencoderKL, path / "vae", "VAE", **diffusers_kwargs())
    state, hints = _checkpoint(path, VAE_PREFIX, "VAE")
    return _vae_from_state(state, hints, cache_dir, f"VAE of {path.name}",
                           detect_checkpoint(path).family)


def load_vae(path: Path, *, cache_dir: Path | None = None) -> AutoencoderKL:
    """A standalone VAE (vae/ folder): LDM keys (`encoder.down.*`, optionally under
    `first_stage_model.` or `vae.`), diffusers keys, or a diffusers VAE folder."""
    from diffusers import AutoencoderKL

    path = Path(path)
    folder = component_dir(path, "vae")
    if folder is not None:
        return pretrained(AutoencoderKL, folder, "VAE", **diffusers_kwargs())
    state = load_tensors(path)
    for prefix in (VAE_PREFIX, "vae."):
        if any(k.startswith(prefix) for k in state):
            state = strip_prefix(state, prefix)
    if not any(k.startswith("encoder.") for k in state):
        raise ModelLoadError(f"{path.name} holds no VAE weights")
    return _vae_from_state(state, read_header(path).metadata, cache_dir, f"VAE {path.name}")


# ----------------------------------------------------------------------------- CLIP
def load_text_encoder(path: Path, *, cache_dir: Path | None = None
                      ) -> tuple[CLIPTextModel, CLIPTokenizer]:
    """The CLIP text encoder + tokenizer of a checkpoint file, a diffusers folder, or a
    standalone text-encoder file (text_encoders/: `text_model.*` or flattened keys)."""
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    folder = component_dir(path, "text_encoder")
    if folder is not None:
        model = pretrained(CLIPTextModel, folder, "text encoder")
        tok_dir = path / "tokenizer" if is_diffusers_folder(path) else None
        return model, load_clip_tokenizer(cache_dir, tok_dir)
    header = read_header(path)
    if any(k.startswith(CLIP_PREFIX) for k in header.shapes):
        state, hints = _checkpoint(path, CLIP_PREFIX, "CLIP text encoder")
    else:
        state, hints = load_tensors(path), header.metadata
    state = {clip_key_to_ldm(k): v for k, v in state.items()}
    if "text_model.embeddings.token_embedding.weight" not in state:
        raise ModelLoadError(f"{path.name} holds no CLIP text encoder weights")
    config = derive_clip_config(_shapes(state), hints)
    with torch.device("meta"):
        expected = set(CLIPTextModel(CLIPTextConfig(**config)).state_dict())
    # keys compared without `text_model.`: transformers >= 5.6 flattened CLIPTextModel
    norm = {k.removeprefix("text_model.") for k in state if not k.endswith("position_ids")}
    check_keys({k.removeprefix("text_model.") for k in expected}, norm, f"CLIP of {path.name}")
    folder = config_dir(cache_dir, {"text_encoder": config})
    try:
        model = create_diffusers_clip_model_from_ldm(
            CLIPTextModel, {CLIP_PREFIX + k: v for k, v in state.items()},
            subfolder="text_encoder", config=str(folder), local_files_only=True)
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"CLIP of {path.name}: cannot load: {exc}") from exc
    return finish(model), load_clip_tokenizer(cache_dir)


# ----------------------------------------------------------------------------- ControlNet
def load_controlnet(path: Path, *, cache_dir: Path | None = None) -> ControlNetModel:
    """A ControlNet: original layout (`control_model.*` or bare `input_blocks/zero_convs/...`),
    diffusers single-file layout, or a diffusers ControlNet folder."""
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return pretrained(ControlNetModel, path, "ControlNet", **diffusers_kwargs())
        raise ModelLoadError(f"{path} is not a ControlNet folder (no config.json)")
    state = load_tensors(path)
    hints = read_header(path).metadata
    what = f"ControlNet {path.name}"
    if "controlnet_cond_embedding.conv_in.weight" in state:  # diffusers layout
        config = derive_controlnet_config(_ldm_shapes(state, what), hints)
        return single_file(ControlNetModel, "controlnet", config, state, None, cache_dir, what)
    if any(k.startswith(CONTROLNET_PREFIX) for k in state):
        state = strip_prefix(state, CONTROLNET_PREFIX)
    if "input_hint_block.0.weight" not in state:
        raise ModelLoadError(f"{path.name} is not a ControlNet (no input_hint_block); "
                             "T2I-Adapters and control LoRAs are not supported")
    config = derive_controlnet_config(_shapes(state), hints)

    def convert(sd: Tensors, cfg: dict[str, Any]) -> Tensors:
        return convert_controlnet_checkpoint({CONTROLNET_PREFIX + k: v for k, v in sd.items()},
                                             cfg)

    return single_file(ControlNetModel, "controlnet", config, state, convert, cache_dir, what)
