"""Batch selection policy under a fake clock: EDF, same-key batching, bounded lingering."""
from __future__ import annotations

from lego_backend.runtime.scheduler import Waiting, pick_batch


def w(key, deadline, arrived=0.0, seq=0):
    return Waiting(key, deadline, arrived, seq)


def test_earliest_deadline_picks_the_key_and_same_key_calls_join():
    waiting = [w("A", 10, seq=0), w("B", 5, seq=1), w("A", 7, seq=2), w("B", 9, seq=3)]
    d = pick_batch(waiting, now=0.0, max_batch=8)
    assert d.members == (1, 3)  # B has the earliest deadline; the other B joins, in EDF order


def test_batch_limit_and_tie_break_by_arrival():
    waiting = [w("A", 1, seq=i) for i in range(5)]
    assert pick_batch(waiting, 0.0, max_batch=3).members == (0, 1, 2)


def test_unbatchable_calls_run_alone():
    waiting = [w(None, 1, seq=0), w(None, 1, seq=1)]
    assert pick_batch(waiting, 0.0, 8).members == (0,)


def test_lingers_for_open_streams_but_not_past_the_bound():
    waiting = [w("A", 1, arrived=100.0, seq=0)]
    d = pick_batch(waiting, now=100.001, max_batch=8, open_streams=3, linger_s=0.004)
    assert d.members == () and abs(d.wait_s - 0.003) < 1e-9
    d = pick_batch(waiting, now=100.005, max_batch=8, open_streams=3, linger_s=0.004)
    assert d.members == (0,)


def test_no_lingering_when_every_stream_has_submitted_or_batch_is_full():
    waiting = [w("A", 1, seq=i) for i in range(3)]
    assert pick_batch(waiting, 0.0, 8, open_streams=3, linger_s=1.0).members == (0, 1, 2)
    assert pick_batch(waiting, 0.0, 2, open_streams=9, linger_s=1.0).members == (0, 1)


def test_empty_queue():
    assert pick_batch([], 0.0, 8).members == ()


def test_admission_predicts_from_backlog_and_refuses_only_when_strict():
    from lego_backend.runtime.scheduler import admit
    ok = admit(now=100.0, slo_s=10.0, standalone_s=2.0, backlog_s=8.0, parallelism=4,
               strict=True)
    assert ok.admit and ok.deadline == 110.0 and ok.predicted_finish == 104.0
    late = admit(100.0, 10.0, 2.0, backlog_s=80.0, parallelism=4, strict=True)
    assert not late.admit and late.retry_after_s == 12.0
    best_effort = admit(100.0, 10.0, 2.0, backlog_s=80.0, parallelism=4, strict=False)
    assert best_effort.admit and best_effort.deadline == 110.0
    no_slo = admit(100.0, None, 2.0, 1e9, 1, strict=True)
    assert no_slo.admit and no_slo.deadline == float("inf")


def test_latency_model_prefers_solo_runs():
    from lego_backend.runtime.scheduler import LatencyModel
    m = LatencyModel(alpha=0.5)
    assert m.standalone("k") is None
    m.observe("k", 9.0, ran_alone=False)
    assert m.standalone("k") == 9.0
    m.observe("k", 4.0, ran_alone=True)
    m.observe("k", 2.0, ran_alone=True)
    assert m.standalone("k") == 3.0


def test_router_prefers_adapter_affinity_then_resident_then_least_loaded():
    from lego_backend.services.router import ReplicaLoad, choose_replica
    loads = [ReplicaLoad(5, 1, True, 0), ReplicaLoad(1, 0, True, 0), ReplicaLoad(0, 0, False, 0)]
    assert choose_replica(loads) == 1  # resident beats empty-but-cold
    loads.append(ReplicaLoad(1, 1, True, 1))  # holds the LoRA, load within the slack
    assert choose_replica(loads) == 3
    loads[3] = ReplicaLoad(9, 3, True, 1)  # holds the LoRA but overloaded: load wins
    assert choose_replica(loads) == 1


