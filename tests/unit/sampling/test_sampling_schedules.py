from __future__ import annotations

import math

import pytest
import torch

from lego_backend.sampling.names import SCHEDULER_NAMES, UnknownSchedulerError
from lego_backend.sampling.schedules import advanced_sigmas, calculate_sigmas, sampling_sigmas


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 20, 25])
def test_every_scheduler_is_a_decreasing_schedule_ending_at_zero(sd_schedule, name, steps):
    sigmas = calculate_sigmas(sd_schedule, name, steps)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert float(sigmas[-1]) == 0.0 and bool((sigmas[:-1] > 0).all())
    assert bool((sigmas[1:] <= sigmas[:-1]).all())
    if name == "ddim_uniform":  # starts at timestep 1 + k*(steps-1): below sigma_max
        assert 0 < float(sigmas[0]) <= sd_schedule.sigma_max
    else:
        assert float(sigmas[0]) == pytest.approx(14.6146, abs=1e-3)


def test_karras_is_uniform_in_sigma_to_the_one_over_rho(sd_schedule):
    sigmas = calculate_sigmas(sd_schedule, "karras", 10).double()
    ramp = sigmas[:-1] ** (1 / 7)
    assert torch.allclose(ramp.diff(), ramp.diff()[0].expand(9), rtol=1e-4)
    assert float(sigmas[-2]) == pytest.approx(sd_schedule.sigma_min, rel=1e-5)


def test_exponential_is_uniform_in_log_sigma(sd_schedule):
    logs = calculate_sigmas(sd_schedule, "exponential", 8)[:-1].double().log()
    assert torch.allclose(logs.diff(), logs.diff()[0].expand(7), rtol=1e-4)


def test_kl_optimal_is_uniform_in_arctan_sigma(sd_schedule):
    angles = calculate_sigmas(sd_schedule, "kl_optimal", 8)[:-1].double().atan()
    assert torch.allclose(angles.diff(), angles.diff()[0].expand(7), rtol=1e-4)


def test_normal_is_uniform_in_timestep(sd_schedule):
    sigmas = calculate_sigmas(sd_schedule, "normal", 4)
    ts = sd_schedule.timestep(sigmas[:-1])
    assert torch.allclose(ts, torch.tensor([999.0, 666.0, 333.0, 0.0]), atol=1e-2)


def test_sgm_uniform_drops_the_last_point_of_a_finer_grid(sd_schedule):
    ts = sd_schedule.timestep(calculate_sigmas(sd_schedule, "sgm_uniform", 4)[:-1])
    assert torch.allclose(ts, torch.tensor([999.0, 749.25, 499.5, 249.75]), atol=1e-2)


def test_simple_and_beta_pick_entries_of_the_sigma_table(sd_schedule):
    simple = calculate_sigmas(sd_schedule, "simple", 10)
    assert torch.equal(simple[:-1], sd_schedule.sigmas.flip(0)[::100])
    beta = calculate_sigmas(sd_schedule, "beta", 10)
    assert all(bool((sd_schedule.sigmas == s).any()) for s in beta[:-1])
    # Beta(0.6, 0.6) is symmetric: the picks at quantiles 0.9 and 0.1 mirror each other.
    ts = sd_schedule.nearest_timestep(beta[1:-1])
    assert abs(float(ts[0] + ts[-1]) - 999) <= 1


def test_linear_quadratic_starts_linear_then_bends(sd_schedule):
    sigmas = calculate_sigmas(sd_schedule, "linear_quadratic", 10)
    u = 1 - sigmas / sd_schedule.sigma_max
    assert torch.allclose(u[:6], torch.arange(6) * 0.005, atol=1e-5)  # 0.025 over 5 steps
    assert float(u[-1]) == pytest.approx(1.0)


def test_ddim_uniform_keeps_comfyuis_step_count(sd_schedule):
    # 1000 // 30 = 33: timesteps 1, 34, ..., 991 are 31 sigmas, plus the final 0.
    assert len(calculate_sigmas(sd_schedule, "ddim_uniform", 30)) == 32
    sigmas = calculate_sigmas(sd_schedule, "ddim_uniform", 20)
    assert float(sigmas[0]) == float(sd_schedule.sigmas[951])
    assert float(sigmas[-2]) == float(sd_schedule.sigmas[1])


def test_unknown_scheduler_is_refused_by_name(sd_schedule):
    with pytest.raises(UnknownSchedulerError, match="'bogus'"):
        calculate_sigmas(sd_schedule, "bogus", 10)


def test_full_denoise_is_the_plain_schedule(sd_schedule):
    assert torch.equal(sampling_sigmas(sd_schedule, "karras", 20, 1.0),
                       calculate_sigmas(sd_schedule, "karras", 20))


def test_half_denoise_plans_twice_the_steps_and_keeps_the_tail(sd_schedule):
    sigmas = sampling_sigmas(sd_schedule, "normal", 10, 0.5)
    assert len(sigmas) == 11
    assert torch.equal(sigmas, calculate_sigmas(sd_schedule, "normal", 20)[-11:])
    assert float(sigmas[0]) < sd_schedule.sigma_max / 4
    # int(steps / denoise) truncates: 10 / 0.3 -> 33 planned steps
    assert torch.equal(sampling_sigmas(sd_schedule, "karras", 10, 0.3),
                       calculate_sigmas(sd_schedule, "karras", 33)[-11:])


def test_zero_denoise_is_empty(sd_schedule):
    assert sampling_sigmas(sd_schedule, "karras", 20, 0.0).numel() == 0


def test_dpm_2_and_uni_pc_drop_the_penultimate_sigma(sd_schedule):
    for sampler in ("dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"):
        sigmas = sampling_sigmas(sd_schedule, "karras", 10, 1.0, sampler)
        longer = calculate_sigmas(sd_schedule, "karras", 11)
        assert len(sigmas) == 11
        assert torch.equal(sigmas, torch.cat([longer[:-2], longer[-1:]]))
    assert torch.equal(sampling_sigmas(sd_schedule, "karras", 10, 1.0, "euler"),
                       calculate_sigmas(sd_schedule, "karras", 10))


def test_advanced_slicing(sd_schedule):
    full = calculate_sigmas(sd_schedule, "karras", 20)
    assert torch.equal(advanced_sigmas(full, 0, 10000, False), full)
    head = advanced_sigmas(full, 0, 12, True)  # leftover noise: stop at sigma_12
    assert torch.equal(head, full[:13])
    tail = advanced_sigmas(full, 12, 10000, False)  # the refiner's part
    assert torch.equal(tail, full[12:])
    middle = advanced_sigmas(full, 5, 15, False)  # truncated and fully denoised
    assert len(middle) == 11 and torch.equal(middle[:-1], full[5:15])
    assert float(middle[-1]) == 0.0
    assert float(full[15]) > 0  # the input is not modified
    assert advanced_sigmas(full, 20, 10000, False).numel() == 0
    assert advanced_sigmas(full, 10, 10, False).numel() == 0
    assert math.isclose(float(advanced_sigmas(full, 5, 15, True)[-1]), float(full[15]))
