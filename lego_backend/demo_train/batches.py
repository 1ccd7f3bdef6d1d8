"""Seeded batches of rendered scenes, with captions, for training and evaluation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lego_backend.demo_train.captions import caption
from lego_backend.demo_train.render import render
from lego_backend.demo_train.scenes import Scene, Triple, sample_scene


@dataclass
class Batch:
    scenes: list[Scene]
    captions: list[str]
    images: torch.Tensor  # [n, 3, side, side] in [-1, 1], the VAE's range


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HWC images -> float [n, 3, h, w] in [-1, 1]."""
    arr = np.stack(images).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float [n, 3, h, w] in [-1, 1] -> uint8 [n, h, w, 3]."""
    arr = ((images.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).numpy()


def make_batch(rng: np.random.Generator, size: int, exclude: frozenset[Triple],
               side: int = 64) -> Batch:
    scenes = [sample_scene(rng, exclude) for _ in range(size)]
    captions = [caption(s, rng) for s in scenes]
    return Batch(scenes, captions, to_tensor([render(s, side) for s in scenes]))
