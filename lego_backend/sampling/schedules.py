"""Sigma schedules under ComfyUI's scheduler names, and KSampler's denoise / start-end slicing.

Every schedule is a float32 tensor of decreasing sigmas ending in 0 (the final "clean" level);
its length minus one is the number of sampling steps. ComfyUI computes them from the model's
sigma table, so identical inputs give identical sigmas here and there.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from lego_backend.sampling.model_sampling import DiscreteSchedule
from lego_backend.sampling.names import DISCARD_PENULTIMATE_SIGMA_SAMPLERS, UnknownSchedulerError


def _with_zero(sigmas: list[float] | Tensor) -> Tensor:
    s = torch.as_tensor(sigmas, dtype=torch.float32)
    return torch.cat([s, s.new_zeros(1)])


def karras(steps: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. 2022 eq. 5: uniform steps in sigma^(1/rho), dense near sigma_min."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _with_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Uniform steps in log(sigma)."""
    return _with_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps,
                                     dtype=torch.float64).exp())


def kl_optimal(steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Uniform steps in arctan(sigma) ("Align Your Steps"' KL-optimal schedule)."""
    if steps == 1:
        return _with_zero([sigma_max])
    w = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    return _with_zero((w * math.atan(sigma_min) + (1 - w) * math.atan(sigma_max)).tan())


def _table_uniform(ms: DiscreteSchedule, steps: int, sgm: bool) -> Tensor:
    """"normal": uniform in timestep from t(sigma_max) to t(sigma_min), both included.
    "sgm_uniform": steps+1 points of that line, the last dropped (SGM/SDXL's spacing)."""
    start = float(ms.timestep(ms.sigma_max))
    end = float(ms.timestep(ms.sigma_min))
    ts = torch.linspace(start, end, steps + 1)[:-1] if sgm else torch.linspace(start, end, steps)
    return _with_zero(ms.sigma(ts))


def normal(ms: DiscreteSchedule, steps: int) -> Tensor:
    return _table_uniform(ms, steps, sgm=False)


def sgm_uniform(ms: DiscreteSchedule, steps: int) -> Tensor:
    return _table_uniform(ms, steps, sgm=True)


def simple(ms: DiscreteSchedule, steps: int) -> Tensor:
    """Evenly strided picks from the sigma table, from the top."""
    stride = ms.num_timesteps / steps
    return _with_zero([float(ms.sigmas[-(1 + int(i * stride))]) for i in range(steps)])


def ddim_uniform(ms: DiscreteSchedule, steps: int) -> Tensor:
    """DDIM's "uniform" timesteps 1, 1+k, 1+2k, ... with k = T // steps, reversed.

    Like ComfyUI this yields more than steps+1 sigmas when steps does not divide T (e.g. 30
    steps -> 31); kept so imported workflows sample exactly as they did there.
    """
    stride = max(ms.num_timesteps // steps, 1)
    picks = [float(ms.sigmas[i]) for i in range(1, ms.num_timesteps, stride)]
    return _with_zero(picks[::-1])


def beta(ms: DiscreteSchedule, steps: int, alpha: float = 0.6, beta_: float = 0.6) -> Tensor:
    """Timesteps at quantiles of a Beta(0.6, 0.6) ("Beta Sampling is All You Need"): denser at
    both ends. Repeated timesteps (only possible for very many steps) are dropped."""
    total = ms.num_timesteps - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(stats.beta.ppf(quantiles, alpha, beta_) * total)
    picks: list[float] = []
    last = -1.0
    for t in ts:
        if t != last:
            picks.append(float(ms.sigmas[int(t)]))
        last = float(t)
    return _with_zero(picks)


def linear_quadratic(ms: DiscreteSchedule, steps: int, threshold: float = 0.025) -> Tensor:
    """Mochi's schedule on u = 1 - sigma/sigma_max: linear from 0 to `threshold` over the first
    half of the steps, then the quadratic that continues it with the same value and slope and
    reaches 1 at the last step."""
    if steps == 1:
        return torch.tensor([ms.sigma_max, 0.0], dtype=torch.float32)
    lin = steps // 2
    quad = steps - lin
    slope = threshold / lin
    curve = (1.0 - threshold - slope * quad) / quad ** 2
    u = [i * slope for i in range(lin)]
    u += [threshold + slope * (i - lin) + curve * (i - lin) ** 2 for i in range(lin, steps)]
    u.append(1.0)
    return torch.tensor([1.0 - v for v in u], dtype=torch.float64).float() * ms.sigma_max


def _by_range(fn: Callable[[int, float, float], Tensor]) -> Callable[[DiscreteSchedule, int],
                                                                    Tensor]:
    return lambda ms, steps: fn(steps, ms.sigma_min, ms.sigma_max)


def _schedulers() -> dict[str, Callable[[DiscreteSchedule, int], Tensor]]:
    return {
        "simple": simple, "sgm_uniform": sgm_uniform, "karras": _by_range(karras),
        "exponential": _by_range(exponential), "ddim_uniform": ddim_uniform, "beta": beta,
        "normal": normal, "linear_quadratic": linear_quadratic,
        "kl_optimal": _by_range(kl_optimal),
    }


def calculate_sigmas(schedule: DiscreteSchedule, scheduler_name: str, steps: int) -> Tensor:
    """The full-denoise schedule: float32 [steps+1], sigma_max ... 0."""
    fn = _schedulers().get(scheduler_name)
    if fn is None:
        raise UnknownSchedulerError(scheduler_name)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return fn(schedule, steps)


def sampling_sigmas(schedule: DiscreteSchedule, scheduler_name: str, steps: int,
                    denoise: float = 1.0, sampler_name: str | None = None) -> Tensor:
    """KSampler's sigmas. denoise < 1 (img2img) plans int(steps/denoise) steps and keeps the
    last steps+1 sigmas, so `steps` steps run from a lower starting noise; denoise <= 0 gives an
    empty tensor, meaning "return the latent unchanged". Pass `sampler_name` to get ComfyUI's
    dpm_2/uni_pc adjustment (plan one extra step, drop the second-to-last sigma)."""
    if denoise <= 0.0:
        return torch.zeros(0, dtype=torch.float32)
    planned = steps if denoise > 0.9999 else int(steps / denoise)
    discard = sampler_name in DISCARD_PENULTIMATE_SIGMA_SAMPLERS
    sigmas = calculate_sigmas(schedule, scheduler_name, planned + 1 if discard else planned)
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas if denoise > 0.9999 else sigmas[-(steps + 1):]


def advanced_sigmas(sigmas: Tensor, start_at_step: int, end_at_step: int,
                    return_with_leftover_noise: bool) -> Tensor:
    """KSamplerAdvanced's slice of a full schedule.

    end_at_step past the end is clamped; when it truncates and leftover noise is not wanted the
    last kept sigma becomes 0 (the final step denoises fully). A start at or past the last step
    gives an empty tensor: the caller returns the input latent unchanged, as ComfyUI does.
    """
    out = sigmas.clone()
    if end_at_step < len(out) - 1:
        out = out[:end_at_step + 1].clone()
        if not return_with_leftover_noise:
            out[-1] = 0.0
    if start_at_step >= len(out) - 1:
        return out[:0]
    return out[start_at_step:]
