"""Linear multistep samplers: reuse the slopes d = (x - D)/sigma of earlier steps instead of
extra model evaluations, so every step costs exactly one evaluation.

lms, ipndm, ipndm_v and deis are Adams-Bashforth methods that differ in how the weights of
past slopes are chosen; gradient_estimation and res_multistep are the two-step methods of
their papers.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor

from lego_backend.sampling.seam import SamplerGen, denoised_of, guided_of
from lego_backend.sampling.solver_math import (
    adams_bashforth_coeffs,
    ask,
    deis_coeffs,
    lam,
    schedule_floats,
    to_d,
)

# weights(sigmas, i, order) -> [c_0 ... c_{order-1}] for x += sum_j c_j * d_{i-j}
Weights = Callable[[Sequence[float], int, int], list[float]]

# Classic constant-step Adams-Bashforth weights (iPNDM, Zhang & Chen 2022), times dt.
_AB_FIXED: dict[int, tuple[float, ...]] = {
    1: (1.0,), 2: (3 / 2, -1 / 2), 3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


def _fixed_weights(sigmas: Sequence[float], i: int, order: int) -> list[float]:
    dt = sigmas[i + 1] - sigmas[i]
    return [c * dt for c in _AB_FIXED[order]]


def _multistep(x: Tensor, sigmas: Tensor, weights: Weights, max_order: int,
               denoise_last: bool) -> SamplerGen:
    """Adams-Bashforth on dx/dsigma = d with the order ramping up as history accumulates.
    `denoise_last`: the step to sigma = 0 returns D itself (exact for that first-order step
    and what ComfyUI's ipndm/ipndm_v/deis do); lms keeps its full order there."""
    sig, n = schedule_floats(sigmas)
    history: list[Tensor] = []  # newest first
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        history.insert(0, to_d(x, sig[i], denoised))
        del history[max_order:]
        if denoise_last and sig[i + 1] == 0:
            x = denoised
            continue
        for c, d in zip(weights(sig, i, min(i + 1, max_order)), history):
            x = x + c * d
    return x


def lms(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Linear multistep, order 4: the Lagrange interpolant of the last slopes in sigma,
    integrated exactly over the step (variable-step Adams-Bashforth)."""
    return (yield from _multistep(x, sigmas, adams_bashforth_coeffs, 4, denoise_last=False))


def ipndm(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Improved PNDM: constant-step Adams-Bashforth weights up to order 4, whatever the
    actual spacing of the schedule."""
    return (yield from _multistep(x, sigmas, _fixed_weights, 4, denoise_last=True))


def ipndm_v(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """iPNDM with weights recomputed for the actual (variable) step sizes. Orders 1-3 equal
    ComfyUI's; at order 4 we use the exact variable-step weights, which reduce to iPNDM's
    55/-59/37/-9 on a uniform grid (ComfyUI's order-4 formula does not), so images can
    differ slightly from ComfyUI's for this sampler."""
    return (yield from _multistep(x, sigmas, adams_bashforth_coeffs, 4, denoise_last=True))


def deis(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """DEIS (tab), order 3: slopes interpolated in VP-SDE time (see solver_math.deis_coeffs)."""
    return (yield from _multistep(x, sigmas, deis_coeffs, 3, denoise_last=True))


def _gradient_estimation(x: Tensor, sigmas: Tensor, cfg_pp: bool,
                         gamma: float = 2.0) -> SamplerGen:
    """Permenter & Yuan 2024: the slope is a noisy gradient estimate, so step with the
    extrapolation gamma*d_i + (1-gamma)*d_{i-1} (gamma = 2). With CFG++ the slopes come from
    the unconditional prediction and the Euler part lands on the guided D."""
    sig, n = schedule_floats(sigmas)
    previous: Tensor | None = None
    for i in range(n):
        reply = yield ask(x, sig[i], i, n, needs_uncond=cfg_pp)
        if cfg_pp:
            pred = guided_of(reply)
            denoised, d = pred.denoised, to_d(x, sig[i], pred.uncond)
        else:
            denoised = denoised_of(reply)
            d = to_d(x, sig[i], denoised)
        dt = sig[i + 1] - sig[i]
        if sig[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sig[i + 1] if cfg_pp else x + d * dt
            if previous is not None:
                x = x + (gamma - 1) * (d - previous) * dt
        previous = d
    return x


def gradient_estimation(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return (yield from _gradient_estimation(x, sigmas, cfg_pp=False))


def gradient_estimation_cfg_pp(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return (yield from _gradient_estimation(x, sigmas, cfg_pp=True))


def _phi_1(z: float) -> float:
    return math.expm1(z) / z


def _phi_2(z: float) -> float:
    return (_phi_1(z) - 1) / z


def _res_multistep(x: Tensor, sigmas: Tensor, cfg_pp: bool) -> SamplerGen:
    """RES second-order multistep (Zhang et al. 2023, arXiv 2308.02157), deterministic:
    x_next = e^(-h) x + h (b1 D_i + b2 D_{i-1}) with D linear in lambda through the two last
    evaluations, c2 = (lambda_{i-1} - lambda_i) / h, b2 = phi_2(-h)/c2, b1 = phi_1(-h) - b2.
    First step and the step to sigma 0 are Euler. CFG++ swaps x for x + (D - D_uncond)."""
    sig, n = schedule_floats(sigmas)
    previous: Tensor | None = None
    for i in range(n):
        reply = yield ask(x, sig[i], i, n, needs_uncond=cfg_pp)
        pred = guided_of(reply) if cfg_pp else None
        denoised = pred.denoised if pred is not None else denoised_of(reply)
        if previous is None or sig[i + 1] == 0:
            if pred is not None:
                x = denoised + to_d(x, sig[i], pred.uncond) * sig[i + 1]
            else:
                x = x + to_d(x, sig[i], denoised) * (sig[i + 1] - sig[i])
        else:
            h = lam(sig[i + 1]) - lam(sig[i])
            c2 = (lam(sig[i - 1]) - lam(sig[i])) / h
            b2 = _phi_2(-h) / c2
            b1 = _phi_1(-h) - b2
            if pred is not None:
                x = x + (denoised - pred.uncond)
            x = math.exp(-h) * x + h * (b1 * denoised + b2 * previous)
        previous = denoised
    return x


def res_multistep(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return (yield from _res_multistep(x, sigmas, cfg_pp=False))


def res_multistep_cfg_pp(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return (yield from _res_multistep(x, sigmas, cfg_pp=True))
