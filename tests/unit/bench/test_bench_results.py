"""results.json: shape, ratios, and `main_bench` writing it (measurement faked, no server)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lego_backend.bench import run as bench_run
from lego_backend.bench.config import full_config, quick_config
from lego_backend.bench.measure import ModeMeasurement, capacity_estimate
from lego_backend.bench.results import MODE_KEYS, build_results, ratios, validate_results
from lego_backend.bench.sweep import SearchPlan, search_max

MACHINE = {"cpu_count": 2, "platform": "test", "torch": "0"}


def measurement(mode: str, rate_threshold: float, burst_threshold: float,
                resident: int) -> ModeMeasurement:
    def rate(x):
        return (1.0 if x <= rate_threshold else 0.4), {"p50_ms": 10 * x, "p95_ms": 20 * x,
                                                       "p99_ms": 30 * x, "trace": {"rate": x}}

    def burst(x):
        return (0.95 if x <= burst_threshold else 0.2), {}

    m = ModeMeasurement(mode, standalone_ms={"txt2img": 100.0})
    m.rate = search_max(rate, SearchPlan(start=1.0, growth=2.0, bisect_steps=1))
    m.burst = search_max(burst, SearchPlan(start=2.0, growth=2.0, floor=1.0, bisect_steps=1))
    m.burst_base_rate = 0.5
    m.services = {"mode": mode, "services": [], "resident_weight_bytes": resident,
                  "mean_denoiser_batch": 1.5}
    m.saturation = {"requests": 36, "requests_per_s": rate_threshold * 0.75}
    return m


def doc():
    modes = {"monolithic": measurement("monolithic", 2.0, 2.0, 3000),
             "micro": measurement("micro", 4.0, 4.0, 1000)}
    return build_results(quick_config().as_dict(), modes, MACHINE)


def test_built_results_are_valid_json_with_every_mode_key():
    results = json.loads(json.dumps(doc()))
    assert validate_results(results) == []
    assert set(results) >= {"machine", "config", "modes"}
    for entry in results["modes"].values():
        assert set(MODE_KEYS) <= set(entry)
    mono, micro = results["modes"]["monolithic"], results["modes"]["micro"]
    # bracket [2, 4] then one bisection at 3: fails
    assert mono["rate_at_slo90"] == 2.0 and micro["rate_at_slo90"] == 4.0
    assert mono["p50_ms"] == 20.0 and mono["latency_at_rate"] == 2.0
    assert mono["burst_at_slo90"] == 2.0 and micro["burst_at_slo90"] == 4.0
    assert mono["resident_weight_bytes"] == 3000 and micro["mean_denoiser_batch"] == 1.5
    assert mono["saturated_rps"] == 1.5 and micro["saturation"]["requests"] == 36
    assert [p["value"] for p in mono["rate_sweep"]] == [1.0, 2.0, 4.0, 3.0]
    assert "latency_percentiles" in results["config"]
    assert results["config"]["slo_scale"] == 5.0 and results["config"]["quick"] is True


def test_ratios_micro_over_monolithic():
    r = ratios(doc())
    assert r == {"rate_at_slo90": 2.0, "burst_at_slo90": 2.0,
                 "resident_weight_bytes": pytest.approx(1 / 3, abs=1e-4),
                 "saturated_rps": 2.0}
    assert ratios({"modes": {"micro": {}}}) == {}


def test_nothing_sustained_gives_zero_and_null_percentiles():
    m = measurement("monolithic", 0.0, 0.0, 0)
    results = build_results({"mix": {}, "slo_scale": 5, "seed": 1}, {"monolithic": m}, MACHINE)
    entry = results["modes"]["monolithic"]
    assert entry["rate_at_slo90"] == 0.0 and entry["p99_ms"] is None
    assert validate_results(results) == []


def test_validate_reports_missing_and_mistyped_fields():
    results = json.loads(json.dumps(doc()))
    del results["modes"]["micro"]["p95_ms"]
    results["modes"]["monolithic"]["rate_at_slo90"] = "fast"
    results["modes"]["monolithic"]["rate_sweep"][0] = {"value": 1.0}
    del results["machine"]["torch"]
    problems = validate_results(results)
    assert "modes.micro.p95_ms missing" in problems
    assert "modes.monolithic.rate_at_slo90 is not a number" in problems
    assert "modes.monolithic.rate_sweep[0] lacks value/attainment" in problems
    assert "machine.torch missing" in problems
    assert validate_results([]) == ["results is not an object"]
    assert "modes missing or empty" in validate_results({"machine": MACHINE, "config": {}})


def test_capacity_estimate_is_the_inverse_mean_standalone_latency():
    cfg = full_config()
    ms = {k: 200.0 for k, _ in cfg.mix.weights}
    assert capacity_estimate(ms, cfg) == pytest.approx(5.0)


def test_point_seeds_are_shared_across_modes_and_differ_across_points():
    cfg = quick_config()
    assert cfg.point_seed("rate", 1.5) == quick_config().point_seed("rate", 1.5)
    assert cfg.point_seed("rate", 1.5) != cfg.point_seed("rate", 2.0)
    assert cfg.point_seed("rate", 1.5) != cfg.point_seed("burst", 1.5)


def test_modes_run_slo_source_first():
    assert bench_run._ordered_modes("micro,monolithic") == ["monolithic", "micro"]
    assert bench_run._ordered_modes("micro") == ["micro"]
    with pytest.raises(ValueError):
        bench_run._ordered_modes("micro,micro")


def test_main_bench_writes_results_and_plot(tmp_path: Path, monkeypatch, capsys):
    seen = []

    def fake_measure(mode, cfg, models, work, out, prompts, anchors):
        seen.append((mode, anchors.slo_ms))
        if anchors.slo_ms is None:
            anchors.slo_ms, anchors.rate_start, anchors.burst_base = {"txt2img": 500.0}, 1.0, 1.0
        return measurement(mode, 2.0 if mode == "monolithic" else 4.0, 3.0,
                           3000 if mode == "monolithic" else 1000)

    monkeypatch.setattr(bench_run, "_measure_mode", fake_measure)
    monkeypatch.setattr(bench_run, "_models", lambda args: tmp_path / "models")
    out = tmp_path / "out"
    assert bench_run.main_bench(["--out", str(out), "--quick", "--modes", "micro,monolithic",
                                 "--slo-scale", "4"]) == 0
    # monolithic decides the SLOs; micro reuses them
    assert seen == [("monolithic", None), ("micro", {"txt2img": 500.0})]
    results = json.loads((out / "results.json").read_text("utf-8"))
    assert validate_results(results) == []
    assert results["config"]["slo_scale"] == 4.0 and results["config"]["quick"] is True
    assert results["config"]["slo_ms"] == {"txt2img": 500.0}
    assert results["ratios"]["rate_at_slo90"] == 2.0
    printed = capsys.readouterr().out
    assert "micro/monolithic" in printed and "rate_at_slo90 2x" in printed
    pytest.importorskip("matplotlib")
    png = (out / "slo_attainment.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_bench_rejects_duplicate_modes(tmp_path):
    assert bench_run.main_bench(["--out", str(tmp_path), "--modes", "micro,micro"]) == 2
