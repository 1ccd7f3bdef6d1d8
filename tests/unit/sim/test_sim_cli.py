"""`lego sim` writes a results.json with the fields of `lego bench`; cluster specs parse."""
from __future__ import annotations

import json

import pytest
from sim_helpers import toy_doc

from lego_backend.bench.results import validate_results
from lego_backend.sim.cli import main_sim
from lego_backend.sim.placement import ClusterSpec, parse_bytes


def test_cluster_spec() -> None:
    assert ClusterSpec.parse("gpus=512,mem=40GiB") == ClusterSpec(512, 40 << 30)
    assert ClusterSpec.parse("gpus=8").mem_bytes == 80 << 30
    assert parse_bytes("1.5GB") == 1_500_000_000
    with pytest.raises(ValueError):
        ClusterSpec.parse("cpus=3")


def test_single_trace_run_writes_bench_shaped_results(tmp_path) -> None:
    prof = tmp_path / "toy.json"
    prof.write_text(json.dumps(toy_doc()), "utf-8")
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"checkpoints": [{"name": "t", "family": "toy"}],
                               "lora_probability": 0.2, "controlnet_probability": 0.2,
                               "loras_per_family": 3, "controlnets_per_family": 2}), "utf-8")
    out = tmp_path / "out"
    rc = main_sim(["--cluster", "gpus=2", "--profile", str(prof), "--mix", str(mix),
                   "--trace", "poisson:rate=20,duration=10", "--out", str(out)])
    assert rc == 0
    results = json.loads((out / "results.json").read_text("utf-8"))
    assert validate_results(results) == []
    assert set(results["modes"]) == {"micro", "monolithic"}
    assert results["modes"]["micro"]["rate_sweep"][0]["n"] > 100


def test_bad_cluster_is_a_usage_error(tmp_path, capsys) -> None:
    assert main_sim(["--cluster", "gpus=0", "--out", str(tmp_path)]) == 2


def test_log_and_diurnal_traces_run(tmp_path) -> None:
    prof = tmp_path / "toy.json"
    prof.write_text(json.dumps(toy_doc()), "utf-8")
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps({"checkpoints": [{"name": "t", "family": "toy"}]}), "utf-8")
    log = tmp_path / "requests.csv"
    log.write_text("arrival_s,base_model,loras,controlnets\n"
                   + "".join(f"{i * 0.05},t,{'l1' if i % 2 else ''},{'c1' if i % 3 == 0 else ''}\n"
                             for i in range(200)), "utf-8")
    for trace in (f"log:{log}", "diurnal:rate=10,hours=3,hour_s=5"):
        out = tmp_path / trace.split(":")[0]
        assert main_sim(["--cluster", "gpus=2", "--profile", str(prof), "--mix", str(mix),
                         "--trace", trace, "--mode", "micro", "--out", str(out)]) == 0
        doc = json.loads((out / "results.json").read_text("utf-8"))
        assert validate_results(doc) == [] and list(doc["modes"]) == ["micro"]
        assert doc["config"]["trace"]["kind"] == trace.split(":")[0]


def test_speed_benchmark_reports_requests_per_minute(tmp_path) -> None:
    """`lego sim --speed` is a benchmark: it runs and reports, it asserts no speed."""
    import json

    from lego_backend.sim.cli import main_sim
    assert main_sim(["--speed", "--speed-gpus", "2", "--speed-requests", "300", "--mode",
                     "micro", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "speed.json").read_text())
    (point,) = doc["points"]
    assert point["gpus"] == 2 and point["requests"] > 200
    assert point["requests_per_wall_minute"] > 0 and point["events"] > 0
