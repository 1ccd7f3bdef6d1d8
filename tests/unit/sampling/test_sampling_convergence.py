"""Every supported sampler, driven through the seam, against toy data with known answers."""
from __future__ import annotations

import pytest
import torch
from sampling_toys import (
    MU,
    S0,
    exact_ode_endpoint,
    gaussian_denoise,
    point_denoise,
    start_latent,
)

from lego_backend.sampling.driver import run_sampler
from lego_backend.sampling.names import SUPPORTED_SAMPLERS
from lego_backend.sampling.registry import build_sampler
from lego_backend.sampling.schedules import calculate_sigmas, karras

SIGMA_MIN, SIGMA_MAX = 0.0292, 14.6146
FIRST_ORDER = {"euler", "ddim", "euler_cfg_pp", "heunpp2", "gradient_estimation",
               "gradient_estimation_cfg_pp"}
HIGHER_ORDER = {"heun", "dpm_2", "lms", "dpmpp_2m", "ipndm", "ipndm_v", "deis", "res_multistep",
                "res_multistep_cfg_pp", "uni_pc", "uni_pc_bh2"}
STOCHASTIC = {"euler_ancestral", "euler_ancestral_cfg_pp", "dpm_2_ancestral",
              "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m_sde",
              "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde",
              "dpmpp_3m_sde_gpu", "ddpm", "lcm"}


def test_every_supported_sampler_is_classified_here():
    assert FIRST_ORDER | HIGHER_ORDER | STOCHASTIC == SUPPORTED_SAMPLERS


def ode_error(name: str, steps: int) -> float:
    sigmas = karras(steps, SIGMA_MIN, SIGMA_MAX)
    x = start_latent((1, 1, 8, 8), SIGMA_MAX)
    out = run_sampler(build_sampler(name, x, sigmas, 0), gaussian_denoise)
    return float((out - exact_ode_endpoint(x, float(sigmas[0]))).abs().max())


@pytest.mark.parametrize("name", sorted(FIRST_ORDER))
def test_first_order_ode_samplers_converge_linearly(name):
    err_10, err_20, err_30 = (ode_error(name, n) for n in (10, 20, 30))
    assert err_30 < 0.15  # the data has std 0.5; x_T has std 14.6
    assert 1.3 < err_10 / err_20 < 2.6


@pytest.mark.parametrize("name", sorted(HIGHER_ORDER))
def test_higher_order_ode_samplers_converge_fast(name):
    err_10, err_20, err_30 = (ode_error(name, n) for n in (10, 20, 30))
    assert err_30 < 0.02
    assert err_10 / err_20 > 3.5


@pytest.mark.parametrize("name", sorted(STOCHASTIC - {"lcm"}))
def test_stochastic_samplers_reach_the_data_distribution(name):
    sigmas = karras(30, SIGMA_MIN, SIGMA_MAX)
    x = start_latent((1, 2, 32, 32), SIGMA_MAX, seed=1)
    out = run_sampler(build_sampler(name, x, sigmas, 123), gaussian_denoise)
    assert abs(float(out.mean()) - MU) < 0.04
    assert abs(float(out.std()) - S0) < 0.08  # first-order ancestral steps run a bit low


def test_lcm_returns_its_last_prediction():
    sigmas = karras(4, SIGMA_MIN, SIGMA_MAX)
    x = start_latent((1, 2, 4, 4), SIGMA_MAX)
    gen = build_sampler("lcm", x, sigmas, 5)
    request = next(gen)
    for _ in range(3):
        prediction = torch.full_like(x, float(request.sigma))
        request = gen.send(prediction)
        # Re-noised from the prediction to the next level: x = D + sigma_next * z.
        assert 0.5 < float((request.x - prediction).std() / request.sigma) < 1.5
    with pytest.raises(StopIteration) as done:
        gen.send(torch.full_like(x, 0.25))
    assert torch.equal(done.value.value, torch.full_like(x, 0.25))


@pytest.mark.parametrize("name", sorted(SUPPORTED_SAMPLERS))
def test_point_data_is_reached_by_every_sampler(sd_schedule, name):
    sigmas = calculate_sigmas(sd_schedule, "karras", 20)
    x = start_latent((1, 1, 8, 8), SIGMA_MAX, seed=4)
    out = run_sampler(build_sampler(name, x, sigmas, 9), point_denoise)
    # uni_pc ends at sigma 0.001 (like ComfyUI), the others exactly at 0.
    assert torch.allclose(out, torch.full_like(out, MU), atol=5e-3)


@pytest.mark.parametrize("name", sorted(SUPPORTED_SAMPLERS))
def test_same_seed_same_result(name):
    sigmas = karras(8, SIGMA_MIN, SIGMA_MAX)
    x = start_latent((1, 2, 4, 4), SIGMA_MAX)
    runs = [run_sampler(build_sampler(name, x, sigmas, seed), gaussian_denoise)
            for seed in (7, 7, 8)]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(runs[0], runs[2]) == (name not in STOCHASTIC)


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun",
                                  "dpmpp_3m_sde"])
def test_brownian_sde_samplers_converge_along_one_noise_path(name):
    """With the Brownian tree, the same seed is the same noise *path* whatever the step count,
    so finer schedules must approach one solution (strong convergence), far closer than the
    solutions for two seeds are to each other."""
    x = start_latent((1, 2, 8, 8), SIGMA_MAX, seed=1)

    def solve(steps: int, seed: int = 5) -> torch.Tensor:
        sigmas = karras(steps, SIGMA_MIN, SIGMA_MAX)
        return run_sampler(build_sampler(name, x, sigmas, seed), gaussian_denoise)

    fine = solve(40)
    coarse_gap = float((solve(8) - fine).abs().mean())
    gap = float((solve(20) - fine).abs().mean())
    other_seed = float((solve(20, seed=6) - fine).abs().mean())
    assert gap < coarse_gap and gap < 0.1 and other_seed > 0.3
