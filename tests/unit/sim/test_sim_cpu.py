"""CPU hosts: batches and per-request work share the cores (processor sharing), monolithic
workers and micro replicas run at once, and a lone request takes exactly its predicted
standalone time (forwards + measured overheads)."""
from __future__ import annotations

import pytest
from sim_helpers import toy_doc

from lego_backend.sim.cpu import SharedCores
from lego_backend.sim.engine import EventLoop
from lego_backend.sim.placement import ClusterSpec
from lego_backend.sim.profile import Profile, profile_from_dict, validate_profile
from lego_backend.sim.simulate import SimConfig, Simulation, simulate, standalone_s
from lego_backend.sim.workload import SimRequest


def cpu_doc(speedup: dict[str, float] | None = None, **overhead_ms: float) -> dict:
    doc = toy_doc()
    doc["device_type"] = "cpu"
    doc["host"] = {"concurrency_speedup": speedup or {"1": 1.0, "2": 1.0}}
    doc["overhead_ms"] = overhead_ms
    big = dict(doc["models"][0], kind="toy128", resolution=128)
    big["rows"] = [dict(r, step_ms=2 * r["step_ms"], decode_ms=12) for r in big["rows"]]
    doc["models"].append(big)
    for m in doc["models"]:
        for r in m["rows"]:
            r["lora_step_ms"] = r["step_ms"] + 3 * r["batch"]
            r["vae_encode_ms"] = 4
    return doc


def _cpu(speedup: dict[str, float] | None = None, **overhead_ms: float) -> Profile:
    return profile_from_dict(cpu_doc(speedup, **overhead_ms), "toy-cpu")


def _finish_times(speedup: list[float], jobs: list[tuple[float, float]]) -> list[float]:
    loop = EventLoop()
    cores = SharedCores(loop, speedup)
    done: list[float] = []
    for start, work in jobs:
        loop.at(start, cores.run, work, lambda: done.append(loop.now))
    loop.run()
    return done


def test_shared_cores_split_throughput_between_jobs() -> None:
    # one core's worth (speedup 1 at 2 jobs): two 1 s jobs together both end at 2 s
    assert _finish_times([1.0, 1.0], [(0.0, 1.0), (0.0, 1.0)]) == pytest.approx([2.0, 2.0])
    # two cores' worth: each runs at full speed
    assert _finish_times([1.0, 2.0], [(0.0, 1.0), (0.0, 1.0)]) == pytest.approx([1.0, 1.0])
    # a 1 s job alone for 0.5 s, then shares half speed with a 0.25 s job: the short one
    # needs 0.5 s of sharing (ends 1.0), the long one has 0.25 left alone (ends 1.25)
    assert _finish_times([1.0, 1.0], [(0.0, 1.0), (0.5, 0.25)]) == pytest.approx([1.0, 1.25])


def test_past_the_measured_job_counts_total_throughput_stays_flat() -> None:
    # measured up to 2 jobs (two cores' worth): 4 jobs of 1 s share 2 s of throughput and all
    # end at 2 s, not at 1 s (each job keeping the 2-job speed would be 4 cores' worth)
    assert _finish_times([1.0, 2.0], [(0.0, 1.0)] * 4) == pytest.approx([2.0] * 4)


def _req(i: int, t: float, kind: str = "w", **kw) -> SimRequest:
    return SimRequest(i, t, "ck", "toy", 10, workflow=kind, **kw)


@pytest.mark.parametrize("extra", [
    {}, {"loras": ("l",)}, {"controlnets": ("c",)}, {"image_input": True},
    {"passes": (("toy128", 5),)}])
def test_a_lone_request_takes_its_standalone_time(extra: dict) -> None:
    profile = _cpu(request_pre=7, request_post=11, step=2, controlnet_call=3)
    r = _req(0, 0.0, **extra)
    for mode in ("micro", "monolithic"):
        sim = Simulation(profile, SimConfig(mode=mode, cluster=ClusterSpec(gpus=1),
                                            max_adapters=0), [r])
        sim.gpus[0].adapters["l"] = sim.gpus[0].adapters["c"] = (0.0, 1)  # loaded (warm)
        sim.run()
        assert sim.latency_of[0] == pytest.approx(standalone_s(profile, r), abs=1e-9), mode


def test_standalone_adds_the_measured_overheads() -> None:
    bare, over = _cpu(), _cpu(request_pre=7, request_post=11, step=2)
    r = _req(0, 0.0, passes=(("toy128", 5),))
    assert standalone_s(over, r) - standalone_s(bare, r) == pytest.approx(
        0.007 + 0.011 + (10 + 5) * 0.002)
    # each ControlNet call hands off to its service and back: per step, per ControlNet
    cn = _cpu(request_pre=7, request_post=11, step=2, controlnet_call=3)
    r = _req(0, 0.0, controlnets=("c", "d"))
    assert standalone_s(cn, r) - standalone_s(over, r) == pytest.approx(10 * 2 * 0.003)


