"""Arithmetic shared by the samplers. Sigmas are handled as Python floats (float64) so step
coefficients are exact to double precision; tensors only meet them in the final updates."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.polynomial import Polynomial
from torch import Tensor

from lego_backend.sampling.seam import DenoiseRequest


def schedule_floats(sigmas: Tensor) -> tuple[list[float], int]:
    """The schedule as floats and its number of steps."""
    values = [float(s) for s in sigmas.tolist()]
    return values, len(values) - 1


def ask(x: Tensor, sigma: float, step: int, total: int,
        needs_uncond: bool = False) -> DenoiseRequest:
    """The request a sampler yields to have D(x, sigma) evaluated."""
    return DenoiseRequest(x, torch.tensor(sigma, dtype=torch.float32), step, total,
                          needs_uncond)


def to_d(x: Tensor, sigma: float, denoised: Tensor) -> Tensor:
    """dx/dsigma of the probability-flow ODE in the VE convention: (x - D(x, sigma)) / sigma."""
    return (x - denoised) / sigma


def ancestral_step(sigma: float, sigma_next: float, eta: float = 1.0) -> tuple[float, float]:
    """Split a move from sigma to sigma_next into a deterministic part down to sigma_down and
    fresh noise of std sigma_up, with sigma_down^2 + sigma_up^2 = sigma_next^2. eta=1 is DDPM's
    ancestral posterior (sigma_up^2 = sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2), eta=0
    the deterministic ODE step."""
    if eta == 0.0 or sigma_next == 0.0:
        return sigma_next, 0.0
    up = min(sigma_next,
             eta * math.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2))
    return math.sqrt(sigma_next ** 2 - up ** 2), up


def lam(sigma: float) -> float:
    """Log-SNR time of DPM-Solver: lambda = -log(sigma) (alpha = 1 in the VE convention)."""
    return -math.log(sigma)


def adams_bashforth_coeffs(ts: Sequence[float], i: int, order: int) -> list[float]:
    """Variable-step Adams-Bashforth weights for x_{i+1} = x_i + sum_j c_j * d_{i-j}.

    d is interpolated by the Lagrange polynomial through (t_i, d_i) ... (t_{i-order+1}, ...)
    and integrated exactly from t_i to t_{i+1}; c_j integrates the basis polynomial of d_{i-j}.
    Time is shifted to start at t_i to keep the polynomial well conditioned.
    """
    nodes = [ts[i - m] - ts[i] for m in range(order)]
    h = ts[i + 1] - ts[i]
    coeffs = []
    for j in range(order):
        others = [nodes[m] for m in range(order) if m != j]
        denom = math.prod(nodes[j] - o for o in others)
        basis = Polynomial.fromroots(others) if others else Polynomial([1.0])
        antiderivative = (basis / denom).integ()
        coeffs.append(float(antiderivative(h) - antiderivative(0.0)))
    return coeffs


def _edm_vp_time(sigma: float, beta_d: float, beta_min: float) -> float:
    """Inverse of log(1 + sigma(t)^2) = beta_d t^2 / 2 + beta_min t (the VP-SDE's sigma)."""
    return (math.sqrt(beta_min ** 2 + 2 * beta_d * math.log(sigma ** 2 + 1)) - beta_min) / beta_d


def deis_coeffs(sigmas: Sequence[float], i: int, order: int) -> list[float]:
    """DEIS "tab" weights (Zhang & Chen 2022) for x_{i+1} = x_i + sum_j c_j * d_{i-j}.

    DEIS interpolates eps = d by a Lagrange polynomial in VP-SDE time t rather than in sigma,
    and integrates it against dsigma/dt. As in ComfyUI the VP-SDE is EDM's reference one
    (sigma from 0.002 at t = 1e-3 to 80 at t = 1), whatever the model. Gauss-Legendre
    quadrature is exact to double precision here: the integrand is smooth on [t_{i+1}, t_i].
    """
    eps_s, l_min, l_max = 1e-3, math.log(0.002 ** 2 + 1), math.log(80.0 ** 2 + 1)
    beta_d = 2 * (l_min / eps_s - l_max) / (eps_s - 1)
    beta_min = l_max - 0.5 * beta_d
    ts = [_edm_vp_time(sigmas[i - m], beta_d, beta_min) for m in range(order)]
    t_next = _edm_vp_time(sigmas[i + 1], beta_d, beta_min)
    nodes, weights = np.polynomial.legendre.leggauss(48)
    taus = ts[0] + (nodes + 1) / 2 * (t_next - ts[0])
    log_1p_s2 = 0.5 * beta_d * taus ** 2 + beta_min * taus
    dsigma_dt = (beta_d * taus + beta_min) * np.exp(log_1p_s2) / (2 * np.sqrt(np.expm1(log_1p_s2)))
    scale = (t_next - ts[0]) / 2
    coeffs = []
    for j in range(order):
        basis = np.ones_like(taus)
        for m in range(order):
            if m != j:
                basis *= (taus - ts[m]) / (ts[j] - ts[m])
        coeffs.append(float(np.sum(weights * dsigma_dt * basis) * scale))
    return coeffs
