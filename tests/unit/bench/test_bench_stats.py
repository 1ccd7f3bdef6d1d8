"""SLO attainment and latency percentile math."""
from __future__ import annotations

import random

import numpy as np
import pytest

from lego_backend.bench.stats import (
    ERROR,
    OK,
    REJECTED,
    TIMEOUT,
    RequestResult,
    attainment,
    percentile,
    summarize,
)


def res(status=OK, latency=100.0, slo=200.0, kind="txt2img", i=0):
    return RequestResult(i, kind, 0.0, 0.0, status, latency if status == OK else None, slo)


def test_percentile_known_values():
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 4.0
    assert percentile(xs, 50) == 2.5
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_matches_numpy_linear():
    rng = random.Random(0)
    for n in (2, 5, 17, 100):
        xs = [rng.expovariate(1.0) for _ in range(n)]
        for q in (1, 50, 90, 95, 99, 99.9):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_attainment_counts_late_rejected_errors_and_timeouts_as_misses():
    results = [res(latency=150), res(latency=200), res(latency=201), res(REJECTED),
               res(ERROR), res(TIMEOUT), res(latency=5, slo=None), res(latency=10)]
    # met: 150, 200 (on the deadline), no-SLO 5, 10 -> 4 of 8
    assert attainment(results) == 0.5
    with pytest.raises(ValueError):
        attainment([])


def test_summarize_counts_and_percentiles_over_completed_only():
    results = [res(latency=float(x), i=x) for x in range(1, 11)] + [res(TIMEOUT), res(REJECTED)]
    s = summarize(results, duration_s=3.21)
    assert (s.n, s.ok, s.timeouts, s.rejected, s.errors) == (12, 10, 1, 1, 0)
    assert s.attainment == pytest.approx(10 / 12)
    assert s.p50_ms == pytest.approx(5.5)
    assert s.p99_ms == pytest.approx(float(np.percentile(range(1, 11), 99)))
    assert s.mean_ms == pytest.approx(5.5)
    assert s.duration_s == 3.21


def test_summarize_without_completions_has_null_percentiles():
    s = summarize([res(TIMEOUT), res(ERROR)], 1.0)
    assert s.attainment == 0.0
    assert (s.p50_ms, s.p95_ms, s.p99_ms, s.mean_ms) == (None, None, None, None)
    assert s.as_dict()["p99_ms"] is None
