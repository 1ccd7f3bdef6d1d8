"""Resizing of [B, C, H, W] tensors with the methods ComfyUI's upscale nodes offer."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def center_crop(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop to the target aspect ratio around the centre."""
    old_w, old_h = x.shape[-1], x.shape[-2]
    old_aspect, new_aspect = old_w / old_h, width / height
    if old_aspect > new_aspect:
        cut = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        return x[..., :, cut:old_w - cut]
    if old_aspect < new_aspect:
        cut = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        return x[..., cut:old_h - cut, :]
    return x


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of channel vectors (dim 1), magnitudes interpolated linearly."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-8), b / nb.clamp_min(1e-8)
    dot = (ua * ub).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    small = so.abs() < 1e-4
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / so.where(~small, torch.ones_like(so)))
    wb = torch.where(small, t, torch.sin(t * omega) / so.where(~small, torch.ones_like(so)))
    return (wa * ua + wb * ub) * (na * (1 - t) + nb * t)


def _bislerp(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Separable slerp resize: rows, then columns."""
    def along(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
        n = x.shape[dim]
        pos = (torch.arange(size, dtype=torch.float32) + 0.5) * n / size - 0.5
        pos = pos.clamp(0, n - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=n - 1)
        t = (pos - lo.float())
        a, b = x.index_select(dim, lo), x.index_select(dim, hi)
        shape = [1] * x.dim()
        shape[dim] = size
        return _slerp(a, b, t.view(shape))
    return along(along(x, height, 2), width, 3)


def _lanczos(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    out = []
    for img in x:
        arr = (img.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        pil = Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)
        pil = pil.resize((width, height), Image.Resampling.LANCZOS)
        res = torch.from_numpy(np.asarray(pil).astype(np.float32) / 255.0)
        out.append(res.unsqueeze(-1) if res.dim() == 2 else res)
    return torch.stack(out).permute(0, 3, 1, 2)


def fill_missing_side(old_w: int, old_h: int, width: int, height: int,
                      minimum: int = 1) -> tuple[int, int]:
    """ComfyUI's rule for a target size with one side 0: that side keeps the aspect ratio."""
    if width == 0:
        height = max(minimum, height)
        width = max(minimum, round(old_w * height / old_h))
    elif height == 0:
        width = max(minimum, width)
        height = max(minimum, round(old_h * width / old_w))
    return width, height


def upscale(x: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    if crop == "center":
        x = center_crop(x, width, height)
    if method == "bislerp":
        return _bislerp(x.float(), width, height)
    if method == "lanczos":
        return _lanczos(x.float(), width, height)
    if method in ("bilinear", "bicubic"):
        return F.interpolate(x, size=(height, width), mode=method, align_corners=False)
    if method == "area":
        return F.interpolate(x, size=(height, width), mode="area")
    return F.interpolate(x, size=(height, width), mode="nearest-exact")
