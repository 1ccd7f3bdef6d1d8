"""Model upscaling (UPSCALE_MODEL: a reference to an upscaler service) and scaling an image to
a pixel budget."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lego_backend.services.protocol import ServiceSpec
from node_library.inputs import COMBO, FLOAT, OUT, SOCKET
from node_library.limits import ensure_pixels
from node_library.resize import upscale
from node_library.spec import NodeOutput, NodeSpec

IMAGE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
UPSCALE_MODULE = "comfy_extras.nodes_upscale_model"


@dataclass(frozen=True)
class UpscaleModelRef:
    """UPSCALE_MODEL: the upscaler service for one weights file."""

    upscaler: ServiceSpec


def load_upscale_model(ctx: Any, model_name: str) -> NodeOutput:
    path = ctx.models.resolve("upscale_models", model_name)
    spec = ServiceSpec("upscaler", ctx.models.identity(path), path, family="esrgan",
                       source="file")
    return NodeOutput((UpscaleModelRef(spec),))


def upscale_with_model(ctx: Any, upscale_model: UpscaleModelRef, image: Any) -> NodeOutput:
    return NodeOutput((ctx.call(upscale_model.upscaler, "upscale", image=image,
                                max_pixels=getattr(ctx, "max_pixels", None)),))


def total_pixels_size(width: int, height: int, megapixels: float) -> tuple[int, int]:
    """The size with the same aspect ratio and about `megapixels` * 1024 * 1024 pixels."""
    scale = math.sqrt(megapixels * 1024 * 1024 / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_to_total_pixels(ctx: Any, image: Any, upscale_method: str,
                          megapixels: float) -> NodeOutput:
    px = ctx.tensor(image)
    width, height = total_pixels_size(px.shape[2], px.shape[1], megapixels)
    ensure_pixels(ctx, width, height, px.shape[0])
    out = upscale(px.permute(0, 3, 1, 2), width, height, upscale_method, "disabled")
    return NodeOutput((ctx.put(out.permute(0, 2, 3, 1).clamp(0, 1).contiguous()),))


SPECS = [
    NodeSpec("UpscaleModelLoader", "Load Upscale Model", "loaders",
             (COMBO("model_name", choices_from="upscale_models"),),
             (OUT("UPSCALE_MODEL"),), load_upscale_model, python_module=UPSCALE_MODULE),
    NodeSpec("ImageUpscaleWithModel", "Upscale Image (using Model)", "image/upscaling",
             (SOCKET("upscale_model", "UPSCALE_MODEL"), SOCKET("image", "IMAGE")),
             (OUT("IMAGE"),), upscale_with_model, python_module=UPSCALE_MODULE,
             services=("upscaler",)),
    NodeSpec("ImageScaleToTotalPixels", "Scale Image to Total Pixels", "image/upscaling",
             (SOCKET("image", "IMAGE"), COMBO("upscale_method", IMAGE_METHODS),
              FLOAT("megapixels", 1.0, 0.01, 16.0, step=0.01)),
             (OUT("IMAGE"),), scale_to_total_pixels,
             python_module="comfy_extras.nodes_post_processing"),
]
