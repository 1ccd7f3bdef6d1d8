"""ImagePadForOutpaint: grow the canvas with grey borders and return the mask of what to paint.
The mask is 1 on the new borders and, with feathering, fades into the original image near the
padded sides (quadratically), so the inpainting model blends the seam instead of cutting it."""
from __future__ import annotations

from typing import Any

import torch

from node_library.inputs import INT, MAX_RESOLUTION, OUT, SOCKET
from node_library.limits import ensure_pixels
from node_library.spec import NodeOutput, NodeSpec

PAD_VALUE = 0.5  # grey: neither dark nor light, so it does not bias the repainted border


def pad_mask(h: int, w: int, left: int, top: int, right: int, bottom: int,
             feathering: int) -> torch.Tensor:
    """[H + top + bottom, W + left + right] mask: 1 = paint, 0 = keep."""
    mask = torch.ones(h + top + bottom, w + left + right)
    inner = torch.zeros(h, w)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        ys = torch.arange(h, dtype=torch.float32).unsqueeze(1).expand(h, w)
        xs = torch.arange(w, dtype=torch.float32).unsqueeze(0).expand(h, w)
        far = torch.full((h, w), float(max(h, w)))
        # distance to each padded side; unpadded sides do not count (no seam there)
        d = torch.stack([ys if top else far, (h - ys) if bottom else far,
                         xs if left else far, (w - xs) if right else far]).amin(0)
        fade = ((feathering - d) / feathering).clamp(min=0)
        inner = torch.where(d < feathering, fade * fade, inner)
    mask[top:top + h, left:left + w] = inner
    return mask


def pad_for_outpaint(ctx: Any, image: Any, left: int, top: int, right: int, bottom: int,
                     feathering: int) -> NodeOutput:
    px = ctx.tensor(image)
    b, h, w, c = px.shape
    ensure_pixels(ctx, w + left + right, h + top + bottom, b)
    out = torch.full((b, h + top + bottom, w + left + right, c), PAD_VALUE, dtype=px.dtype)
    out[:, top:top + h, left:left + w, :] = px
    mask = pad_mask(h, w, left, top, right, bottom, feathering).unsqueeze(0)
    return NodeOutput((ctx.put(out), ctx.put(mask)))


def _side(name: str) -> Any:
    return INT(name, 0, 0, MAX_RESOLUTION, step=8)


SPECS = [
    NodeSpec("ImagePadForOutpaint", "Pad Image for Outpainting", "image",
             (SOCKET("image", "IMAGE"), _side("left"), _side("top"), _side("right"),
              _side("bottom"), INT("feathering", 40, 0, MAX_RESOLUTION, step=1)),
             (OUT("IMAGE"), OUT("MASK")), pad_for_outpaint),
]
