"""DPM-Solver++ family (Lu et al. 2022, "DPM-Solver++"; SDE variants from the same paper).

In the VE convention (alpha = 1) with lambda = -log(sigma) and h = lambda_next - lambda, the
exact solution of the probability-flow ODE with D held constant over the step is
    x_next = (sigma_next / sigma) * x + (1 - e^(-h)) * D,
and the solvers differ in how they estimate the D to hold. The SDE forms (eta = 1) shrink x
by another e^(-h), use weight 1 - e^(-2h) on D and add noise of std
sigma_next * sqrt(1 - e^(-2h)).
"""
from __future__ import annotations

import math

from torch import Tensor

from lego_backend.sampling.noise import brownian_noise_sampler, default_noise_sampler
from lego_backend.sampling.seam import SamplerGen, denoised_of
from lego_backend.sampling.solver_math import ancestral_step, ask, lam, schedule_floats, to_d


def _first_order(x: Tensor, sigma: float, sigma_next: float, denoised: Tensor) -> Tensor:
    """DPM-Solver++(1) (= DDIM) from sigma to sigma_next."""
    ratio = sigma_next / sigma
    return ratio * x + (1 - ratio) * denoised


def dpmpp_2s_ancestral(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Single-step second order: evaluate again at the log-sigma midpoint towards sigma_down
    and use that D for the whole step; then ancestral noise up to sigma_next."""
    sig, n = schedule_floats(sigmas)
    noise = default_noise_sampler(x, seed)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        down, up = ancestral_step(sig[i], sig[i + 1])
        if down == 0:
            x = x + to_d(x, sig[i], denoised) * (down - sig[i])
        else:
            mid = math.sqrt(sig[i] * down)
            x_mid = _first_order(x, sig[i], mid, denoised)
            denoised_mid = denoised_of((yield ask(x_mid, mid, i, n)))
            x = _first_order(x, sig[i], down, denoised_mid)
        if sig[i + 1] > 0:
            x = x + noise(sig[i], sig[i + 1]) * up
    return x


def dpmpp_sde(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Stochastic DPM-Solver++(2S) (r = 1/2, eta = 1): each half of the step is a first-order
    move to the ancestral sigma_down plus Brownian noise up to its target; the second half
    uses the midpoint's D. Noise comes from one Brownian path, so it is consistent across
    sub-steps. (ComfyUI's dpmpp_sde_gpu only differs in the device its tree lives on.)"""
    sig, n = schedule_floats(sigmas)
    noise = brownian_noise_sampler(x, sigmas, seed)
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        if sig[i + 1] == 0:
            x = x + to_d(x, sig[i], denoised) * (sig[i + 1] - sig[i])
            continue
        mid = math.sqrt(sig[i] * sig[i + 1])
        down, up = ancestral_step(sig[i], mid)
        x_mid = _first_order(x, sig[i], down, denoised) + noise(sig[i], mid) * up
        denoised_mid = denoised_of((yield ask(x_mid, mid, i, n)))
        down, up = ancestral_step(sig[i], sig[i + 1])
        x = _first_order(x, sig[i], down, denoised_mid) + noise(sig[i], sig[i + 1]) * up
    return x


def dpmpp_2m(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """Multistep second order: extrapolate D linearly in lambda from the previous step's D,
    D_hat = (1 + 1/(2r)) D_i - 1/(2r) D_{i-1} with r = h_{i-1} / h_i. First step and the final
    step to sigma 0 are first order (the final one lands exactly on D)."""
    sig, n = schedule_floats(sigmas)
    previous: Tensor | None = None
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        if previous is None or sig[i + 1] == 0:
            x = _first_order(x, sig[i], sig[i + 1], denoised)
        else:
            r = (lam(sig[i]) - lam(sig[i - 1])) / (lam(sig[i + 1]) - lam(sig[i]))
            blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
            x = _first_order(x, sig[i], sig[i + 1], blended)
        previous = denoised
    return x


def _sde_first_order(x: Tensor, sigma: float, sigma_next: float, h: float,
                     denoised: Tensor) -> Tensor:
    """The deterministic part of SDE-DPM-Solver++(1) with eta = 1."""
    return (sigma_next / sigma) * math.exp(-h) * x + (-math.expm1(-2 * h)) * denoised


def _sde_noise_std(sigma_next: float, h: float) -> float:
    """Std of the fresh noise of an SDE step (eta = 1): sigma_next * sqrt(1 - e^(-2h))."""
    return sigma_next * math.sqrt(-math.expm1(-2 * h))


def _dpmpp_2m_sde(x: Tensor, sigmas: Tensor, seed: int, heun_correction: bool) -> SamplerGen:
    """SDE-DPM-Solver++(2M). The second-order term adds the lambda-derivative of D estimated
    from the previous step, weighted by the midpoint rule (ComfyUI's default), or by the exact
    integral of the linear term against the step's kernel 2 e^(-2(h - tau)) ("heun")."""
    sig, n = schedule_floats(sigmas)
    noise = brownian_noise_sampler(x, sigmas, seed)
    previous: Tensor | None = None
    h_last = 0.0
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        if sig[i + 1] == 0:
            x = denoised
        else:
            h = lam(sig[i + 1]) - lam(sig[i])
            x = _sde_first_order(x, sig[i], sig[i + 1], h, denoised)
            if previous is not None:
                phi = -math.expm1(-2 * h)  # 1 - e^(-2h), the weight of D above
                slope = (denoised - previous) * (h / h_last)  # ~ h * dD/dlambda
                weight = (1 - phi / (2 * h)) if heun_correction else 0.5 * phi
                x = x + weight * slope
            x = x + noise(sig[i], sig[i + 1]) * _sde_noise_std(sig[i + 1], h)
            h_last = h
        previous = denoised
    return x


def dpmpp_2m_sde(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return _dpmpp_2m_sde(x, sigmas, seed, heun_correction=False)


def dpmpp_2m_sde_heun(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return _dpmpp_2m_sde(x, sigmas, seed, heun_correction=True)


def dpmpp_3m_sde(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    """SDE-DPM-Solver++(3M): first- and second-order lambda-derivatives of D from the last
    three D's (divided differences), integrated exactly against e^(-2(h - tau))."""
    sig, n = schedule_floats(sigmas)
    noise = brownian_noise_sampler(x, sigmas, seed)
    d_1: Tensor | None = None  # D of the previous step
    d_2: Tensor | None = None  # D of the step before that
    h_1 = h_2 = 0.0  # their step sizes in lambda
    for i in range(n):
        denoised = denoised_of((yield ask(x, sig[i], i, n)))
        if sig[i + 1] == 0:
            x = denoised
        else:
            h = lam(sig[i + 1]) - lam(sig[i])
            h_eta = 2 * h
            x = _sde_first_order(x, sig[i], sig[i + 1], h, denoised)
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if d_2 is not None and d_1 is not None:
                r0, r1 = h_1 / h, h_2 / h
                diff_0 = (denoised - d_1) / r0
                diff_1 = (d_1 - d_2) / r1
                first = diff_0 + (diff_0 - diff_1) * (r0 / (r0 + r1))
                second = (diff_0 - diff_1) / (r0 + r1)
                # NB: ComfyUI's weight for `second` (~ h^2 D''/2) is half its Taylor weight,
                # so the step is not fully third order; kept so seeds give ComfyUI's images.
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * first - phi_3 * second
            elif d_1 is not None:
                x = x + phi_2 * (denoised - d_1) / (h_1 / h)
            x = x + noise(sig[i], sig[i + 1]) * _sde_noise_std(sig[i + 1], h)
            h_2, h_1 = h_1, h
        d_2, d_1 = d_1, denoised
    return x
