"""The fidelity tool replays a bench run's own traces (arrivals, kinds, SLOs) through the
simulator and reports the error per point."""
from __future__ import annotations

import copy
from pathlib import Path

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


@pytest.mark.parametrize("profile_file, bounds", [
    # measured right after the replay (host sharing from one round: 1.00 at k=2)
    ("cpu-profile.json", {"run": (0.2, 0.2), "mean": (0.15, 0.17), "bias": 0.05}),
    # 10 minutes later, host sharing from three rounds (1.09 at k=2, as a second such profile)
    ("cpu-profile-rounds.json", {"run": (0.21, 0.24), "mean": (0.21, 0.24), "bias": 0.2}),
])
def test_recorded_bench_run_is_predicted_within_a_loose_bound(profile_file: str,
                                                              bounds: dict) -> None:
    """A real full `lego bench` run on a quiet machine, its replay right after and CPU
    profiles measured after that (tests/unit/sim/data/fidelity). The goal is 15%. With each
    profile scaled to the machine's speed in each mode's lone runs of the bench (--calibrate),
    mean |error| of p50 / p95 against the run: 17.1% / 16.8% and 18.4% / 21.6% (uncalibrated
    24.4% / 28.9% and 28.0% / 33.5%); against the mean of the run and its replay 12.4% / 15.0%
    and 18.7% / 21.5%; the run and its replay differ by 16.7% / 18.0%. This asserts looser
    bounds (docs/scaling.md, Fidelity)."""
    import json
    from pathlib import Path

    from lego_backend.sim.fidelity import average_runs
    from lego_backend.sim.profile import load_profile
    data = Path(__file__).parent / "data" / "fidelity"
    bench = json.loads((data / "bench-full-results.json").read_text())
    replay = json.loads((data / "bench-full-replay.json").read_text())
    profile = load_profile(data / profile_file)
    raw = compare(bench, profile)["summary"]
    report = compare(bench, profile, calibrate=True)
    assert len(report["points"]) >= 20
    summary = report["summary"]
    p50, p95 = bounds["run"]
    assert summary["p50"]["mean_abs"] < p50 and summary["p95"]["mean_abs"] < p95
    # the machine ran 6-17% slower during the bench than when the profiles were measured:
    # uncalibrated, the simulator is under on average by 24-33%; calibration takes most out
    assert raw["p50"]["mean"] < -0.2 and raw["p95"]["mean"] < -0.2
    for m in ("p50", "p95"):
        assert abs(summary[m]["mean"]) < bounds["bias"] < abs(raw[m]["mean"])
    near = [abs(r["sim_attainment"] - r["bench_attainment"]) <= 0.15 for r in report["points"]]
    assert sum(near) >= 0.7 * len(near)
    mean = compare(average_runs([bench, replay]), profile, calibrate=True)["summary"]
    p50, p95 = bounds["mean"]
    assert mean["p50"]["mean_abs"] < p50 and mean["p95"]["mean_abs"] < p95
    # alone, the simulator's latency per kind is the profile's forwards plus its overheads:
    # the profile's own end-to-end timing of each kind (a median of three lone runs),
    # measured in the same minutes: within 3.4% and 12.8% in the two profiles
    for kind, row in report["standalone_ms"].items():
        assert abs(row["sim"] - row["profile_check"]) <= 0.15 * row["profile_check"], kind


def test_averaged_runs_average_their_lone_latencies() -> None:
    from lego_backend.sim.fidelity import average_runs

    a, b = _bench(50.0, 60.0), _bench(70.0, 80.0)
    b["modes"]["monolithic"]["standalone_ms"] = {"txt2img": 70.0}
    mean = average_runs([a, b])
    point = mean["modes"]["monolithic"]["rate_sweep"][0]
    assert point["p50_ms"] == 60.0 and point["p95_ms"] == 70.0
    assert mean["modes"]["monolithic"]["standalone_ms"] == {"txt2img": 60.0}


