"""SDXL's extra UNet inputs per row: the pooled text vector and six size numbers (time_ids).

time_ids are, in this order: original height, original width, crop top, crop left, target
height, target width, in pixels. Unset sizes follow ComfyUI: width/height are the size of the
latent being sampled (x 8), crops 0, target = width/height. So a plain CLIPTextEncode on an SDXL
checkpoint conditions on the size actually generated."""
from __future__ import annotations

from typing import Any

import torch

from node_library.values import CondEntry, SizeCond


def time_ids(size: SizeCond | None, height_px: int, width_px: int) -> torch.Tensor:
    """[6] float32 size numbers for one conditioning entry."""
    s = size or SizeCond()
    width = s.width if s.width is not None else width_px
    height = s.height if s.height is not None else height_px
    target_w = s.target_width if s.target_width is not None else width
    target_h = s.target_height if s.target_height is not None else height
    return torch.tensor([height, width, s.crop_h, s.crop_w, target_h, target_w],
                        dtype=torch.float32)


def added_cond_args(ctx: Any, entries: list[CondEntry], rows_each: int,
                    pixels: tuple[int, int]) -> dict[str, Any]:
    """Denoiser-call args `text_embeds` [n, d] and `time_ids` [n, 6] (handles), `rows_each`
    rows per entry, in the order the entries' context rows are sent."""
    pooled, sizes = [], []
    for entry in entries:
        if entry.pooled is None:
            raise ValueError("SDXL conditioning needs a pooled text output; this conditioning "
                             "has none (was it encoded by a non-SDXL CLIP?)")
        pooled.append(ctx.tensor(entry.pooled).reshape(1, -1).expand(rows_each, -1))
        sizes.append(time_ids(entry.size, *pixels).expand(rows_each, -1))
    return {"text_embeds": ctx.put(torch.cat(pooled).contiguous()),
            "time_ids": ctx.put(torch.cat(sizes).contiguous())}
