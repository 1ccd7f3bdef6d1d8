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


def test_speed_normalized_errors_take_out_the_machines_drift() -> None:
    # the replay's point 1 ran on a machine 25% slower (its lone probes: 250 vs 200 ms) and
    # was 25% slower; point 2 had no probes and is compared as measured
    first = {"modes": {"micro": {"rate_sweep": [dict(_point(1.0, 400, 800, 1.0),
                                                     lone_probe_ms=[190.0, 210.0]),
                                                _point(2.0, 500, 1000, 0.8)]}}}
    second = {"modes": {"micro": {"rate_sweep": [dict(_point(1.0, 500, 1000, 1.0),
                                                      lone_probe_ms=[250.0]),
                                                 _point(2.0, 550, 1000, 0.8)]}}}
    raw = compare_runs(first, second)["points"]
    norm = compare_runs(first, second, normalize=True)["points"]
    assert raw[0]["p50_rel_error"] == pytest.approx(0.25)
    assert norm[0]["p50_rel_error"] == 0.0 == norm[0]["p95_rel_error"]
    assert norm[1]["p50_rel_error"] == raw[1]["p50_rel_error"] == pytest.approx(0.1)
