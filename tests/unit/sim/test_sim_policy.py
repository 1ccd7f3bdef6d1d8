"""The simulator drives the server's policy functions, and micro-serving's step-level batching
shows up as throughput on a toy profile."""
from __future__ import annotations

from lego_backend.runtime import scheduler
from lego_backend.services import router
from lego_backend.sim import placement
from lego_backend.sim.placement import ClusterSpec
from lego_backend.sim.simulate import SimConfig, simulate
from lego_backend.sim.traces import poisson_arrivals


def _requests(mix, profile, rate: float, duration: float = 20.0, seed: int = 3):
    steps = {k: m.default_steps for k, m in profile.models.items()}
    return mix.draw(poisson_arrivals(rate, duration, seed), steps, seed)


def test_the_shared_policy_functions_are_called(monkeypatch, toy_profile, toy_mix) -> None:
    calls = {"pick_batch": 0, "admit": 0, "choose_replica": 0, "desired_replicas": 0}

    def spy(name, real):
        def wrapped(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(scheduler, "pick_batch", spy("pick_batch", scheduler.pick_batch))
    monkeypatch.setattr(scheduler, "admit", spy("admit", scheduler.admit))
    monkeypatch.setattr(router, "choose_replica", spy("choose_replica", router.choose_replica))
    monkeypatch.setattr(placement, "desired_replicas",
                        spy("desired_replicas", placement.desired_replicas))
    reqs = _requests(toy_mix, toy_profile, rate=20.0, duration=2.0)
    res = simulate(toy_profile, SimConfig(cluster=ClusterSpec(gpus=2)), reqs)
    assert res.completed == len(reqs)
    assert calls["admit"] == len(reqs) == calls["choose_replica"]
    assert calls["pick_batch"] >= res.policy_calls > 0
    assert calls["desired_replicas"] >= 1


def test_a_policy_that_never_batches_is_obeyed(monkeypatch, toy_profile, toy_mix) -> None:
    """If the simulator merely imitated batching, patching the policy would not change it."""
    real = scheduler.pick_batch

    def one_at_a_time(waiting, now, max_batch, open_streams=0, linger_s=0.0):
        return real(waiting, now, 1, open_streams, linger_s)

    reqs = _requests(toy_mix, toy_profile, rate=60.0, duration=5.0)
    batched = simulate(toy_profile, SimConfig(cluster=ClusterSpec(gpus=1)), reqs)
    monkeypatch.setattr(scheduler, "pick_batch", one_at_a_time)
    alone = simulate(toy_profile, SimConfig(cluster=ClusterSpec(gpus=1)), reqs)
    assert batched.mean_denoiser_batch > 1.5
    assert alone.mean_denoiser_batch == 1.0


def test_micro_batching_sustains_more_than_monolithic(toy_profile, toy_mix) -> None:
    # one GPU: monolithic serves ~ 1 / (10 x 10 ms + 10 ms) = 9 req/s; batching of 8 requests
    # costs 24 ms a step, ~3x the throughput. At 20 req/s only micro keeps up.
    reqs = _requests(toy_mix, toy_profile, rate=20.0)
    cfg = SimConfig(cluster=ClusterSpec(gpus=1))
    micro = simulate(toy_profile, cfg, reqs)
    mono = simulate(toy_profile, SimConfig(mode="monolithic", cluster=ClusterSpec(gpus=1)),
                    reqs)
    assert micro.attainment >= 0.9 > mono.attainment
    assert micro.mean_denoiser_batch > 1.0 == mono.mean_denoiser_batch


def test_runs_are_deterministic(toy_profile, toy_mix) -> None:
    reqs = _requests(toy_mix, toy_profile, rate=30.0, duration=3.0)
    cfg = SimConfig(cluster=ClusterSpec(gpus=2))
    a, b = simulate(toy_profile, cfg, reqs), simulate(toy_profile, cfg, reqs)
    assert (a.p50_ms, a.p99_ms, a.attainment) == (b.p50_ms, b.p99_ms, b.attainment)


def test_speed_smoke(toy_profile, toy_mix) -> None:
    """Thousands of requests run (no timing assertion: the figure is in docs/scaling.md)."""
    reqs = _requests(toy_mix, toy_profile, rate=50.0, duration=60.0)
    res = simulate(toy_profile, SimConfig(cluster=ClusterSpec(gpus=8)), reqs)
    assert res.completed == len(reqs) > 2000 and res.events > len(reqs)


def _mixed_requests(profile, n_gpus: int, rate: float, seed: int = 5):
    from lego_backend.sim.workload import Checkpoint, Mix
    mix = Mix(name="two", checkpoints=(Checkpoint("a", "toy"), Checkpoint("b", "toy")),
              lora_probability=0.3, controlnet_probability=0.2, loras_per_family=5,
              controlnets_per_family=2)
    return _requests(mix, profile, rate=rate * n_gpus, duration=20.0, seed=seed)


def test_runs_of_identical_batches_give_the_same_results(toy_profile) -> None:
    """Coalescing consecutive identical GPU batches into one event is only a shortcut: every
    request finishes at the same time as batch by batch, with fewer events."""
    from lego_backend.sim.simulate import Simulation
    for mode, rate in (("micro", 12.0), ("micro", 3.0), ("monolithic", 4.0)):
        reqs = _mixed_requests(toy_profile, 4, rate)
        runs = {}
        for coalesce in (True, False):
            sim = Simulation(toy_profile, SimConfig(mode=mode, cluster=ClusterSpec(gpus=4),
                                                    coalesce=coalesce), reqs)
            runs[coalesce] = (sim.run(), sim.latency_of, sim.exec.batches_coalesced)
        (fast, lat_fast, merged), (slow, lat_slow, _) = runs[True], runs[False]
        assert lat_fast.keys() == lat_slow.keys() and len(lat_fast) > 100
        assert all(abs(lat_fast[k] - lat_slow[k]) < 1e-9 for k in lat_fast), mode
        assert fast.mean_denoiser_batch == slow.mean_denoiser_batch
        assert merged > 0 and fast.events < slow.events


def test_the_replica_linger_rule_is_the_servers(monkeypatch, toy_profile, toy_mix) -> None:
    """The linger each batch boundary passes to pick_batch comes from services/replica.py."""
    from lego_backend.services import replica
    seen: list[float] = []
    real = replica.linger_for

    def spy(linger_s: float, run_s: float) -> float:
        seen.append(run_s)
        return real(linger_s, run_s)

    monkeypatch.setattr(replica, "linger_for", spy)
    simulate(toy_profile, SimConfig(cluster=ClusterSpec(gpus=1)),
             _requests(toy_mix, toy_profile, rate=20.0, duration=2.0))
    # the EWMA of batch times it is given: 0 before the first batch, then step-sized
    assert seen[0] == 0.0 and 0.009 < max(seen) < 0.03


def test_strict_admission_uses_the_lanes_measured_parallelism(monkeypatch, toy_profile,
                                                              toy_mix) -> None:
    """admit divides the backlog by WorkRate.parallelism: claim 32x and little is refused,
    claim 1x and overload is refused."""
    reqs = _requests(toy_mix, toy_profile, rate=60.0, duration=5.0)
    cfg = SimConfig(cluster=ClusterSpec(gpus=1), strict_admission=True)
    monkeypatch.setattr(scheduler.WorkRate, "parallelism", lambda self, runners: 32.0)
    optimistic = simulate(toy_profile, cfg, reqs)
    monkeypatch.setattr(scheduler.WorkRate, "parallelism", lambda self, runners: 1.0)
    cautious = simulate(toy_profile, cfg, reqs)
    assert optimistic.rejected < cautious.rejected


def test_strict_admission_counts_only_work_due_first_as_the_server(monkeypatch) -> None:
    """The backlog admission divides comes from scheduler.work_ahead: on a mix of SD1.5
    (9 s SLOs) and SDXL (30 s) on shared GPUs, counting every admitted prompt as ahead refuses
    requests that the earliest-deadline-first batches would have served in time."""
    from lego_backend.sim.profile import load_profile
    from lego_backend.sim.workload import load_mix

    profile, mix = load_profile(None), load_mix("default")
    reqs = _requests(mix, profile, rate=0.6, duration=600.0, seed=5)  # light load, 4 GPUs
    cluster = ClusterSpec(gpus=4)
    best_effort = simulate(profile, SimConfig(cluster=cluster), reqs)
    assert best_effort.attainment == 1.0  # nothing here needs refusing
    strict = simulate(profile, SimConfig(cluster=cluster, strict_admission=True), reqs)
    assert strict.rejected == 0 and strict.attainment == 1.0
    monkeypatch.setattr(scheduler, "work_ahead",
                        lambda admitted, deadline, runners: sum(s for _, s in admitted))
    everything_ahead = simulate(profile, SimConfig(cluster=cluster, strict_admission=True),
                                reqs)
    assert everything_ahead.rejected > 10


def test_laxity_deadlines_finish_every_request_and_change_the_order(toy_profile,
                                                                    toy_mix) -> None:
    """`--deadline laxity` hands pick_batch the deadline minus the steps still to run (the
    decode after the last pass included); same arrivals, a different schedule."""
    reqs = _requests(toy_mix, toy_profile, rate=30.0, duration=5.0)
    cluster = ClusterSpec(gpus=1)
    slo = simulate(toy_profile, SimConfig(cluster=cluster), reqs)
    laxity = simulate(toy_profile, SimConfig(cluster=cluster, deadline="laxity"), reqs)
    assert laxity.completed == slo.completed == len(reqs)
    assert (laxity.p50_ms, laxity.p95_ms) != (slo.p50_ms, slo.p95_ms)
