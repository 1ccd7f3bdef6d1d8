from __future__ import annotations

import pytest
import torch
from sampling_toys import gaussian_denoise, start_latent

from lego_backend.sampling.driver import run_sampler
from lego_backend.sampling.names import SUPPORTED_SAMPLERS
from lego_backend.sampling.registry import build_sampler
from lego_backend.sampling.schedules import karras
from lego_backend.sampling.seam import DenoiseRequest, GuidedPrediction, MissingUncondError

SIGMAS = karras(6, 0.03, 14.6)


def requests_of(name, sigmas=SIGMAS):
    seen: list[DenoiseRequest] = []

    def denoise(request):
        seen.append(request)
        return gaussian_denoise(request)

    run_sampler(build_sampler(name, start_latent((1, 2, 4, 4), 14.6), sigmas, 0), denoise)
    return seen


def test_euler_asks_once_per_step_at_the_schedules_sigmas():
    seen = requests_of("euler")
    assert [r.step for r in seen] == [0, 1, 2, 3, 4, 5]
    assert all(r.total_steps == 6 for r in seen)
    assert torch.allclose(torch.stack([r.sigma for r in seen]), SIGMAS[:-1])
    assert all(r.sigma.ndim == 0 and r.x.shape == (1, 2, 4, 4) for r in seen)


def test_heun_asks_twice_per_step_except_the_last():
    seen = requests_of("heun")
    assert [r.step for r in seen] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert [float(r.sigma) for r in seen[:2]] == pytest.approx([float(SIGMAS[0]),
                                                                float(SIGMAS[1])])


def test_dpm_2_evaluates_at_the_log_midpoint():
    seen = requests_of("dpm_2")
    assert len(seen) == 11
    assert float(seen[1].sigma) == pytest.approx(float((SIGMAS[0] * SIGMAS[1]).sqrt()), rel=1e-6)


@pytest.mark.parametrize("name", sorted(SUPPORTED_SAMPLERS))
def test_every_sampler_reports_each_step_once_in_order(name):
    calls = []
    x = start_latent((1, 2, 4, 4), 14.6)
    run_sampler(build_sampler(name, x, SIGMAS, 0), gaussian_denoise,
                on_step=lambda step, total, x, denoised: calls.append((step, total, x.shape,
                                                                        denoised.shape)))
    assert [c[0] for c in calls] == list(range(6))
    assert all(c[1] == 6 and c[2] == c[3] == (1, 2, 4, 4) for c in calls)


def test_on_step_gets_the_step_start_and_its_prediction():
    previews = []
    x = start_latent((1, 2, 4, 4), 14.6)
    run_sampler(build_sampler("euler", x, SIGMAS, 0), gaussian_denoise,
                on_step=lambda step, total, x_, d: previews.append((x_, d)))
    assert torch.equal(previews[0][0], x)
    expected = gaussian_denoise(DenoiseRequest(x, SIGMAS[0], 0, 6))
    assert isinstance(expected, torch.Tensor) and torch.equal(previews[0][1], expected)


def test_empty_schedule_returns_the_latent_without_evaluations():
    x = torch.randn(1, 4, 2, 2)
    out = run_sampler(build_sampler("euler", x, torch.zeros(0), 0),
                      lambda r: pytest.fail("no evaluation expected"))
    assert out is x


def test_interleaved_generators_equal_separate_runs():
    """What a batching runtime does: advance many requests' samplers in lockstep. Each result
    must be exactly what the request would get alone (noise is per request)."""
    xs = [start_latent((1, 2, 4, 4), 14.6, seed) for seed in (1, 2)]
    alone = [run_sampler(build_sampler("dpmpp_2m_sde", x, SIGMAS, seed), gaussian_denoise)
             for x, seed in zip(xs, (10, 20))]
    gens = [build_sampler("dpmpp_2m_sde", x, SIGMAS, seed) for x, seed in zip(xs, (10, 20))]
    pending = [next(g) for g in gens]
    results: list = [None, None]
    while any(r is None for r in results):
        batch_x = torch.cat([p.x for i, p in enumerate(pending) if results[i] is None])
        batch_sigma = torch.stack([p.sigma for i, p in enumerate(pending) if results[i] is None])
        batch_d = gaussian_denoise(DenoiseRequest(batch_x, batch_sigma[0], 0, 6))
        assert isinstance(batch_d, torch.Tensor)
        for k, i in enumerate(i for i in range(2) if results[i] is None):
            try:
                pending[i] = gens[i].send(batch_d[k:k + 1])
            except StopIteration as done:
                results[i] = done.value
    for got, want in zip(results, alone):
        assert torch.equal(got, want)


def test_cfg_pp_renoises_along_the_unconditional_prediction():
    x = start_latent((1, 2, 4, 4), 14.6)
    sigmas = torch.tensor([8.0, 2.0, 0.0])
    gen = build_sampler("euler_cfg_pp", x, sigmas, 0)
    request = next(gen)
    assert request.needs_uncond
    cond, uncond = torch.full_like(x, 0.7), torch.full_like(x, 0.1)
    request = gen.send(GuidedPrediction(cond, uncond))
    assert torch.allclose(request.x, cond + 2.0 * (x - uncond) / 8.0)


def test_cfg_pp_refuses_a_bare_tensor():
    gen = build_sampler("euler_ancestral_cfg_pp", torch.zeros(1, 1, 2, 2),
                        torch.tensor([2.0, 1.0, 0.0]), 0)
    next(gen)
    with pytest.raises(MissingUncondError):
        gen.send(torch.zeros(1, 1, 2, 2))


@pytest.mark.parametrize("name,base", [("euler_cfg_pp", "euler"),
                                       ("euler_ancestral_cfg_pp", "euler_ancestral"),
                                       ("res_multistep_cfg_pp", "res_multistep"),
                                       ("gradient_estimation_cfg_pp", "gradient_estimation")])
def test_cfg_pp_equals_its_base_sampler_without_guidance(name, base):
    x = start_latent((1, 2, 4, 4), 14.6)
    a = run_sampler(build_sampler(name, x, SIGMAS, 3), gaussian_denoise)
    b = run_sampler(build_sampler(base, x, SIGMAS, 3), gaussian_denoise)
    assert torch.allclose(a, b, atol=1e-5)