def test_calibration_scales_the_profile_by_the_machines_speed_in_the_modes_lone_runs() -> None:
    from lego_backend.sim.fidelity import machine_speed

    profile = profile_from_dict(toy_doc(), "toy")
    bench = _bench(50.0, 60.0, slo_ms=10_000.0)
    # the toy's lone 4-step txt2img takes 50 ms; the bench ran monolithic's at 75 ms (a
    # machine 1.5x slower than when the profile was measured); micro has no lone runs
    bench["modes"]["micro"]["rate_sweep"] = [dict(bench["modes"]["micro"]["rate_sweep"][0])]
    bench["modes"]["monolithic"]["standalone_ms"] = {"txt2img": 75.0}
    assert machine_speed(bench, "monolithic", profile) == 1.5
    assert machine_speed(bench, "micro", profile) is None
    plain = {(r["mode"], r["sweep"]): r for r in compare(bench, profile)["points"]}
    cal = compare(bench, profile, calibrate=True)
    scaled = {(r["mode"], r["sweep"]): r for r in cal["points"]}
    assert cal["machine_speed"] == {"monolithic": 1.5, "micro": 1.0}
    assert [r["machine_speed"] for r in cal["points"]] == [1.5, 1.5, 1.0]
    # on a host 1.5x slower every request of monolithic's light load takes at least 1.5x
    # as long (more, where the longer requests now overlap); micro is simulated as before
    for sweep in ("rate", "burst"):
        assert (scaled["monolithic", sweep]["sim_p50_ms"]
                >= 1.5 * plain["monolithic", sweep]["sim_p50_ms"] - 1e-6)
    assert scaled["micro", "rate"]["sim_p50_ms"] == plain["micro", "rate"]["sim_p50_ms"]
    assert cal["summary"]["p50"]["mean"] > compare(bench, profile)["summary"]["p50"]["mean"]


def test_a_points_own_lone_runs_calibrate_that_point() -> None:
    """`lego bench --point-lone-reps`: a point that carries `lone_ms` is simulated at the
    machine's speed of that minute; the points without fall back to their mode's."""
    from lego_backend.sim.fidelity import average_runs

    profile = profile_from_dict(toy_doc(), "toy")
    bench = _bench(50.0, 60.0, slo_ms=10_000.0)
    bench["modes"]["monolithic"]["standalone_ms"] = {"txt2img": 75.0}  # 1.5x at the start
    burst = dict(bench["modes"]["monolithic"]["burst_sweep"][0], lone_ms={"txt2img": 100.0})
    bench["modes"]["monolithic"]["burst_sweep"] = [burst]  # 2x right before the burst
    cal = compare(bench, profile, calibrate=True)
    assert [r["machine_speed"] for r in cal["points"]] == [1.5, 2.0, 1.0]
    without = copy.deepcopy(bench)
    del without["modes"]["monolithic"]["burst_sweep"][0]["lone_ms"]
    by_mode = compare(without, profile, calibrate=True)
    assert [r["machine_speed"] for r in by_mode["points"]] == [1.5, 1.5, 1.0]
    assert cal["points"][1]["sim_p50_ms"] >= 2.0 / 1.5 * by_mode["points"][1]["sim_p50_ms"] - 1e-6
    assert cal["points"][0]["sim_p50_ms"] == by_mode["points"][0]["sim_p50_ms"]
    other = copy.deepcopy(bench)
    other["modes"]["monolithic"]["burst_sweep"][0]["lone_ms"] = {"txt2img": 60.0}
    mean = average_runs([bench, other])["modes"]["monolithic"]["burst_sweep"][0]
    assert mean["lone_ms"] == {"txt2img": 80.0}


STEADY = Path(__file__).parent / "data" / "fidelity-steady"


@pytest.mark.parametrize("profile_file, bounds", [
    # measured right after the bench: 8.3% / 13.2% / 2.9% against the run, 10.7% / 10.7%
    # against its replay
    ("cpu-profile.json", {"run": (0.12, 0.17), "replay": (0.14, 0.14), "attainment": 0.06}),
    # measured 25 minutes before it: 13.4% / 19.6% and 16.2% / 15.6%
    ("cpu-profile-earlier.json", {"run": (0.16, 0.23), "replay": (0.19, 0.19),
                                  "attainment": 0.09}),
])
def test_long_fixed_points_are_predicted_within_15_percent(profile_file: str,
                                                           bounds: dict) -> None:
    """The goal's protocol: `lego bench --rates ... --bursts ... --requests-per-point 100
    --point-lone-reps 3` (85-120 requests per rate point, every kind alone right before each
    point), a profile measured right after, and --calibrate scaling each point by its own
    lone runs (tests/unit/sim/data/fidelity-steady). Mean |error| over the 16 points, p50 /
    p95 / attainment: 8.3% / 13.2% / 2.9% against the run; the goal is 15%. Bounds here are
    looser; docs/scaling.md (Fidelity) has the table."""
    import json

    from lego_backend.sim.fidelity import compare_runs
    from lego_backend.sim.profile import load_profile
    bench = json.loads((STEADY / "bench-results.json").read_text())
    replay = json.loads((STEADY / "bench-replay.json").read_text())
    profile = load_profile(STEADY / profile_file)
    report = compare(bench, profile, calibrate=True)
    assert len(report["points"]) == 16
    # each point ran at its own machine speed (the lone runs right before it), not one per mode
    speeds = {r["machine_speed"] for r in report["points"]}
    assert len(speeds) == 16 and max(speeds) / min(speeds) > 1.05
    s = report["summary"]
    p50, p95 = bounds["run"]
    assert s["p50"]["mean_abs"] < p50 and s["p95"]["mean_abs"] < p95
    assert s["attainment"]["mean_abs"] < bounds["attainment"]
    again = compare(replay, profile, calibrate=True)["summary"]
    p50, p95 = bounds["replay"]
    assert again["p50"]["mean_abs"] < p50 and again["p95"]["mean_abs"] < p95
    # one speed per mode (the lone runs at the mode's start) does worse: 15.6% p50
    per_mode = copy.deepcopy(bench)
    for entry in per_mode["modes"].values():
        for p in entry["rate_sweep"] + entry["burst_sweep"]:
            del p["lone_ms"]
    assert compare(per_mode, profile, calibrate=True)["summary"]["p50"]["mean_abs"] > \
        s["p50"]["mean_abs"]
    # the two runs of the same traces disagree more than the simulator errs on either
    # (33.7% / 21.2% p50 / p95): a monolithic point past saturation took 0.8 s in one, 3.0 s
    # in the other
    runs = compare_runs(bench, replay)["summary"]
    assert runs["p50"]["mean_abs"] > max(s["p50"]["mean_abs"], again["p50"]["mean_abs"])


