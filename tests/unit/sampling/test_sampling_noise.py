from __future__ import annotations

import math

import torch

from lego_backend.sampling.noise import (
    BrownianTreeNoiseSampler,
    brownian_noise_sampler,
    default_noise_sampler,
    prepare_noise,
)


def test_prepare_noise_matches_comfyuis_seeded_randn():
    with torch.random.fork_rng():  # ComfyUI seeds the global CPU generator; we must not
        torch.manual_seed(1234)
        expected = torch.randn(2, 4, 8, 8)
    assert torch.equal(prepare_noise((2, 4, 8, 8), 1234), expected)
    assert torch.equal(prepare_noise((2, 4, 8, 8), 1234), prepare_noise((2, 4, 8, 8), 1234))
    assert not torch.equal(prepare_noise((2, 4, 8, 8), 1234), prepare_noise((2, 4, 8, 8), 1235))


def test_prepare_noise_accepts_64_bit_seeds():
    assert prepare_noise((1, 4, 2, 2), 2 ** 64 - 1).shape == (1, 4, 2, 2)


def test_batch_index_picks_the_noise_of_that_image_in_a_long_batch():
    full = prepare_noise((3, 4, 8, 8), 7)
    picked = prepare_noise((2, 4, 8, 8), 7, batch_index=[2, 0])
    assert torch.equal(picked[0], full[2]) and torch.equal(picked[1], full[0])


def test_default_noise_sampler_is_private_and_seeded():
    x = torch.zeros(1, 4, 8, 8)
    a, b = default_noise_sampler(x, 5), default_noise_sampler(x, 5)
    first = a(2.0, 1.0)
    torch.randn(100)  # global RNG use in between must not matter
    assert torch.equal(first, b(2.0, 1.0)) and torch.equal(a(1.0, 0.5), b(1.0, 0.5))
    # ComfyUI's convention: the step-noise generator restarts from the request seed.
    assert torch.equal(first, prepare_noise(x.shape, 5))


def test_brownian_noise_is_standard_normal_and_seeded():
    x = torch.zeros(1, 4, 32, 32)
    sigmas = torch.tensor([14.6146, 3.0, 0.5, 0.0292, 0.0])
    a, b = brownian_noise_sampler(x, sigmas, 3), brownian_noise_sampler(x, sigmas, 3)
    n = a(14.6146, 3.0)
    assert torch.equal(n, b(14.6146, 3.0))
    assert abs(float(n.mean())) < 0.05 and abs(float(n.std()) - 1) < 0.05
    assert not torch.equal(n, brownian_noise_sampler(x, sigmas, 4)(14.6146, 3.0))


def test_brownian_increments_add_up_over_sub_intervals():
    x = torch.zeros(1, 2, 4, 4)
    tree = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=11)
    whole = tree(8.0, 2.0) * math.sqrt(6.0)
    halves = tree(8.0, 4.0) * math.sqrt(4.0) + tree(4.0, 2.0) * math.sqrt(2.0)
    assert torch.allclose(whole, halves, atol=1e-4)
    # The answer does not depend on the order of queries.
    again = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=11)
    again(0.5, 0.2)
    assert torch.allclose(again(8.0, 2.0) * math.sqrt(6.0), whole, atol=1e-5)
