"""Discrete-time (DDPM-trained) models seen as continuous-sigma denoisers: SD1.x and SD2.x.

Samplers work in the variance-exploding (VE) convention of Karras et al. 2022: x = x0 + sigma*n
and a denoiser D(x, sigma) ~ E[x0 | x]. SD's UNet was trained in the variance-preserving (VP)
convention on 1000 discrete timesteps, x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) n, which is the
same process rescaled: sigma_t = sqrt((1 - abar_t) / abar_t) and x_vp = x_ve / sqrt(1+sigma^2).
This class owns that translation; the denoiser service calls `scale_input`, `nearest_timestep`
and `to_denoised` around the UNet, the sampler driver calls `noise_scaling` once at the start.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

PredictionType = Literal["epsilon", "v_prediction"]
SigmaLike = Tensor | float


def broadcast_sigma(sigma: SigmaLike, like: Tensor) -> Tensor:
    """A 0-d or [batch] sigma shaped to broadcast against `like` ([B, C, H, W])."""
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if s.ndim == 1:
        s = s.reshape(s.shape[:1] + (1,) * (like.ndim - 1))
    return s


def make_betas(beta_schedule: str, num_timesteps: int, beta_start: float,
               beta_end: float) -> Tensor:
    """Diffusers' names: "scaled_linear" is linear in sqrt(beta) (what SD uses; ComfyUI calls it
    "linear"), "linear" is linear in beta. Computed in float64 so the cumulative product over
    1000 steps does not drift before the table is stored as float32."""
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_timesteps,
                              dtype=torch.float64) ** 2
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    raise ValueError(f"beta schedule '{beta_schedule}' is not supported "
                     "(known: scaled_linear, linear)")


class DiscreteSchedule:
    """The sigma table of a discrete-time model and the denoiser arithmetic around its UNet."""

    def __init__(self, betas: Tensor, prediction_type: PredictionType = "epsilon"):
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction type '{prediction_type}' is not supported "
                             "(known: epsilon, v_prediction)")
        alphas_cumprod = torch.cumprod(1.0 - betas.to(torch.float64), dim=0)
        sigmas = ((1.0 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.prediction_type: PredictionType = prediction_type
        # Increasing with the timestep index: sigmas[0] ~ 0.029, sigmas[999] ~ 14.61 for SD.
        self.sigmas: Tensor = sigmas.float()
        self.log_sigmas: Tensor = sigmas.log().float()

    @classmethod
    def from_config(cls, beta_schedule: str = "scaled_linear", beta_start: float = 0.00085,
                    beta_end: float = 0.012, num_train_timesteps: int = 1000,
                    prediction_type: PredictionType = "epsilon") -> DiscreteSchedule:
        """From a diffusers scheduler_config.json's fields; defaults are SD1.x/SD2.x's."""
        return cls(make_betas(beta_schedule, num_train_timesteps, beta_start, beta_end),
                   prediction_type)

    @property
    def num_timesteps(self) -> int:
        return int(self.sigmas.shape[0])

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    # -- sigma <-> timestep ------------------------------------------------------------------

    def timestep(self, sigma: SigmaLike) -> Tensor:
        """Continuous timestep t in [0, T-1] whose interpolated log-sigma equals log(sigma)."""
        log_sigma = torch.as_tensor(sigma, dtype=torch.float32).log()
        table = self.log_sigmas
        low = (torch.searchsorted(table, log_sigma.reshape(-1)) - 1).clamp(0, len(table) - 2)
        low = low.reshape(log_sigma.shape)
        lo, hi = table[low], table[low + 1]
        frac = ((log_sigma - lo) / (hi - lo)).clamp(0.0, 1.0)
        return low.to(torch.float32) + frac

    def nearest_timestep(self, sigma: SigmaLike) -> Tensor:
        """The table index closest in log-sigma, as a float tensor. This is the timestep
        ComfyUI feeds the UNet, so use it for the UNet's `timestep` to reproduce its images."""
        log_sigma = torch.as_tensor(sigma, dtype=torch.float32).log()
        dists = (log_sigma.reshape(1, -1) - self.log_sigmas[:, None]).abs()
        return dists.argmin(dim=0).reshape(log_sigma.shape).to(torch.float32)

    def sigma(self, t: SigmaLike) -> Tensor:
        """Sigma at a (possibly fractional) timestep, interpolating log-sigma linearly."""
        t = torch.as_tensor(t, dtype=torch.float32).clamp(0, self.num_timesteps - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()

    def is_max_denoise(self, first_sigma: float) -> bool:
        """Whether sampling starts from pure noise (ComfyUI's test: sigma0 >= sigma_max)."""
        return first_sigma >= self.sigma_max or abs(first_sigma - self.sigma_max) <= (
            1e-5 * max(abs(first_sigma), abs(self.sigma_max)))

    # -- denoiser arithmetic around the UNet -------------------------------------------------

    def scale_input(self, x: Tensor, sigma: SigmaLike) -> Tensor:
        """VE latent -> the VP input the UNet was trained on."""
        return x / (broadcast_sigma(sigma, x) ** 2 + 1.0) ** 0.5

    def to_denoised(self, model_output: Tensor, x: Tensor, sigma: SigmaLike) -> Tensor:
        """UNet output -> x0 prediction D(x, sigma); `x` is the unscaled (VE) latent.

        epsilon: x0 = x - sigma*eps. v_prediction (v = alpha*eps - sigma_vp*x0 in VP terms)
        rewritten in VE terms is EDM's preconditioning with sigma_data = 1:
        x0 = c_skip*x - c_out*v with c_skip = 1/(sigma^2+1), c_out = sigma/sqrt(sigma^2+1).
        """
        s = broadcast_sigma(sigma, x)
        if self.prediction_type == "epsilon":
            return x - model_output * s
        return x / (s ** 2 + 1.0) - model_output * s / (s ** 2 + 1.0) ** 0.5

    def noise_scaling(self, sigma: SigmaLike, noise: Tensor, latent: Tensor,
                      max_denoise: bool = False) -> Tensor:
        """The starting point x = latent + sigma*noise. From pure noise (max_denoise) ComfyUI
        uses sqrt(1+sigma^2) instead of sigma: the VP marginal at t=T has unit variance, so the
        first UNet input (after scale_input) is exactly the unit Gaussian it was trained on."""
        s = broadcast_sigma(sigma, noise)
        scale = (1.0 + s ** 2) ** 0.5 if max_denoise else s
        return latent + noise * scale

    def inverse_noise_scaling(self, sigma: SigmaLike, latent: Tensor) -> Tensor:
        """Identity for epsilon/v models (flow models would rescale here)."""
        return latent