SWEEP = Path(__file__).parent / "data" / "fidelity-sweep"


def test_the_default_sweep_with_lone_runs_is_predicted_within_15_percent() -> None:
    """The default `lego bench` (searched points, 48 requests per rate point) with
    `--point-lone-reps 3`, on a quiet evening, a profile right after it
    (tests/unit/sim/data/fidelity-sweep). Measured mean |error|, p50 / p95, over 24 points:
    9.3% / 10.5% against the run, 12.6% / 13.9% against its replay; attainment 4.3 and 6.1
    points. The run and its replay differ by 10.9% / 12.3%. A second run: 11.2% / 12.7%."""
    import json
    import statistics

    from lego_backend.sim.fidelity import compare_runs
    from lego_backend.sim.profile import load_profile
    profile = load_profile(SWEEP / "cpu-profile.json")
    bench = json.loads((SWEEP / "bench-results.json").read_text())
    replay = json.loads((SWEEP / "bench-replay.json").read_text())
    for doc, (p50, p95, points) in ((bench, (0.12, 0.13, 0.06)), (replay, (0.15, 0.16, 0.08))):
        report = compare(doc, profile, calibrate=True)
        assert len(report["points"]) == 24
        s = report["summary"]
        assert s["p50"]["mean_abs"] < p50 and s["p95"]["mean_abs"] < p95
        # attainment as a difference of fractions: a relative error blows up where the bench
        # met 1 SLO in 68 (0.015 against the simulator's 0.044 is +200%)
        att = statistics.fmean(abs(r["sim_attainment"] - r["bench_attainment"])
                               for r in report["points"])
        assert att < points
    runs = compare_runs(bench, replay)["summary"]
    assert 0.08 < runs["p50"]["mean_abs"] < 0.14  # the bench's own repeatability that evening
    # a second run right after, its searches choosing other points, and its own profile:
    # 11.2% / 12.7%, attainment 3.0 points
    second = compare(json.loads((SWEEP / "bench-results-2.json").read_text()),
                     load_profile(SWEEP / "cpu-profile-2.json"), calibrate=True)
    assert len(second["points"]) == 21
    assert second["summary"]["p50"]["mean_abs"] < 0.14
    assert second["summary"]["p95"]["mean_abs"] < 0.15
    assert statistics.fmean(abs(r["sim_attainment"] - r["bench_attainment"])
                            for r in second["points"]) < 0.05


def test_fidelity_cli_says_when_a_bench_has_no_lone_runs_per_point(tmp_path, capsys) -> None:
    """--calibrate on a bench without per-point lone runs falls back to one speed per mode,
    and says how to record them; with them it says nothing."""
    import json

    from lego_backend.sim.fidelity import main
    bench = json.loads((SWEEP / "bench-results.json").read_text())
    for entry in bench["modes"].values():
        entry["rate_sweep"] = entry["rate_sweep"][:1]  # one point per mode is enough here
        entry["burst_sweep"] = []
    with_lone = tmp_path / "with.json"
    with_lone.write_text(json.dumps(bench))
    for entry in bench["modes"].values():
        del entry["rate_sweep"][0]["lone_ms"]
    without = tmp_path / "without.json"
    without.write_text(json.dumps(bench))
    profile = str(SWEEP / "cpu-profile.json")
    assert main([str(with_lone), profile, "--calibrate"]) == 0
    assert "--point-lone-reps" not in capsys.readouterr().err
    assert main([str(without), profile, "--calibrate"]) == 0
    assert "lego bench --point-lone-reps 3" in capsys.readouterr().err
