"""Latent nodes: empty latents, resizing, noise masks. Cheap local steps."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from node_library.inputs import COMBO, FLOAT, INT, MAX_RESOLUTION, OUT, SOCKET
from node_library.limits import check_pixels, ensure_pixels
from node_library.resize import fill_missing_side, upscale
from node_library.spec import NodeOutput, NodeSpec
from node_library.values import Latent

LATENT_CHANNELS = 4
LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
CROP = ("disabled", "center")


def empty_latent(ctx: Any, width: int, height: int, batch_size: int) -> NodeOutput:
    z = torch.zeros(batch_size, LATENT_CHANNELS, height // 8, width // 8)
    return NodeOutput((Latent(ctx.put(z)),))


def _resized(ctx: Any, samples: Latent, width: int, height: int, method: str,
             crop: str) -> Latent:
    z = ctx.tensor(samples.samples)
    ensure_pixels(ctx, max(1, width) * 8, max(1, height) * 8, z.shape[0])
    out = upscale(z, max(1, width), max(1, height), method, crop)
    return replace(samples, samples=ctx.put(out.contiguous()))


def latent_upscale(ctx: Any, samples: Latent, upscale_method: str, width: int, height: int,
                   crop: str) -> NodeOutput:
    z = ctx.tensor(samples.samples)
    if width == 0 and height == 0:
        return NodeOutput((samples,))
    h, w = z.shape[-2:]
    width, height = fill_missing_side(w, h, width, height, minimum=64)
    return NodeOutput((_resized(ctx, samples, width // 8, height // 8, upscale_method, crop),))


def latent_upscale_by(ctx: Any, samples: Latent, upscale_method: str,
                      scale_by: float) -> NodeOutput:
    z = ctx.tensor(samples.samples)
    w, h = round(z.shape[-1] * scale_by), round(z.shape[-2] * scale_by)
    return NodeOutput((_resized(ctx, samples, w, h, upscale_method, "disabled"),))


def set_noise_mask(ctx: Any, samples: Latent, mask: Any) -> NodeOutput:
    m = ctx.tensor(mask)
    m = m.reshape(-1, m.shape[-2], m.shape[-1])
    return NodeOutput((replace(samples, noise_mask=ctx.put(m)),))


SPECS = [
    NodeSpec("EmptyLatentImage", "Empty Latent Image", "latent",
             (INT("width", 512, 16, MAX_RESOLUTION, step=8,
                  tooltip="The width of the latent images in pixels."),
              INT("height", 512, 16, MAX_RESOLUTION, step=8,
                  tooltip="The height of the latent images in pixels."),
              INT("batch_size", 1, 1, 4096, tooltip="The number of latent images in the batch.")),
             (OUT("LATENT", tooltip="The empty latent image batch."),),
             empty_latent, description="Create a new batch of empty latent images to be "
                                       "denoised via sampling.", validate=check_pixels),
    NodeSpec("LatentUpscale", "Upscale Latent", "latent",
             (SOCKET("samples", "LATENT"), COMBO("upscale_method", LATENT_METHODS),
              INT("width", 512, 0, MAX_RESOLUTION, step=8),
              INT("height", 512, 0, MAX_RESOLUTION, step=8), COMBO("crop", CROP)),
             (OUT("LATENT"),), latent_upscale, validate=check_pixels),
    NodeSpec("LatentUpscaleBy", "Upscale Latent By", "latent",
             (SOCKET("samples", "LATENT"), COMBO("upscale_method", LATENT_METHODS),
              FLOAT("scale_by", 1.5, 0.01, 8.0, step=0.01)),
             (OUT("LATENT"),), latent_upscale_by),
    NodeSpec("SetLatentNoiseMask", "Set Latent Noise Mask", "latent/inpaint",
             (SOCKET("samples", "LATENT"), SOCKET("mask", "MASK")),
             (OUT("LATENT"),), set_noise_mask),
]
