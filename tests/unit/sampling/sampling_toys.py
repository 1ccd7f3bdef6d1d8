"""Toy denoisers with closed-form answers for the sampling tests (a uniquely named module so
it cannot clash with other test directories' helpers on sys.path)."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from lego_backend.sampling.seam import DenoiseRequest, GuidedPrediction, Reply

MU, S0 = 0.3, 0.5  # toy data: every latent element ~ N(MU, S0^2), independently


def gaussian_denoise(request: DenoiseRequest) -> Reply:
    """The exact D(x, sigma) = E[x0 | x] for Gaussian data: MU + S0^2/(S0^2+sigma^2) (x - MU)."""
    sigma = float(request.sigma)
    denoised = MU + S0 ** 2 / (S0 ** 2 + sigma ** 2) * (request.x - MU)
    return GuidedPrediction(denoised, denoised) if request.needs_uncond else denoised


def point_denoise(request: DenoiseRequest) -> Reply:
    """Data that is the single point MU: D(x, sigma) = MU whatever x and sigma."""
    denoised = torch.full_like(request.x, MU)
    return GuidedPrediction(denoised, denoised) if request.needs_uncond else denoised


def exact_ode_endpoint(x_start: Tensor, sigma_start: float) -> Tensor:
    """Where the probability-flow ODE takes x_start at sigma_start to at sigma 0: each element
    keeps its standard score, x = MU + (x_T - MU) * S0 / sqrt(S0^2 + sigma_T^2)."""
    return MU + (x_start - MU) * S0 / math.sqrt(S0 ** 2 + sigma_start ** 2)


def start_latent(shape: tuple[int, ...], sigma: float, seed: int = 0) -> Tensor:
    """x_T drawn from the toy data's marginal at sigma: N(MU, S0^2 + sigma^2)."""
    generator = torch.Generator().manual_seed(seed)
    return MU + torch.randn(shape, generator=generator) * math.sqrt(S0 ** 2 + sigma ** 2)
