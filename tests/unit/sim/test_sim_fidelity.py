"""The fidelity tool replays a bench run's own traces (arrivals, kinds, SLOs) through the
simulator and reports the error per point."""
from __future__ import annotations

import pytest
from sim_helpers import toy_doc

from lego_backend.bench.mix import KINDS
from lego_backend.sim.fidelity import bench_request, compare
from lego_backend.sim.profile import profile_from_dict


def _bench(p50: float, p95: float, slo_ms: float = 1000.0) -> dict:
    rate = {"value": 4.0, "attainment": 1.0, "passed": True, "p50_ms": p50, "p95_ms": p95,
            "trace": {"kind": "poisson", "rate": 4.0, "duration_s": 5.0, "seed": 7}}
    burst = {"value": 2.0, "attainment": 1.0, "passed": True, "p50_ms": p50, "p95_ms": p95,
             "trace": {"kind": "bursty", "base_rate": 2.0, "multiplier": 2.0,
                       "window_start_s": 1.0, "window_s": 2.0, "duration_s": 5.0, "seed": 9}}
    return {"config": {"seed": 1, "slo_scale": 5.0, "timeout_slo_factor": 2.0,
                       "mix": {"steps": 4, "hires_steps": 2, "size": 64, "hires_size": 128},
                       "slo_ms": {k: slo_ms for k in KINDS}},
            "machine": {"cpu_count": 2},
            "modes": {"monolithic": {"rate_sweep": [rate], "burst_sweep": [burst],
                                     "standalone_ms": {"txt2img": 50.0}},
                      "micro": {"rate_sweep": [rate], "burst_sweep": []}}}


def test_compare_reports_relative_errors_per_point() -> None:
    profile = profile_from_dict(toy_doc(), "toy")
    report = compare(_bench(50.0, 60.0), profile)
    assert [(r["mode"], r["sweep"]) for r in report["points"]] == [
        ("monolithic", "rate"), ("monolithic", "burst"), ("micro", "rate")]
    for row in report["points"]:
        assert row["n"] > 5 and row["sim_p50_ms"] is not None
        assert row["p50_rel_error"] == round((row["sim_p50_ms"] - 50.0) / 50.0, 4)
    exact = report["points"][0]
    again = compare(_bench(exact["sim_p50_ms"], exact["sim_p95_ms"]), profile)
    assert again["points"][0]["p50_rel_error"] == 0.0 == again["points"][0]["p95_rel_error"]
    assert report["summary"]["p50"]["points"] == 3
    # toy standalone of a 4-step txt2img: 5 + 4 x 10 + 5 = 50 ms
    assert report["standalone_ms"]["txt2img"]["sim"] == 50.0
    assert report["standalone_ms"]["txt2img"]["bench_monolithic"] == 50.0


def test_the_slos_the_bench_requests_carried_decide_attainment() -> None:
    profile = profile_from_dict(toy_doc(), "toy")
    loose = compare(_bench(50.0, 60.0, slo_ms=10_000.0), profile)
    tight = compare(_bench(50.0, 60.0, slo_ms=20.0), profile)  # below any request's time
    assert all(r["sim_attainment"] == 1.0 for r in loose["points"])
    assert all(r["sim_attainment"] == 0.0 for r in tight["points"])


def test_bench_kinds_map_to_their_work() -> None:
    doc = toy_doc()
    doc["models"].append(dict(doc["models"][0], kind="toy128", resolution=128))
    profile = profile_from_dict(doc, "toy2")
    mix = {"steps": 20, "hires_steps": 10, "size": 64, "hires_size": 128}
    reqs = {k: bench_request(0, 0.0, k, mix, profile, 1.0) for k in KINDS}
    assert reqs["hires_fix"].passes == (("toy128", 10),) and reqs["hires_fix"].steps == 20
    assert reqs["img2img"].image_input and reqs["img2img"].steps == 20
    assert reqs["txt2img_lora_a"].loras != reqs["txt2img_lora_b"].loras
    assert reqs["txt2img_controlnet"].controlnets
    assert len({r.kind for r in reqs.values()}) == len(KINDS)  # one monolithic worker each


