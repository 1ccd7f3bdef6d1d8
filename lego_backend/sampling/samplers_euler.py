"""Karras et al. 2022 (EDM) samplers on the probability-flow ODE dx/dsigma = (x - D)/sigma:
Euler, Heun, the DPM-2 midpoint method, their ancestral forms, heunpp2, and the CFG++ Euler
variants. Each is a generator over the seam (see seam.py); `seed` feeds ancestral noise only.
"""
from __future__ import annotations

import math

from torch import Tensor

from lego_backend.sampling.noise import default_noise_sampler
from lego_backend.sampling.seam import SamplerGen, denoised_of, guided_of
from lego_backend.sampling.solver_math import ancestral_step, ask, schedule_floats, to_d


def euler(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """First-order step along the ODE. Also serves ComfyUI's "ddim" (DDIM is exactly this
    Euler step in the VE parameterisation; ComfyUI maps the name to it too)."""
    sig, n = schedule_floats(sigmas)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        x = x + to_d(x, sig[i], denoised) * (sig[i + 1] - sig[i])
    return x


def euler_cfg_pp(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """CFG++ (Chung et al. 2024): land on the guided x0 but re-noise along the unconditional
    noise direction, x' = D_cfg + sigma' * (x - D_uncond) / sigma."""
    sig, n = schedule_floats(sigmas)
    for i in range(n):
        pred = guided_of((yield ask(x, sig[i], i, n, needs_uncond=True)))
        x = pred.denoised + to_d(x, sig[i], pred.uncond) * sig[i + 1]
    return x


def euler_ancestral(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Euler down to sigma_down, then fresh noise back up to sigma_next (eta = 1)."""
    sig, n = schedule_floats(sigmas)
    noise = default_noise_sampler(x, seed)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        down, up = ancestral_step(sig[i], sig[i + 1])
        x = x + to_d(x, sig[i], denoised) * (down - sig[i])
        if sig[i + 1] > 0:
            x = x + noise(sig[i], sig[i + 1]) * up
    return x


def euler_ancestral_cfg_pp(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """euler_ancestral with the CFG++ re-noising direction."""
    sig, n = schedule_floats(sigmas)
    noise = default_noise_sampler(x, seed)
    for i in range(n):
        pred = guided_of((yield ask(x, sig[i], i, n, needs_uncond=True)))
        down, up = ancestral_step(sig[i], sig[i + 1])
        x = pred.denoised + to_d(x, sig[i], pred.uncond) * down
        if sig[i + 1] > 0:
            x = x + noise(sig[i], sig[i + 1]) * up
    return x


def heun(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Karras' Algorithm 1: Euler predictor, trapezoidal corrector. The last step (to sigma 0)
    is plain Euler since d at sigma = 0 is undefined: 2 evaluations per step, 1 on the last."""
    sig, n = schedule_floats(sigmas)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        d = to_d(x, sig[i], denoised)
        dt = sig[i + 1] - sig[i]
        if sig[i + 1] == 0:
            x = x + d * dt
            continue
        x_pred = x + d * dt
        denoised_2 = denoised_of((yield ask(x_pred, sig[i + 1], i, n)))
        x = x + (d + to_d(x_pred, sig[i + 1], denoised_2)) / 2 * dt
    return x


def heunpp2(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """ComfyUI's "Heun++": slopes at sigma_i, sigma_{i+1} and sigma_{i+2} (found by chained
    Euler steps) averaged with weights growing with the sigma they were taken at, relative to
    the schedule's first sigma: w_k = sigma_k / (3 sigma_0) for the look-ahead slopes and the
    rest on the current slope. Two slopes near the end, Euler on the last step."""
    sig, n = schedule_floats(sigmas)
    end = sig[-1]
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        d = to_d(x, sig[i], denoised)
        dt = sig[i + 1] - sig[i]
        if sig[i + 1] == end:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sig[i + 1], denoised_of((yield ask(x_2, sig[i + 1], i, n))))
        if sig[i + 2] == end:
            w_2 = sig[i + 1] / (2 * sig[0])
            x = x + ((1 - w_2) * d + w_2 * d_2) * dt
            continue
        x_3 = x_2 + d_2 * (sig[i + 2] - sig[i + 1])
        d_3 = to_d(x_3, sig[i + 2], denoised_of((yield ask(x_3, sig[i + 2], i, n))))
        w_2, w_3 = sig[i + 1] / (3 * sig[0]), sig[i + 2] / (3 * sig[0])
        x = x + ((1 - w_2 - w_3) * d + w_2 * d_2 + w_3 * d_3) * dt
    return x


def dpm_2(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Second-order midpoint method with the midpoint taken in log-sigma (Karras' "DPM2"):
    the slope at sqrt(sigma_i * sigma_{i+1}) drives the whole step. Euler on the last step."""
    sig, n = schedule_floats(sigmas)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        d = to_d(x, sig[i], denoised)
        if sig[i + 1] == 0:
            x = x + d * (sig[i + 1] - sig[i])
            continue
        mid = math.sqrt(sig[i] * sig[i + 1])
        x_mid = x + d * (mid - sig[i])
        d_mid = to_d(x_mid, mid, denoised_of((yield ask(x_mid, mid, i, n))))
        x = x + d_mid * (sig[i + 1] - sig[i])
    return x


def dpm_2_ancestral(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """dpm_2 down to sigma_down, then ancestral noise up to sigma_next (eta = 1)."""
    sig, n = schedule_floats(sigmas)
    noise = default_noise_sampler(x, seed)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        down, up = ancestral_step(sig[i], sig[i + 1])
        d = to_d(x, sig[i], denoised)
        if down == 0:
            x = x + d * (down - sig[i])
        else:
            mid = math.sqrt(sig[i] * down)
            x_mid = x + d * (mid - sig[i])
            d_mid = to_d(x_mid, mid, denoised_of((yield ask(x_mid, mid, i, n))))
            x = x + d_mid * (down - sig[i])
        if sig[i + 1] > 0:
            x = x + noise(sig[i], sig[i + 1]) * up
    return x
