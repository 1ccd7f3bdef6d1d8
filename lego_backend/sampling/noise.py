"""Noise, seeded per request so a sample never depends on what it is batched with.

ComfyUI's conventions are kept so a seed reproduces its images: the initial noise is
torch.randn on a CPU generator seeded with the KSampler seed; ancestral samplers draw step noise
from a fresh generator seeded with the same seed; SDE samplers query a Brownian tree seeded
with it. Every generator here is private to one request (nothing global is seeded).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torchsde
from torch import Tensor

# noise_sampler(sigma, sigma_next) -> standard normal noise of the latent's shape for the
# interval [sigma_next, sigma]. Ancestral samplers ignore the interval, SDE samplers use it.
NoiseSampler = Callable[[float, float], Tensor]

_TOL = 1e-6  # torchsde's default resolution of the Brownian tree (kept for identical paths)
_DIGITS = 6  # the decimal digits torchsde rounds times to for that tolerance


def prepare_noise(shape: Sequence[int], seed: int, batch_index: Sequence[int] | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """Initial noise for a latent of `shape` ([B, C, H, W]), generated on the CPU.

    With `batch_index` (a LATENT's "batch_index", e.g. after a batch split), sample i gets the
    noise that image number batch_index[i] of one long batch would have had: noise is drawn
    one image at a time up to the largest index, so index k's noise is the same whichever
    other indices are present.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    if batch_index is None:
        return torch.randn(tuple(shape), dtype=dtype, generator=generator)
    one = (1, *tuple(shape)[1:])
    wanted = set(batch_index)
    drawn: dict[int, Tensor] = {}
    for i in range(max(batch_index) + 1):
        noise = torch.randn(one, dtype=dtype, generator=generator)
        if i in wanted:
            drawn[i] = noise
    return torch.cat([drawn[i] for i in batch_index], dim=0)


def default_noise_sampler(x: Tensor, seed: int) -> NoiseSampler:
    """Fresh Gaussian noise of x's shape per call, from a generator owned by this request."""
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def sample(sigma: float, sigma_next: float) -> Tensor:
        return torch.randn(x.shape, dtype=x.dtype, generator=generator).to(x.device)

    return sample


class BrownianTreeNoiseSampler:
    """Noise for SDE samplers from one Brownian motion W over sigma, queried by interval.

    Returns (W(sigma) - W(sigma_next)) / sqrt(|sigma - sigma_next|), a standard normal that is
    a deterministic function of (seed, interval): splitting a step into sub-steps (as
    dpmpp_sde's midpoint does) sees increments of the *same* path, which is what keeps the SDE
    solver consistent as the step count changes. Built on torchsde's Brownian tree on the CPU.
    """

    def __init__(self, x: Tensor, sigma_min: float, sigma_max: float, seed: int):
        self._device, self._shape, self._dtype = x.device, x.shape, x.dtype
        w0 = torch.zeros(x.shape, dtype=x.dtype)
        self._tree = torchsde.BrownianTree(sigma_min, w0, sigma_max, entropy=seed, tol=_TOL)
        # torchsde rounds its interval ends to the digits of `tol` and warns about queries
        # outside the rounded ends; it then clamps them. Clamping first gives the same path
        # without warnings for the exact schedule ends.
        self._bounds = (round(sigma_min, _DIGITS), round(sigma_max, _DIGITS))

    def __call__(self, sigma: float, sigma_next: float) -> Tensor:
        lo, hi, sign = ((sigma, sigma_next, 1.0) if sigma < sigma_next
                        else (sigma_next, sigma, -1.0))
        if hi == lo:  # a zero-length step (repeated sigma) has no noise to add
            return torch.zeros(self._shape, dtype=self._dtype, device=self._device)
        increment: Tensor = self._tree(max(lo, self._bounds[0]), min(hi, self._bounds[1]))
        return (increment * (sign / math.sqrt(hi - lo))).to(self._device)


def brownian_noise_sampler(x: Tensor, sigmas: Tensor, seed: int) -> BrownianTreeNoiseSampler:
    """A Brownian tree spanning the schedule's smallest positive sigma to its largest."""
    positive = sigmas[sigmas > 0]
    return BrownianTreeNoiseSampler(x, float(positive.min()), float(sigmas.max()), seed)
