"""Upscaler service: an ESRGAN-family model (UPSCALE_MODEL) applied to images, tile by tile so a
large image never needs the whole feature map of the network in memory at once."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models.esrgan import load_upscaler
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes

TILE = 512  # input pixels per tile side (ComfyUI's default tile for model upscaling)
OVERLAP = 32  # tiles overlap so seams are averaged away


class UpscalerService(ModelService):
    """ops: upscale(image handle [B,H,W,3] in 0..1) -> image handle [B,H*s,W*s,3] in 0..1."""

    model: Any = None

    def load(self) -> None:
        self.model = load_upscaler(self.spec.path)

    def unload(self) -> None:
        self.model = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    @property
    def scale(self) -> int:
        return int(self.model.cfg.scale)

    @torch.inference_mode()
    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        out = []
        for c in calls:
            if c.op != "upscale":
                raise ValueError(f"upscaler has no op {c.op!r}")
            px = self.store.get(c.args["image"])[..., :3].permute(0, 3, 1, 2).float()
            limit = c.args.get("max_pixels")  # the prompt's pixel budget, checked before allocating
            total = px.shape[0] * px.shape[2] * px.shape[3] * self.scale ** 2
            if limit is not None and total > limit:
                raise ValueError(f"upscaling to {total} pixels (width x height x batch) exceeds "
                                 f"this server's limit of {limit} (lego serve --max-pixels)")
            up = self._tiled(px).clamp(0.0, 1.0)
            out.append(self.store.put(up.permute(0, 2, 3, 1).contiguous()))
        return out

    def _tiled(self, px: torch.Tensor) -> torch.Tensor:
        h, w = px.shape[-2:]
        if h <= TILE and w <= TILE:
            return self.model(px)
        s = self.scale
        acc = torch.zeros(px.shape[0], 3, h * s, w * s)
        weight = torch.zeros(1, 1, h * s, w * s)
        step = TILE - OVERLAP
        for y in range(0, max(1, h - OVERLAP), step):
            for x in range(0, max(1, w - OVERLAP), step):
                y0, x0 = min(y, max(0, h - TILE)), min(x, max(0, w - TILE))
                tile = px[..., y0:y0 + TILE, x0:x0 + TILE]
                res = self.model(tile)
                th, tw = res.shape[-2:]
                acc[..., y0 * s:y0 * s + th, x0 * s:x0 * s + tw] += res
                weight[..., y0 * s:y0 * s + th, x0 * s:x0 * s + tw] += 1
        return acc / weight.clamp_min(1)
