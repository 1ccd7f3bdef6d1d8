"""The bench against itself: a replay's figures compared point by point with the bench run it
replayed, with the fidelity check's error measure (relative to the bench's figure)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lego_backend.bench.mix import MixConfig
from lego_backend.bench.replay import _config
from lego_backend.sim.fidelity import average_runs, compare_runs

RECORDED = Path(__file__).parents[1] / "sim" / "data" / "fidelity" / "bench-full-results.json"


def _point(value: float, p50: float, p95: float, att: float) -> dict:
    return {"value": value, "n": 40, "p50_ms": p50, "p95_ms": p95, "attainment": att,
            "trace": {"kind": "poisson", "rate": value, "duration_s": 10.0, "seed": 1}}


def test_replay_errors_are_relative_to_the_bench_run() -> None:
    first = {"modes": {"micro": {"rate_sweep": [_point(1.0, 400, 800, 1.0),
                                                _point(2.0, 500, 1000, 0.8)],
                                 "burst_sweep": []}}}
    second = {"modes": {"micro": {"rate_sweep": [_point(1.0, 440, 760, 1.0),
                                                 _point(2.0, 400, 1000, 0.9)],
                                  "burst_sweep": []}}}
    report = compare_runs(first, second)
    rows = report["points"]
    assert [r["p50_rel_error"] for r in rows] == [pytest.approx(0.1), pytest.approx(-0.2)]
    assert [r["p95_rel_error"] for r in rows] == [pytest.approx(-0.05), pytest.approx(0.0)]
    assert rows[1]["attainment_rel_error"] == pytest.approx(0.125)
    assert report["summary"]["p50"]["mean_abs"] == pytest.approx(0.15)
    assert report["summary"]["p50"]["within_15pct"] == pytest.approx(0.5)


def test_the_replay_uses_the_bench_runs_own_settings() -> None:
    bench = json.loads(RECORDED.read_text())
    cfg = _config(bench)
    assert cfg.mix == MixConfig()  # the recorded run used the default mix
    assert cfg.seed == bench["config"]["seed"] and not cfg.quick
    assert cfg.timeout_slo_factor == bench["config"]["timeout_slo_factor"]


def test_the_mean_of_runs_averages_each_point() -> None:
    first = {"modes": {"micro": {"rate_sweep": [_point(1.0, 400, 800, 1.0)]}}}
    second = {"modes": {"micro": {"rate_sweep": [_point(1.0, 500, 700, 0.8)]}}}
    mean = average_runs([first, second])["modes"]["micro"]["rate_sweep"][0]
    assert (mean["p50_ms"], mean["p95_ms"], mean["attainment"]) == (450, 750, 0.9)
    assert first["modes"]["micro"]["rate_sweep"][0]["p50_ms"] == 400  # inputs untouched


def test_runs_of_different_points_are_refused() -> None:
    first = {"modes": {"micro": {"rate_sweep": [_point(1.0, 400, 800, 1.0)]}}}
    second = {"modes": {"micro": {"rate_sweep": [_point(2.0, 400, 800, 1.0)]}}}
    with pytest.raises(ValueError, match="not a replay"):
        compare_runs(first, second)