def test_recorded_bench_run_is_predicted_within_a_loose_bound() -> None:
    """A real full `lego bench` run on a quiet machine and the CPU profile measured right after
    it (tests/unit/sim/data/fidelity). The goal is 15%; measured: p50 mean |error| 19.7%, p95
    22.6%, attainment within 0.15 on 17 of 23 points, standalone within 6% but img2img (+16.5%).
    This asserts a looser bound (docs/scaling.md, Fidelity)."""
    import json
    from pathlib import Path

    from lego_backend.sim.profile import load_profile
    data = Path(__file__).parent / "data" / "fidelity"
    bench = json.loads((data / "bench-full-results.json").read_text())
    report = compare(bench, load_profile(data / "cpu-profile.json"))
    summary = report["summary"]
    assert len(report["points"]) >= 20
    assert summary["p50"]["mean_abs"] < 0.25 and summary["p95"]["mean_abs"] < 0.3
    near = [abs(r["sim_attainment"] - r["bench_attainment"]) <= 0.15 for r in report["points"]]
    assert sum(near) >= 0.65 * len(near)
    # alone, the simulator's latency per kind is the profile's forwards plus its overheads
    for kind, row in report["standalone_ms"].items():
        assert abs(row["sim"] - row["bench_micro"]) <= 0.2 * row["bench_micro"], kind


def test_calibration_scales_the_profile_by_the_machines_speed_around_each_point() -> None:
    from lego_backend.sim.fidelity import machine_speed, point_speed

    profile = profile_from_dict(toy_doc(), "toy")
    bench = _bench(50.0, 60.0, slo_ms=10_000.0)
    # the toy's lone 4-step txt2img is 50 ms; the bench's probes around the monolithic rate
    # point took 100 ms (a machine running at half speed; one outlier), its burst point has none
    bench["modes"]["micro"]["rate_sweep"] = [dict(bench["modes"]["micro"]["rate_sweep"][0])]
    bench["modes"]["monolithic"]["rate_sweep"][0]["lone_probe_ms"] = [90.0, 100.0, 180.0]
    mix = bench["config"]["mix"]
    assert point_speed(bench["modes"]["monolithic"]["rate_sweep"][0], mix, profile) == 2.0
    assert point_speed(bench["modes"]["monolithic"]["burst_sweep"][0], mix, profile) is None
    # without probes: the mode's own lone runs at its start (monolithic txt2img: 50 ms = 1x)
    assert machine_speed(bench, "monolithic", profile) == 1.0
    assert machine_speed(bench, "micro", profile) is None
    plain = {(r["mode"], r["sweep"]): r for r in compare(bench, profile)["points"]}
    cal = compare(bench, profile, calibrate="point")
    scaled = {(r["mode"], r["sweep"]): r for r in cal["points"]}
    assert scaled["monolithic", "rate"]["machine_speed"] == 2.0
    # a light load on a host twice as slow: every request takes twice as long (4 req/s of
    # 100 ms requests still overlap little, so at least 1.9x)
    assert (scaled["monolithic", "rate"]["sim_p50_ms"]
            >= 1.9 * plain["monolithic", "rate"]["sim_p50_ms"])
    assert scaled["monolithic", "burst"]["sim_p50_ms"] == plain["monolithic", "burst"][
        "sim_p50_ms"]
    assert scaled["micro", "rate"]["sim_p50_ms"] == plain["micro", "rate"]["sim_p50_ms"]
    assert cal["summary"]["p50"]["mean"] > 0  # the simulator now over-predicts the 50 ms


def test_averaged_runs_pool_their_probes_and_lone_latencies() -> None:
    from lego_backend.sim.fidelity import average_runs

    a, b = _bench(50.0, 60.0), _bench(70.0, 80.0)
    a["modes"]["monolithic"]["rate_sweep"][0]["lone_probe_ms"] = [100.0]
    b["modes"]["monolithic"]["rate_sweep"][0]["lone_probe_ms"] = [120.0, 130.0]
    b["modes"]["monolithic"]["standalone_ms"] = {"txt2img": 70.0}
    mean = average_runs([a, b])
    point = mean["modes"]["monolithic"]["rate_sweep"][0]
    assert point["p50_ms"] == 60.0 and point["p95_ms"] == 70.0
    assert point["lone_probe_ms"] == [100.0, 120.0, 130.0]
    assert mean["modes"]["monolithic"]["standalone_ms"] == {"txt2img": 60.0}


def test_mode_calibration_uses_the_modes_lone_runs_for_every_point() -> None:
    profile = profile_from_dict(toy_doc(), "toy")
    bench = _bench(50.0, 60.0, slo_ms=10_000.0)
    bench["modes"]["monolithic"]["standalone_ms"] = {"txt2img": 75.0}  # 1.5x the toy's 50
    bench["modes"]["monolithic"]["rate_sweep"][0]["lone_probe_ms"] = [100.0]  # not used
    cal = compare(bench, profile, calibrate="mode")
    assert cal["machine_speed"] == {"monolithic": 1.5, "micro": 1.0}
    assert [r["machine_speed"] for r in cal["points"]] == [1.5, 1.5, 1.0]
    with pytest.raises(ValueError, match="calibrate"):
        compare(bench, profile, calibrate="yes")
