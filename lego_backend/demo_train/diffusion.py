"""SD1.5's noise schedule (scaled-linear betas, 1000 steps, epsilon prediction) and a small
Euler sampler with classifier-free guidance, for training-time sample grids. The shipped model is
evaluated through the engine itself (evaluate_model.py); this sampler only has to match it."""
from __future__ import annotations

from collections.abc import Callable

import torch

STEPS = 1000
BETA_START, BETA_END = 0.00085, 0.012


def alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(BETA_START ** 0.5, BETA_END ** 0.5, STEPS, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0).float()


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
              acp: torch.Tensor) -> torch.Tensor:
    a = acp[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def v_target(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
             acp: torch.Tensor) -> torch.Tensor:
    """v = sqrt(a) * eps - sqrt(1 - a) * x0: nearly -x0 at high noise, so the loss there is about
    the picture's layout, which only the text can tell (epsilon targets hide it: at high noise
    they are almost the input itself)."""
    a = acp[t].view(-1, 1, 1, 1)
    return a.sqrt() * noise - (1 - a).sqrt() * x0


def min_snr_weight(t: torch.Tensor, acp: torch.Tensor, gamma: float = 5.0) -> torch.Tensor:
    """Min-SNR loss weighting for epsilon prediction: min(snr, gamma) / snr. Down-weights the
    nearly-clean timesteps whose epsilon targets are noisy and uninformative."""
    snr = acp[t] / (1 - acp[t])
    return torch.clamp(snr, max=gamma) / snr


EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # x, t, cond -> out


@torch.no_grad()
def euler_sample(eps: EpsFn, cond: torch.Tensor, uncond: torch.Tensor, shape: tuple[int, ...],
                 *, steps: int = 20, cfg: float = 5.0, generator: torch.Generator | None = None,
                 prediction: str = "epsilon") -> torch.Tensor:
    """k-diffusion-style Euler on sigma = sqrt((1 - a) / a), "normal" (evenly spaced timesteps)
    schedule; returns the scaled latent (divide by the VAE factor before decoding)."""
    acp = alphas_cumprod()
    ts = torch.linspace(STEPS - 1, 0, steps)
    sig_all = ((1 - acp) / acp).sqrt()
    sigmas = torch.cat([_interp(sig_all, ts), torch.zeros(1)])
    x = torch.randn(shape, generator=generator) * sigmas[0]
    n = shape[0]
    for i in range(steps):
        s = sigmas[i]
        t = _sigma_to_t(s, sig_all)
        xin = torch.cat([x, x]) / (s * s + 1).sqrt()
        e = eps(xin, torch.full((2 * n,), float(t)), torch.cat([cond, uncond]))
        e_c, e_u = e[:n], e[n:]
        e = e_u + cfg * (e_c - e_u)
        if prediction == "v_prediction":  # x0 from v, in the sampler's VE terms
            denoised = x / (s * s + 1) - e * s / (s * s + 1).sqrt()
        else:
            denoised = x - s * e
        x = x + (x - denoised) / s * (sigmas[i + 1] - s)
    return x


def _interp(values: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    lo = ts.floor().long().clamp(0, STEPS - 1)
    hi = (lo + 1).clamp(max=STEPS - 1)
    w = ts - lo
    return values[lo] * (1 - w) + values[hi] * w


def _sigma_to_t(sigma: torch.Tensor, sig_all: torch.Tensor) -> float:
    log_s = sig_all.log()
    idx = int(torch.searchsorted(log_s, sigma.log()).clamp(1, STEPS - 1))
    lo, hi = log_s[idx - 1], log_s[idx]
    w = float((sigma.log() - lo) / (hi - lo))
    return idx - 1 + min(max(w, 0.0), 1.0)
