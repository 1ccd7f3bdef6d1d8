"""Stage 1: the autoencoder, trained on rendered scenes, then re-parametrised so its latents fit
the engine's SD1.5 latent format (latent * 0.18215 has zero mean and unit variance per channel).

The engine multiplies VAE latents by SD1.5's fixed scaling factor; instead of shipping another
factor we fold ours into the 1x1 quant convs, which changes no decoded pixel.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lego_backend.demo_train.architecture import Architecture, build_vae
from lego_backend.demo_train.batches import make_batch
from lego_backend.demo_train.scenes import PALETTE, Scene, Triple

SD15_SCALING = 0.18215
KL_WEIGHT = 1e-5  # small: sharp reconstructions matter more than a Gaussian latent
INITIAL_LOGVAR = -8.0
# The autoencoder is convolutional except its 8x8 bottleneck attention, so most of what it
# learns (edges, colours, shape outlines) can be learned on half-size crops at a quarter of the
# cost. Crops start on the 8-pixel latent grid, as the full image's latents do.
CROP_SHARE = 0.7
SHAPE_WEIGHT = 4.0  # extra loss weight on shape pixels
Log = Callable[[str], None]


def train_vae(arch: Architecture, *, seed: int, seconds: float, exclude: frozenset[Triple],
              batch: int = 16, lr: float = 2e-3, max_steps: int | None = None,
              log: Log = print, side: int = 64) -> Any:
    """Train for `max_steps` (deterministic) unless `seconds` of wall time pass first (a safety
    cap on a busy machine, logged); returns the VAE."""
    vae = build_vae(arch, seed)
    with torch.no_grad():  # start nearly deterministic: unit sampling noise would drown the
        c = vae.quant_conv.out_channels // 2  # small initial latent means for many steps
        vae.quant_conv.bias[c:] = INITIAL_LOGVAR
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed + 11)
    gen = torch.Generator().manual_seed(seed + 12)
    start, step, smooth = time.monotonic(), 0, None
    while time.monotonic() - start < seconds and (max_steps is None or step < max_steps):
        data = make_batch(rng, batch, exclude, side)
        images, weights = data.images, _shape_weights(data.images, data.scenes)
        # progress through the budget: steps, or wall time if that runs out first
        frac = (time.monotonic() - start) / seconds
        if max_steps is not None:
            frac = max(frac, step / max_steps)
        if frac < CROP_SHARE:  # 4x cheaper steps; full images at the end fit the global parts
            images, weights = _crops(images, weights, data.scenes, rng, side // 2)
        post = vae.encode(images).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        err = recon - images
        rec = ((err.abs() + err.pow(2)) * weights).mean() / weights.mean()
        kl = post.kl().mean() / images[0].numel()
        loss = rec + KL_WEIGHT * kl
        for g in opt.param_groups:  # cosine decay over the budget
            g["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        smooth = rec.item() if smooth is None else 0.95 * smooth + 0.05 * rec.item()
        step += 1
        if step % 50 == 0:
            log(f"vae step {step} t={time.monotonic() - start:.0f}s rec={smooth:.4f} "
                f"kl={kl.item():.2f}")
    vae.eval().requires_grad_(False)
    log(f"vae done: {step} steps" + ("" if max_steps is None or step >= max_steps
                                      else f" (wall-time cap before {max_steps})"))
    return vae


def _shape_weights(images: torch.Tensor, scenes: list[Scene]) -> torch.Tensor:
    """Per-pixel loss weights [n, 1, h, w]: shapes cover a few percent of the pixels, so an
    unweighted loss learns backgrounds long before it learns the shapes' colours."""
    bg = torch.tensor([PALETTE[s.background] for s in scenes], dtype=torch.float32)
    bg = (bg / 127.5 - 1.0).view(-1, 3, 1, 1)
    shape = (images - bg).abs().amax(dim=1, keepdim=True) > 0.02
    return 1.0 + SHAPE_WEIGHT * shape.float()


def _crops(images: torch.Tensor, weights: torch.Tensor, scenes: list[Scene],
           rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops on the 8-pixel latent grid that hold (the centre of) one of the scene's shapes:
    a random crop is mostly background, which the model learns early anyway."""
    side = images.shape[-1]
    starts = range(0, side - size + 1, 8)
    crops, crop_w = [], []
    for img, w, scene in zip(images, weights, scenes):
        shape = scene.shapes[int(rng.integers(len(scene.shapes)))]
        ox, oy = ([o for o in starts if o + 6 <= c * side <= o + size - 6] or list(starts)
                  for c in shape.centre)
        x, y = int(rng.choice(ox)), int(rng.choice(oy))
        crops.append(img[:, y:y + size, x:x + size])
        crop_w.append(w[:, y:y + size, x:x + size])
    return torch.stack(crops), torch.stack(crop_w)


@torch.no_grad()
def fit_latent_scale(vae: Any, *, seed: int, exclude: frozenset[Triple],
                     images: int = 512, side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of the encoder's latent means over fresh scenes."""
    rng = np.random.default_rng(seed + 13)
    means = [vae.encode(make_batch(rng, 64, exclude, side).images).latent_dist.mean
             for _ in range(max(1, images // 64))]
    z = torch.cat(means)
    return z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3))


@torch.no_grad()
def normalise_latents(vae: Any, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Make encode(x).mean * 0.18215 zero-mean, unit-std per channel, decodes unchanged:
    z' = k (z - m) with k = 1 / (0.18215 std); the decoder's post_quant_conv undoes it."""
    k = 1.0 / (SD15_SCALING * std)
    c = mean.numel()
    q, p = vae.quant_conv, vae.post_quant_conv
    q.weight[:c] *= k.view(-1, 1, 1, 1)
    q.bias[:c] = (q.bias[:c] - mean) * k
    q.bias[c:] += 2.0 * torch.log(k)  # log-variance follows the same scale
    # post(z') = W (z'/k + m) + b
    p.bias += (p.weight[:, :, 0, 0] @ mean)
    p.weight /= k.view(1, -1, 1, 1)
