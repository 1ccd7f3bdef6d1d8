"""What a checkpoint is, read cheaply from its safetensors header (or a diffusers folder's
JSON files): model family, prediction type and which components it holds.

Family is the ARCHITECTURE family (key layout and text encoder kind), not the size: our tiny
demo checkpoint is "sd15" because it is laid out and conditioned like SD1.5, and the tiny SDXL
demo is "sdxl" (two text encoders under `conditioner.embedders.`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lego_backend.errors import ModelLoadError
from lego_backend.models.ldm_keys_sdxl import SDXL_PREFIX
from lego_backend.models.ldm_keys_vae import CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX
from lego_backend.models.safetensors_io import read_header
from lego_backend.models.store import is_diffusers_folder

SUPPORTED_FAMILIES = ("sd15", "sdxl")
# Metadata keys that may state the prediction type: ours, then the SAI ModelSpec one.
_PREDICTION_KEYS = ("lego.prediction_type", "modelspec.prediction_type")


@dataclass(frozen=True)
class CheckpointInfo:
    """Facts about one checkpoint, for choosing loaders, samplers and service identity."""

    path: Path  # the file or diffusers folder
    layout: str  # "single_file" (original LDM keys) or "diffusers" (folder)
    family: str  # "sd15", "sd2", "sdxl", "sdxl_refiner" or "unknown"
    prediction_type: str  # "epsilon" or "v_prediction"
    has_unet: bool  # UNet weights present
    has_vae: bool  # VAE weights present
    has_text_encoder: bool  # CLIP text encoder weights present
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors __metadata__

    def require_supported(self) -> None:
        if self.family not in SUPPORTED_FAMILIES:
            raise ModelLoadError(f"{self.path.name}: model family '{self.family}' is not "
                                 f"supported yet (supported: {', '.join(SUPPORTED_FAMILIES)})")


def _prediction_from_text(value: str) -> str | None:
    v = value.strip().lower()
    if v in ("v", "v_prediction", "v-prediction", "vpred", "v_pred"):
        return "v_prediction"
    if v in ("eps", "epsilon", "noise"):
        return "epsilon"
    return None


def _family(keys: set[str], shapes: dict[str, tuple[int, ...]]) -> str:
    if any(k.startswith(SDXL_PREFIX + "0.model.") for k in keys):
        return "sdxl_refiner"  # bigG alone as embedder 0, aesthetic-score conditioning
    if any(k.startswith(SDXL_PREFIX) for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    proj_in = [s for k, s in shapes.items()
               if k.startswith(UNET_PREFIX) and k.endswith(".proj_in.weight")]
    k_proj = [s for k, s in shapes.items()
              if k.startswith(UNET_PREFIX) and k.endswith("attn2.to_k.weight")]
    if (proj_in and len(proj_in[0]) == 2) or (k_proj and k_proj[0][1] == 1024):
        return "sd2"  # linear proj_in / 1024-wide context: SD2.x UNet without its text encoder
    if any(k.startswith((CLIP_PREFIX, UNET_PREFIX + "input_blocks.")) for k in keys):
        return "sd15"
    return "unknown"


def _detect_folder(path: Path) -> CheckpointInfo:
    def read(rel: str) -> dict[str, object]:
        try:
            data = json.loads((path / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    unet = read("unet/config.json")
    scheduler = read("scheduler/scheduler_config.json")
    context = unet.get("cross_attention_dim")
    if unet.get("addition_embed_type") == "text_time":
        family = "sdxl"
    elif context == 1024 or unet.get("use_linear_projection"):
        family = "sd2"
    else:
        family = "sd15" if unet else "unknown"
    prediction = _prediction_from_text(str(scheduler.get("prediction_type", ""))) or "epsilon"
    return CheckpointInfo(path=path, layout="diffusers", family=family,
                          prediction_type=prediction, has_unet=(path / "unet").is_dir(),
                          has_vae=(path / "vae").is_dir(),
                          has_text_encoder=(path / "text_encoder").is_dir())


def detect_checkpoint(path: Path) -> CheckpointInfo:
    """Inspect a single-file checkpoint (header only) or a diffusers folder."""
    path = Path(path)
    if is_diffusers_folder(path):
        return _detect_folder(path)
    header = read_header(path)
    keys = set(header.shapes)
    prediction = "epsilon"
    if "v_pred" in keys:  # ComfyUI's marker tensor for v-prediction checkpoints
        prediction = "v_prediction"
    for mkey in _PREDICTION_KEYS:
        found = _prediction_from_text(header.metadata.get(mkey, ""))
        if found:
            prediction = found
            break
    return CheckpointInfo(
        path=path, layout="single_file", family=_family(keys, header.shapes),
        prediction_type=prediction,
        has_unet=any(k.startswith(UNET_PREFIX) for k in keys),
        has_vae=any(k.startswith(VAE_PREFIX) for k in keys),
        has_text_encoder=any(k.startswith((CLIP_PREFIX, SDXL_PREFIX)) for k in keys),
        metadata=header.metadata,
    )
