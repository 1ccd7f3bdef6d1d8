"""Traces: the bench's generators are reused, diurnal follows the Azure Functions shape, request
logs load from CSV and JSONL; mixes draw Zipf-popular checkpoints and adapters."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from lego_backend.bench import trace as bench_trace
from lego_backend.sim import traces
from lego_backend.sim.workload import Mix, zipf_weights


def test_poisson_and_bursty_are_the_benchs_own() -> None:
    assert traces.poisson_arrivals is bench_trace.poisson_arrivals
    assert traces.bursty_arrivals is bench_trace.bursty_arrivals


def test_hourly_shape_is_the_packaged_azure_trace() -> None:
    shape = traces.hourly_shape()
    assert len(shape) == 347 and min(shape) > 0


def test_diurnal_mean_rate_and_shape() -> None:
    spec = traces.DiurnalSpec(mean_rate=20.0, hours=24, hour_s=100.0)
    arr = traces.diurnal_arrivals(spec, seed=1)
    assert arr == sorted(arr) and 0 <= arr[0] and arr[-1] < 2400.0
    assert len(arr) == pytest.approx(20.0 * 2400, rel=0.05)
    shape = traces.hourly_shape()[:24]
    per_hour = Counter(int(t // 100.0) for t in arr)
    busiest, quietest = shape.index(max(shape)), shape.index(min(shape))
    assert per_hour[busiest] > per_hour[quietest]
    assert traces.diurnal_arrivals(spec, seed=1) == arr  # deterministic


def test_request_log_csv_and_jsonl(tmp_path) -> None:
    csv_path = tmp_path / "log.csv"
    csv_path.write_text("arrival_s,base_model,loras,controlnets\n"
                        "12.5,sd15-base,a;b,\n10.0,sdxl-base,,canny\n", "utf-8")
    fams = {"sd15-base": "sd15", "sdxl-base": "sdxl"}
    steps = {"sd15": 50, "sdxl": 40}
    reqs = traces.load_request_log(csv_path, fams, steps)
    assert [(r.arrival, r.checkpoint, r.loras, r.controlnets, r.steps) for r in reqs] == [
        (0.0, "sdxl-base", (), ("canny",), 40), (2.5, "sd15-base", ("a", "b"), (), 50)]
    jl = tmp_path / "log.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [
        {"arrival_s": 1.0, "base_model": "x", "family": "sd15", "loras": ["l1"], "steps": 4},
        {"arrival_s": 3.0, "base_model": "sd15-base"}]), "utf-8")
    reqs = traces.load_request_log(jl, fams, steps)
    assert [(r.arrival, r.family, r.loras, r.steps) for r in reqs] == [
        (0.0, "sd15", ("l1",), 4), (2.0, "sd15", (), 50)]
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,base_model\n1,unknown\n", "utf-8")
    with pytest.raises(ValueError, match="no family"):
        traces.load_request_log(bad, fams, steps)


def test_mix_is_zipf_popular_and_deterministic() -> None:
    mix = Mix()
    steps = {"sd15": 50, "sdxl": 50}
    reqs = mix.draw([0.0] * 6000, steps, seed=5)
    assert reqs == mix.draw([0.0] * 6000, steps, seed=5)
    counts = Counter(r.checkpoint for r in reqs)
    names = [c.name for c in mix.checkpoints]
    assert counts[names[0]] > counts[names[1]] > counts[names[-1]]
    assert counts[names[0]] / len(reqs) == pytest.approx(mix.shares()[names[0]], abs=0.03)
    with_lora = sum(bool(r.loras) for r in reqs) / len(reqs)
    assert with_lora == pytest.approx(mix.lora_probability, abs=0.03)
    loras = Counter(r.loras[0] for r in reqs if r.loras and r.family == "sd15")
    assert loras["sd15-lora-0"] > loras["sd15-lora-9"]
    assert zipf_weights(3, 1.0) == [1.0, 0.5, 1 / 3]
