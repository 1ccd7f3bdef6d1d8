"""Load the two text encoders of an SDXL checkpoint, offline: CLIP ViT-L (`CLIPTextModel`) and
OpenCLIP bigG (`CLIPTextModelWithProjection`, whose projection gives SDXL's pooled output), as
diffusers' `StableDiffusionXLPipeline` holds them. The UNet and VAE of an SDXL file load through
loading.load_unet / load_checkpoint_vae (configs derived from shapes recognise SDXL by itself).

Single files go through diffusers' `create_diffusers_clip_model_from_ldm` with configs derived
from the tensor shapes on top of the shipped SDXL configs; the converted key set is verified
first (diffusers would otherwise leave missing weights random). Diffusers folders load their
`text_encoder/` and `text_encoder_2/` with from_pretrained. One tokenizer serves both: SDXL's
two encoders share CLIP's vocabulary and differ only in padding (services/text_encoder_sdxl.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.cache import config_dir
from lego_backend.models.derive import derive_clip_config, strip_prefix
from lego_backend.models.detect import detect_checkpoint
from lego_backend.models.ldm_keys_sdxl import CLIP_G_PREFIX, CLIP_L_PREFIX
from lego_backend.models.ldm_keys_vae import clip_key_to_ldm
from lego_backend.models.load_common import check_keys, finish, pretrained
from lego_backend.models.safetensors_io import load_tensors, read_header
from lego_backend.models.store import is_diffusers_folder
from lego_backend.models.tokenizer import load_clip_tokenizer

if TYPE_CHECKING:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

Tensors = dict[str, torch.Tensor]


@dataclass
class SdxlTextEncoders:
    clip_l: CLIPTextModel  # per-token context, first 768 (demo: 32) features
    clip_g: CLIPTextModelWithProjection  # per-token context, rest; pooled = its projection
    tokenizer: CLIPTokenizer


def _expected_keys(cls: Any, config: dict[str, Any]) -> set[str]:
    from transformers import CLIPTextConfig

    with torch.device("meta"):
        model = cls(CLIPTextConfig(**config))
    # transformers >= 5.6 flattened CLIPTextModel: compare without `text_model.`
    return {k.removeprefix("text_model.") for k in model.state_dict()
            if not k.endswith("position_ids")}


def _build(cls: Any, checkpoint: Tensors, component: str, config: dict[str, Any],
           cache_dir: Path | None, what: str) -> Any:
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    folder = config_dir(cache_dir, {component: config})
    try:
        model = create_diffusers_clip_model_from_ldm(cls, checkpoint, subfolder=component,
                                                     config=str(folder), local_files_only=True)
    except (KeyError, ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(f"{what}: cannot load: {exc}") from exc
    return finish(model)


def _clip_l(path: Path, hints: dict[str, str], cache_dir: Path | None) -> CLIPTextModel:
    from transformers import CLIPTextModel

    what = f"CLIP-L of {path.name}"
    state = {clip_key_to_ldm(k): v for k, v in
             strip_prefix(load_tensors(path, prefixes=(CLIP_L_PREFIX,)), CLIP_L_PREFIX).items()
             if not k.endswith("position_ids")}
    if "text_model.embeddings.token_embedding.weight" not in state:
        raise ModelLoadError(f"{path.name} holds no SDXL CLIP-L weights ({CLIP_L_PREFIX}*)")
    config = derive_clip_config({k: tuple(v.shape) for k, v in state.items()}, hints,
                                family="sdxl", component="text_encoder")
    check_keys(_expected_keys(CLIPTextModel, config),
               {k.removeprefix("text_model.") for k in state}, what)
    return _build(CLIPTextModel, {CLIP_L_PREFIX + k: v for k, v in state.items()},
                  "text_encoder", config, cache_dir, what)


def _clip_g(path: Path, hints: dict[str, str], cache_dir: Path | None
            ) -> CLIPTextModelWithProjection:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextModelWithProjection

    what = f"OpenCLIP-G of {path.name}"
    checkpoint = load_tensors(path, prefixes=(CLIP_G_PREFIX,))
    if CLIP_G_PREFIX + "text_projection" not in checkpoint:
        raise ModelLoadError(f"{path.name} holds no SDXL OpenCLIP-G text projection "
                             f"({CLIP_G_PREFIX}text_projection)")
    # diffusers' own OpenCLIP -> transformers mapping, run once here to derive and verify; the
    # projection's presence means `text_model` (only a fallback for its width) is never read.
    converted = convert_open_clip_checkpoint(None, checkpoint, prefix=CLIP_G_PREFIX)
    shapes = {k: tuple(v.shape) for k, v in converted.items()}
    if "text_model.embeddings.token_embedding.weight" not in shapes:
        raise ModelLoadError(f"{what}: no token embedding ({CLIP_G_PREFIX}token_embedding)")
    config = derive_clip_config(shapes, hints, family="sdxl", component="text_encoder_2")
    check_keys(_expected_keys(CLIPTextModelWithProjection, config),
               {k.removeprefix("text_model.") for k in converted}, what)
    return _build(CLIPTextModelWithProjection, checkpoint, "text_encoder_2", config, cache_dir,
                  what)


def load_sdxl_text_encoders(path: Path, *, cache_dir: Path | None = None) -> SdxlTextEncoders:
    """Both text encoders (and the shared tokenizer) of an SDXL checkpoint file or diffusers
    SDXL folder."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    path = Path(path)
    if is_diffusers_folder(path):
        tok_dir = path / "tokenizer"
        return SdxlTextEncoders(
            pretrained(CLIPTextModel, path / "text_encoder", "text encoder"),
            pretrained(CLIPTextModelWithProjection, path / "text_encoder_2", "text encoder 2"),
            load_clip_tokenizer(cache_dir, tok_dir if tok_dir.is_dir() else None))
    info = detect_checkpoint(path)
    info.require_supported()
    if info.family != "sdxl":
        raise ModelLoadError(f"{path.name} is a '{info.family}' checkpoint, not SDXL")
    hints = read_header(path).metadata
    return SdxlTextEncoders(_clip_l(path, hints, cache_dir), _clip_g(path, hints, cache_dir),
                            load_clip_tokenizer(cache_dir))
