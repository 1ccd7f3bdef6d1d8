"""Canny edge detection (the ControlNet "canny"/"scribble" preprocessor of the classic
templates): blur, Sobel gradients, thinning to one-pixel ridges, and hysteresis between the two
thresholds. Gradients are unnormalised Sobel sums on 0..1 grey, as the thresholds expect."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from node_library.inputs import FLOAT, OUT, SOCKET
from node_library.spec import NodeOutput, NodeSpec

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
# neighbour offsets (dy, dx) along the gradient for the four quantised directions
_DIRS = ((0, 1), (1, 1), (1, 0), (1, -1))
MAX_HYSTERESIS_ITERS = 1000  # weak edges join strong ones by at most this many pixels


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.exp(-(torch.arange(5, dtype=torch.float32) - 2) ** 2 / 2.0)
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), k.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), k.view(1, 1, 5, 1))


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x moved by (dy, dx) with zero fill (a neighbour lookup)."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1))
    return p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def canny_edges(gray: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """gray [B, 1, H, W] in 0..1 -> edges [B, 1, H, W] of 0/1."""
    g = _blur(gray)
    padded = F.pad(g, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, _SOBEL_X.view(1, 1, 3, 3))
    gy = F.conv2d(padded, _SOBEL_X.t().contiguous().view(1, 1, 3, 3))
    mag = torch.sqrt(gx * gx + gy * gy + 1e-12)
    # quantise the gradient direction to 0/45/90/135 degrees
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180.0
    sector = (((angle + 22.5) // 45.0) % 4).long()
    thin = torch.zeros_like(mag, dtype=torch.bool)
    for i, (dy, dx) in enumerate(_DIRS):
        ridge = (mag >= _shift(mag, dy, dx)) & (mag >= _shift(mag, -dy, -dx))
        thin |= (sector == i) & ridge
    mag = mag * thin
    strong, weak = mag >= high, mag >= low
    edges = strong
    for _ in range(MAX_HYSTERESIS_ITERS):  # grow strong edges along connected weak ones
        grown = weak & (F.max_pool2d(edges.float(), 3, 1, 1) > 0)
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges.float()


def canny(ctx: Any, image: Any, low_threshold: float, high_threshold: float) -> NodeOutput:
    px = ctx.tensor(image)[..., :3]
    gray = (px * torch.tensor([0.299, 0.587, 0.114])).sum(-1, keepdim=True).permute(0, 3, 1, 2)
    edges = canny_edges(gray.float(), low_threshold, high_threshold)
    return NodeOutput((ctx.put(edges.permute(0, 2, 3, 1).expand(-1, -1, -1, 3).contiguous()),))


SPECS = [
    NodeSpec("Canny", "Canny", "image/preprocessors",
             (SOCKET("image", "IMAGE"),
              FLOAT("low_threshold", 0.4, 0.01, 0.99, step=0.01),
              FLOAT("high_threshold", 0.8, 0.01, 0.99, step=0.01)),
             (OUT("IMAGE"),), canny, python_module="comfy_extras.nodes_canny"),
]