def test_autoscaling_follows_load_within_bounds_and_scales_down_gently():
    from lego_backend.services.router import ScalingRule, desired_replicas
    rule = ScalingRule(min_replicas=0, max_replicas=3, target_load=4)
    assert desired_replicas(rule, current=1, load=9) == 3
    assert desired_replicas(rule, current=1, load=40) == 3
    assert desired_replicas(rule, current=3, load=0) == 2
    assert desired_replicas(rule, current=1, load=0) == 0  # scale to zero when cold
    assert desired_replicas(ScalingRule(1, 2, 4), current=1, load=0) == 1


def test_work_rate_measures_parallelism_from_busy_time():
    from lego_backend.runtime.scheduler import WorkRate

    rate = WorkRate()
    assert rate.parallelism(16) == 1.0  # nothing measured yet: assume one at a time
    # 4 prompts of 1 s standalone each run together and all finish 2 s later (batched):
    # 4 s of work in 2 s busy = parallelism 2
    for _ in range(4):
        rate.started(0.0)
    for _ in range(4):
        rate.finished(2.0, 1.0)
    assert abs(rate.parallelism(16) - 2.0) < 1e-9
    # idle time between bursts does not count as busy time
    for _ in range(4):
        rate.started(100.0)
    for _ in range(4):
        rate.finished(102.0, 1.0)
    assert abs(rate.parallelism(16) - 2.0) < 1e-9
    assert rate.parallelism(1) == 1.0  # never above the runner count


def test_admission_with_measured_parallelism_predicts_the_queue_wait():
    from lego_backend.runtime.scheduler import admit

    # 8 s of standalone work queued, a lane measured at parallelism 2: 4 s wait + 1 s own
    a = admit(0.0, slo_s=4.0, standalone_s=1.0, backlog_s=8.0, parallelism=2.0, strict=True)
    assert not a.admit and a.predicted_finish == 5.0 and a.retry_after_s == 1.0
    assert admit(0.0, 6.0, 1.0, 8.0, 2.0, True).admit


def test_work_ahead_skips_work_due_later_only_where_prompts_share_the_services():
    from lego_backend.runtime.scheduler import work_ahead

    admitted = [(30.0, 6.0), (9.0, 2.0), (12.0, 2.0), (5.0, 1.5)]  # (deadline, standalone s)
    # several runners: batches go earliest deadline first, so only work due by 12 s is ahead
    assert work_ahead(admitted, deadline=12.0, runners=16) == 5.5
    assert work_ahead(admitted, deadline=4.0, runners=16) == 0.0
    assert work_ahead(admitted, deadline=float("inf"), runners=16) == 11.5
    # one runner (a monolithic worker) runs them in order: all of it is ahead
    assert work_ahead(admitted, deadline=4.0, runners=1) == 11.5


def test_batch_limit_counts_rows_and_the_head_always_runs():
    # CFG steps add 2 rows each: a 16-row limit takes 8 of them, in deadline order
    waiting = [Waiting("A", float(i), 0.0, i, rows=2) for i in range(10)]
    assert pick_batch(waiting, 0.0, max_batch=16).members == tuple(range(8))
    # a call bigger than the limit (batch_size 20 latent) still runs, alone
    big = [Waiting("A", 0.0, 0.0, 0, rows=20), Waiting("A", 1.0, 0.0, 1, rows=2)]
    assert pick_batch(big, 0.0, max_batch=16).members == (0,)


def test_calls_already_past_their_deadline_go_after_those_that_can_still_make_it():
    # at t=10: the "late" call's deadline (5) has passed; EDF alone would pick it first
    waiting = [Waiting("late", 5.0, 0.0, 0), Waiting("ok", 12.0, 1.0, 1),
               Waiting("ok", 11.0, 2.0, 2)]
    assert pick_batch(waiting, now=10.0, max_batch=8).members == (2, 1)
    # with nothing on time, the late ones still run, earliest deadline first
    assert pick_batch(waiting[:1], now=10.0, max_batch=8).members == (0,)
    # a late call with the head's key still fills spare rows, after the on-time ones
    mixed = [Waiting("ok", 4.0, 0.0, 0), Waiting("ok", 20.0, 0.0, 1)]
    assert pick_batch(mixed, now=10.0, max_batch=8).members == (1, 0)
