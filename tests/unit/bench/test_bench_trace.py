"""Arrival traces: seeded determinism, rates, and the burst window."""
from __future__ import annotations

import itertools

import pytest

from lego_backend.bench.trace import BurstSpec, bursty_arrivals, poisson_arrivals


def test_poisson_is_deterministic_per_seed_and_differs_across_seeds():
    a = poisson_arrivals(5.0, 60.0, seed=7)
    assert a == poisson_arrivals(5.0, 60.0, seed=7)
    assert a != poisson_arrivals(5.0, 60.0, seed=8)


def test_poisson_arrivals_are_sorted_inside_the_window():
    a = poisson_arrivals(3.0, 100.0, seed=1)
    assert a == sorted(a)
    assert all(0.0 < t < 100.0 for t in a)


@pytest.mark.parametrize("rate", [0.5, 4.0, 20.0])
def test_poisson_count_matches_rate(rate):
    duration = 4000.0 / rate  # ~4000 arrivals: standard deviation ~1.6% of the count
    n = len(poisson_arrivals(rate, duration, seed=3))
    assert abs(n / duration - rate) / rate < 0.06


def test_poisson_gaps_have_exponential_mean_and_spread():
    a = poisson_arrivals(10.0, 500.0, seed=11)
    gaps = [b - x for x, b in itertools.pairwise(a)]
    mean = sum(gaps) / len(gaps)
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    assert mean == pytest.approx(0.1, rel=0.05)
    assert var ** 0.5 / mean == pytest.approx(1.0, rel=0.1)  # CV of an exponential is 1


def test_zero_rate_is_empty_and_negative_rate_is_an_error():
    assert poisson_arrivals(0.0, 10.0, seed=1) == []
    with pytest.raises(ValueError):
        poisson_arrivals(-1.0, 10.0, seed=1)


def _count(a, lo, hi):
    return sum(lo <= t < hi for t in a)


def test_burst_multiplies_the_rate_inside_the_window_only():
    spec = BurstSpec(base_rate=5.0, multiplier=4.0, window_start_s=400.0, window_s=200.0,
                     duration_s=1000.0)
    a = bursty_arrivals(spec, seed=5)
    assert a == sorted(a)
    inside = _count(a, 400.0, 600.0) / 200.0
    before = _count(a, 0.0, 400.0) / 400.0
    after = _count(a, 600.0, 1000.0) / 400.0
    assert inside == pytest.approx(20.0, rel=0.06)
    assert before == pytest.approx(5.0, rel=0.08)
    assert after == pytest.approx(5.0, rel=0.08)
    assert len(a) == pytest.approx(spec.expected_count(), rel=0.05)


def test_burst_is_deterministic_and_rate_at_follows_the_window():
    spec = BurstSpec(2.0, 3.0, 10.0, 5.0, 30.0)
    assert bursty_arrivals(spec, 9) == bursty_arrivals(spec, 9)
    assert bursty_arrivals(spec, 9) != bursty_arrivals(spec, 10)
    assert [spec.rate_at(t) for t in (9.99, 10.0, 14.99, 15.0)] == [2.0, 6.0, 6.0, 2.0]
    assert spec.expected_count() == pytest.approx(2.0 * 30 + 2.0 * 2 * 5)


def test_burst_window_is_clipped_to_the_trace():
    spec = BurstSpec(1.0, 10.0, 8.0, 100.0, 10.0)
    a = bursty_arrivals(spec, 2)
    assert all(0.0 < t < 10.0 for t in a)
    assert spec.expected_count() == pytest.approx(10.0 + 9.0 * 2.0)


def test_burst_multiplier_one_is_plain_poisson_in_distribution():
    spec = BurstSpec(6.0, 1.0, 100.0, 100.0, 600.0)
    n = len(bursty_arrivals(spec, 4))
    assert n == pytest.approx(3600, rel=0.06)


def test_negative_multiplier_is_an_error():
    with pytest.raises(ValueError):
        bursty_arrivals(BurstSpec(1.0, -2.0, 0.0, 1.0, 5.0), 1)
