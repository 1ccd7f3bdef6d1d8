from __future__ import annotations

import math

import pytest
import torch

from lego_backend.sampling.model_sampling import DiscreteSchedule


def test_sd_sigma_table(sd_schedule):
    assert sd_schedule.num_timesteps == 1000
    assert sd_schedule.sigma_min == pytest.approx(0.0291675, rel=1e-4)
    assert sd_schedule.sigma_max == pytest.approx(14.614642, rel=1e-5)
    assert bool((sd_schedule.sigmas.diff() > 0).all())


def test_timestep_and_sigma_are_inverse(sd_schedule):
    sigmas = torch.tensor([14.6146, 5.0, 1.0, 0.1, 0.0292])
    back = sd_schedule.sigma(sd_schedule.timestep(sigmas))
    assert torch.allclose(back, sigmas, rtol=1e-4)
    assert float(sd_schedule.timestep(sd_schedule.sigma_max)) == pytest.approx(999.0)
    assert float(sd_schedule.timestep(sd_schedule.sigmas[500])) == pytest.approx(500.0)
    t = float(sd_schedule.timestep(1.0))
    assert 353 < t < 355 and t != int(t)  # continuous
    assert float(sd_schedule.nearest_timestep(1.0)) == round(t)
    assert float(sd_schedule.timestep(100.0)) == 999.0  # clamped to the table


def test_sigma_interpolates_log_sigma(sd_schedule):
    mid = float(sd_schedule.sigma(10.5))
    assert mid == pytest.approx(math.sqrt(float(sd_schedule.sigmas[10] * sd_schedule.sigmas[11])),
                                rel=1e-5)


def test_scale_input_and_eps_denoising(sd_schedule):
    x = torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([2.0, 0.5])
    scaled = sd_schedule.scale_input(x, sigma)
    assert torch.allclose(scaled[0], x[0] / math.sqrt(5.0))
    assert torch.allclose(scaled[1], x[1] / math.sqrt(1.25))
    eps = torch.randn_like(x)
    assert torch.allclose(sd_schedule.to_denoised(eps, x, sigma)[1], x[1] - 0.5 * eps[1])


def test_v_prediction_recovers_x0():
    schedule = DiscreteSchedule.from_config(prediction_type="v_prediction")
    x0, eps, sigma = torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), 3.0
    alpha, sigma_vp = 1 / math.sqrt(1 + sigma ** 2), sigma / math.sqrt(1 + sigma ** 2)
    v = alpha * eps - sigma_vp * x0  # what a v-model outputs for x_vp = alpha x0 + sigma_vp eps
    x_ve = x0 + sigma * eps
    assert torch.allclose(schedule.to_denoised(v, x_ve, torch.tensor(sigma)), x0, atol=1e-5)


def test_noise_scaling(sd_schedule):
    noise, latent = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    sigma = torch.tensor(sd_schedule.sigma_max)
    full = sd_schedule.noise_scaling(sigma, noise, torch.zeros_like(latent), max_denoise=True)
    assert torch.allclose(full, noise * math.sqrt(1 + sd_schedule.sigma_max ** 2))
    partial = sd_schedule.noise_scaling(torch.tensor(2.0), noise, latent, max_denoise=False)
    assert torch.allclose(partial, latent + 2.0 * noise)
    assert sd_schedule.inverse_noise_scaling(sigma, latent) is latent
    assert sd_schedule.is_max_denoise(sd_schedule.sigma_max)
    assert sd_schedule.is_max_denoise(float(torch.tensor(sd_schedule.sigma_max).float()))
    assert not sd_schedule.is_max_denoise(10.0)


def test_unknown_configurations_are_refused():
    with pytest.raises(ValueError, match="cosine"):
        DiscreteSchedule.from_config(beta_schedule="cosine")
    with pytest.raises(ValueError, match="sample"):
        DiscreteSchedule.from_config(prediction_type="sample")  # type: ignore[arg-type]