def test_monolithic_workers_share_a_cpu_host_instead_of_queueing() -> None:
    """Two workflows arriving together: on a GPU one waits for the other; on a CPU host both
    workers run at once, each slowed by the sharing (here 1 core's worth: 2x each)."""
    reqs = [_req(0, 0.0, "a"), _req(1, 0.0, "b")]
    alone = standalone_s(_cpu(), reqs[0])
    gpu = profile_from_dict(toy_doc(), "toy")
    cfg = SimConfig(mode="monolithic", cluster=ClusterSpec(gpus=1))
    on_gpu = Simulation(gpu, cfg, [SimRequest(0, 0.0, "ck", "toy", 10, workflow="a"),
                                   SimRequest(1, 0.0, "ck", "toy", 10, workflow="b")])
    on_gpu.run()
    assert sorted(on_gpu.latency_of.values()) == pytest.approx([alone, 2 * alone])
    shared = Simulation(_cpu({"1": 1.0, "2": 1.0}), cfg, reqs)
    shared.run()
    assert list(shared.latency_of.values()) == pytest.approx([2 * alone, 2 * alone])
    two_cores = Simulation(_cpu({"1": 1.0, "2": 2.0}), cfg, reqs)
    two_cores.run()
    assert list(two_cores.latency_of.values()) == pytest.approx([alone, alone])


def test_micro_on_a_cpu_batches_steps_and_counts_rows() -> None:
    """16 requests at once: the denoiser's 16-row limit (2 rows per CFG call) caps a step
    batch at 8 requests."""
    reqs = [_req(i, 0.0) for i in range(16)]
    sim = Simulation(_cpu(step=1), SimConfig(cluster=ClusterSpec(gpus=1)), reqs)
    res = sim.run()
    assert res.completed == 16
    gpu = sim.gpus[0]
    assert gpu.step_rows == 16 * 10
    assert res.mean_denoiser_batch > 4.0  # they batch...
    assert gpu.step_batches >= gpu.step_rows / 8  # ...never more than 8 requests at once


def test_cpu_overheads_make_prompts_slower_under_load() -> None:
    reqs = [_req(i, 0.01 * i) for i in range(12)]
    cfg = SimConfig(cluster=ClusterSpec(gpus=1))
    lean = simulate(_cpu(), cfg, reqs)
    heavy = simulate(_cpu(step=5), cfg, reqs)
    assert heavy.p50_ms > lean.p50_ms + 10 * 5  # at least the lone extra, plus the sharing


def test_profile_optional_parts_are_validated() -> None:
    doc = cpu_doc()
    assert validate_profile(doc) == []
    p = profile_from_dict(doc)
    assert p.device_type == "cpu" and p.speedup == (1.0, 1.0)
    bad = cpu_doc()
    bad["device_type"] = "tpu"
    bad["overhead_ms"] = {"request_pre": -1}
    bad["host"] = {"concurrency_speedup": {"0": 1.0}}
    del bad["models"][0]["rows"][1]["lora_step_ms"]
    problems = " ".join(validate_profile(bad))
    for needle in ("device_type", "overhead_ms", "concurrency_speedup", "lora_step_ms"):
        assert needle in problems
    # the speedup curve: linear between measured job counts, flat past the last
    doc["host"] = {"concurrency_speedup": {"2": 1.8, "4": 2.0}}
    assert profile_from_dict(doc).speedup == pytest.approx((1.0, 1.8, 1.9, 2.0))


def test_only_the_cpu_part_of_the_step_overhead_shares_the_cores() -> None:
    """Two monolithic workers at once on one core's worth: forwards and CPU work take twice
    as long, the waiting part of the per-step overhead (hand-offs) does not."""
    reqs = [_req(0, 0.0, "a"), _req(1, 0.0, "b")]
    cfg = SimConfig(mode="monolithic", cluster=ClusterSpec(gpus=1))
    bare = standalone_s(_cpu(), reqs[0])
    for cpu_ms, expect in ((3.0, 2 * bare + 10 * 3.0 / 1000 * 2),
                           (0.0, 2 * bare + 10 * 3.0 / 1000)):
        sim = Simulation(_cpu(step=3, step_cpu=cpu_ms), cfg, reqs)
        sim.run()
        assert list(sim.latency_of.values()) == pytest.approx([expect, expect], rel=1e-6)


def test_per_step_cpu_overhead_per_batch_or_per_request() -> None:
    """Charged once per denoiser batch, batching amortizes it; charged per request (the
    default, as the server's runners each do their own sampler math), eight requests in a
    batch pay it eight times over on the shared cores."""
    reqs = [_req(i, 0.0) for i in range(8)]
    profile = _cpu(step=5, step_cpu=5)
    per_batch = simulate(profile, SimConfig(cluster=ClusterSpec(gpus=1), step_cpu_per="batch"),
                         reqs)
    per_request = simulate(profile, SimConfig(cluster=ClusterSpec(gpus=1)), reqs)
    assert SimConfig().step_cpu_per == "request"
    assert per_batch.p50_ms + 100 < per_request.p50_ms
    with pytest.raises(ValueError):
        SimConfig(step_cpu_per="sometimes")
