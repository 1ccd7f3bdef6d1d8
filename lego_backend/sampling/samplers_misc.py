"""Samplers that re-noise explicitly: DDPM's ancestral posterior and LCM's denoise-renoise."""
from __future__ import annotations

import math

from torch import Tensor

from lego_backend.sampling.noise import default_noise_sampler
from lego_backend.sampling.seam import SamplerGen, denoised_of
from lego_backend.sampling.solver_math import ask, schedule_floats


def ddpm(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Ho et al. 2020's reverse step, taken between the schedule's levels.

    In VP terms with abar = 1/(1+sigma^2) and a = abar/abar_next:
    mean = (x_vp - (1-a)/sqrt(1-abar) * eps) / sqrt(a), variance (1-a)(1-abar_next)/(1-abar)
    (the posterior's beta-tilde). x_vp = x/sqrt(1+sigma^2) and back, so the loop stays VE.
    """
    sig, n = schedule_floats(sigmas)
    noise = default_noise_sampler(x, seed)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        s, s_next = sig[i], sig[i + 1]
        eps = (x - denoised) / s
        abar, abar_next = 1 / (1 + s * s), 1 / (1 + s_next * s_next)
        a = abar / abar_next
        mean = (x / math.sqrt(1 + s * s) - (1 - a) / math.sqrt(1 - abar) * eps) / math.sqrt(a)
        if s_next > 0:
            std = math.sqrt((1 - a) * (1 - abar_next) / (1 - abar))
            x = (mean + std * noise(s, s_next)) * math.sqrt(1 + s_next * s_next)
        else:
            x = mean
    return x


def lcm(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Latent Consistency Models' multistep sampling: jump to the x0 prediction, then re-noise
    it to the next level with fresh noise (x = D + sigma_next * z)."""
    sig, n = schedule_floats(sigmas)
    noise = default_noise_sampler(x, seed)
    for i in range(n):
        x = denoised_of((yield ask(x, sig[i], i, n)))
        if sig[i + 1] > 0:
            x = x + noise(sig[i], sig[i + 1]) * sig[i + 1]
    return x
