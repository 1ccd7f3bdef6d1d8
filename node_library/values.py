"""The values that flow along a graph's links. Model-typed values (MODEL, CLIP, VAE, CONTROL_NET)
are references to services, not weights: loading a checkpoint node is cheap, and every prompt
naming the same weights reaches the same service (LoRAs travel with the reference and are
applied per request by the service). Tensors are handles."""
from __future__ import annotations

from dataclasses import dataclass, replace

from lego_backend.dataplane.handle import TensorHandle
from lego_backend.services.protocol import AdapterRef, ServiceSpec


@dataclass(frozen=True)
class ModelRef:
    """MODEL: the denoiser of a checkpoint (plus merged LoRAs)."""

    denoiser: ServiceSpec
    prediction_type: str = "epsilon"  # "epsilon" | "v_prediction"
    adapters: tuple[AdapterRef, ...] = ()  # LoRAs, applied in order at run time

    def with_adapter(self, adapter: AdapterRef) -> ModelRef:
        return replace(self, adapters=(*self.adapters, adapter))


@dataclass(frozen=True)
class ClipRef:
    """CLIP: a text encoder (plus merged LoRAs) and the layer to stop at."""

    encoder: ServiceSpec
    clip_skip: int = -1  # ComfyUI's stop_at_clip_layer
    adapters: tuple[AdapterRef, ...] = ()  # LoRAs, applied in order at run time

    def with_adapter(self, adapter: AdapterRef) -> ClipRef:
        return replace(self, adapters=(*self.adapters, adapter))


@dataclass(frozen=True)
class VaeRef:
    """VAE: the autoencoder of a checkpoint or of a standalone VAE file."""

    vae: ServiceSpec


@dataclass(frozen=True)
class ControlNetRef:
    """CONTROL_NET: a ControlNet service."""

    controlnet: ServiceSpec


@dataclass(frozen=True)
class ControlApply:
    """A ControlNet attached to a conditioning entry; `previous` chains several nets."""

    net: ControlNetRef
    hint: TensorHandle  # IMAGE [B, H, W, 3] in 0..1
    strength: float
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: ControlApply | None = None


@dataclass(frozen=True)
class SizeCond:
    """SDXL's size conditioning in pixels (ComfyUI's width, height, crop_w, crop_h,
    target_width, target_height). None = the model's default: width/height the latent's size,
    crops 0, target = width/height (resolved per step in runtime/sdxl_cond.py)."""

    width: int | None = None
    height: int | None = None
    crop_w: int = 0
    crop_h: int = 0
    target_width: int | None = None
    target_height: int | None = None
    aesthetic_score: float | None = None  # refiner models only; base SDXL ignores it


@dataclass(frozen=True)
class CondEntry:
    """One conditioning entry (CONDITIONING is a tuple of them)."""

    cond: TensorHandle  # [1, tokens, dim] text-encoder hidden states
    pooled: TensorHandle | None = None  # [1, dim]
    area: tuple[int, int, int, int] | None = None  # (height, width, y, x) in pixels
    strength: float = 1.0  # weight of this entry where it applies
    control: ControlApply | None = None
    size: SizeCond | None = None  # SDXL size conditioning (None: all defaults)


@dataclass(frozen=True)
class Latent:
    """LATENT: raw VAE latents [B, C, h, w] and an optional inpainting noise mask."""

    samples: TensorHandle
    noise_mask: TensorHandle | None = None  # [B or 1, H, W] in 0..1 (1 = repaint)
    batch_index: tuple[int, ...] | None = None  # seeds' offsets for batched noise
