"""UniPC (Zhao et al. 2023): multistep predictor plus a corrector that reuses the next step's
model evaluation, so it gains an order of accuracy at no extra cost. Data prediction, order 3,
lower orders while warming up and on the final steps, variants B(h) = h ("bh1", ComfyUI's
uni_pc) and B(h) = e^h - 1 ("bh2").

Written directly in the VE convention: with lambda = -log(sigma) the VP formulas divide through
by alpha_t and become x_t = (sigma_t/sigma_s) x - (e^(-h) - 1) D_s - B(h) * sum(rho_k D1_k).
lambda is infinite at sigma = 0, so like ComfyUI the last target is sigma = 0.001 and the
result carries that (invisible) residual noise.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from lego_backend.sampling.seam import SamplerGen, denoised_of
from lego_backend.sampling.solver_math import ask, lam, schedule_floats

_FINAL_SIGMA = 0.001


def _coefficients(rks: list[float], h: float, bh2: bool) -> tuple[Tensor, Tensor, float]:
    """R (rows rks^(k-1)) and b (k! phi_{k+1}(-h) / B(h)) of the order conditions R rho = b."""
    hh = -h
    b_h = math.expm1(hh) if bh2 else hh
    h_phi = math.expm1(hh) / hh - 1
    factorial = 1.0
    rows, b = [], []
    for k in range(1, len(rks) + 1):
        rows.append([r ** (k - 1) for r in rks])
        b.append(h_phi * factorial / b_h)
        factorial *= k + 1
        h_phi = h_phi / hh - 1 / factorial
    return (torch.tensor(rows, dtype=torch.float64), torch.tensor(b, dtype=torch.float64), b_h)


def _weighted(rhos: list[float], diffs: list[Tensor]) -> Tensor | float:
    total: Tensor | float = 0.0
    for rho, diff in zip(rhos, diffs):
        total = total + rho * diff
    return total


def _unipc(x: Tensor, sigmas: Tensor, bh2: bool) -> SamplerGen:
    sig, n = schedule_floats(sigmas)
    targets = sig[:-1] + [sig[-1] if sig[-1] > 0 else _FINAL_SIGMA]
    lams = [lam(s) for s in targets]
    max_order = max(1, min(3, n - 1))
    history = [denoised_of((yield ask(x, targets[0], 0, n)))]  # D at targets[0..k-1]
    for k in range(1, n + 1):
        order = k if k < max_order else min(max_order, n + 1 - k)
        h = lams[k] - lams[k - 1]
        m0 = history[-1]
        rks = [(lams[k - 1 - i] - lams[k - 1]) / h for i in range(1, order)] + [1.0]
        diffs = [(history[-1 - i] - m0) / rks[i - 1] for i in range(1, order)]
        R, b, b_h = _coefficients(rks, h, bh2)
        x_base = (targets[k] / targets[k - 1]) * x - math.expm1(-h) * m0
        if order == 1:
            rhos_p: list[float] = []
        elif order == 2:
            rhos_p = [0.5]
        else:
            rhos_p = torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
        x_pred = x_base - b_h * _weighted(rhos_p, diffs)
        if k == n:  # no corrector on the last step: it would need one more evaluation
            return x_pred
        d_k = denoised_of((yield ask(x_pred, targets[k], k, n)))
        rhos_c = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
        x = x_base - b_h * (_weighted(rhos_c[:-1], diffs) + rhos_c[-1] * (d_k - m0))
        history = (history + [d_k])[-max_order:]
    return x


def uni_pc(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return (yield from _unipc(x, sigmas, bh2=False))


def uni_pc_bh2(x: Tensor, sigmas: Tensor, seed: int) -> SamplerGen:
    return (yield from _unipc(x, sigmas, bh2=True))
