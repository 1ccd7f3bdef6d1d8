"""Intra-op thread count per replica: the policy alone, then a real replica thread that ends up
running its forwards with the faster count."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from lego_backend.services import intraop
from lego_backend.services.intraop import IntraOpTuner
from lego_backend.services.protocol import ServiceCall, ServiceSpec
from lego_backend.services.replica import Replica


def run_trials(tuner: IntraOpTuner, cost: dict[int, float], rows: int = 2) -> list[int]:
    used = []
    while tuner.decided is None:
        n = tuner.threads_for_next_batch()
        used.append(n)
        tuner.observe(n, cost[n] * rows, rows)
    return used


def test_trials_alternate_after_warmup_and_keep_the_faster_count():
    tuner = IntraOpTuner(max_threads=4, warmup_batches=2, trial_batches=6)
    used = run_trials(tuner, {4: 0.030, 1: 0.009})
    assert used == [4, 4, 4, 1, 4, 1, 4, 1]
    assert tuner.decided == 1 and tuner.threads_for_next_batch() == 1
    tuner = IntraOpTuner(max_threads=4, warmup_batches=0, trial_batches=4)
    run_trials(tuner, {4: 0.5, 1: 1.8})  # a big model: threads pay
    assert tuner.decided == 4


def test_time_is_compared_per_row_and_ties_keep_the_default():
    tuner = IntraOpTuner(max_threads=2, warmup_batches=0, trial_batches=2)
    tuner.observe(2, 0.040, 8)  # 5 ms per row
    tuner.observe(1, 0.010, 1)  # 10 ms per row: slower, though the batch was quicker
    assert tuner.decided == 2
    tied = IntraOpTuner(max_threads=2, warmup_batches=0, trial_batches=2)
    tied.observe(2, 0.01, 1)
    tied.observe(1, 0.01, 1)
    assert tied.decided == 2
    assert IntraOpTuner(max_threads=1).decided == 1  # one core: nothing to choose


class ThreadSensitiveService:
    """Runs as fast as the replica's torch thread count makes it (fake forward)."""

    spec = ServiceSpec("denoiser", "fake", Path("fake"))
    loaded = True

    def __init__(self, seconds: dict[int, float]):
        self.seconds = seconds
        self.threads_seen: list[int] = []

    def batch_key(self, call: ServiceCall) -> Any:
        return "k"

    def batch_rows(self, call: ServiceCall) -> int:
        return 2

    def run_batch(self, calls: list[ServiceCall]) -> list[Any]:
        n = torch.get_num_threads()
        self.threads_seen.append(n)
        time.sleep(self.seconds[1 if n == 1 else 2])
        return [n for _ in calls]

    def resident_bytes(self) -> int:
        return 0

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("seconds", "expected"), [({1: 0.002, 2: 0.02}, 1),
                                                   ({1: 0.02, 2: 0.002}, 2)])
def test_a_replica_thread_settles_on_the_faster_count(monkeypatch, seconds, expected):
    monkeypatch.setattr(intraop, "_default", 2)
    intraop.fix_threads(None)
    service = ThreadSensitiveService(seconds)
    replica = Replica(service)  # type: ignore[arg-type]
    try:
        for _ in range(14):
            replica.submit(ServiceCall("unet", {})).result(timeout=10)
        assert replica.describe()["intraop_threads"] == expected
        assert service.threads_seen[-4:] == [expected] * 4
        assert set(service.threads_seen[2:10]) == {1, 2}  # both were tried
    finally:
        replica.close()


def test_a_fixed_count_is_never_tuned(monkeypatch):
    intraop.fix_threads(1)
    try:
        assert intraop.new_tuner() is None
        replica = Replica(ThreadSensitiveService({1: 0.0, 2: 0.0}))  # type: ignore[arg-type]
        assert replica.describe()["intraop_threads"] == "fixed"
        replica.close()
    finally:
        intraop.fix_threads(None)


def test_threads_under_load_fall_back_to_one() -> None:
    assert intraop.threads_under_load(2, 0) == 2
    assert intraop.threads_under_load(2, 1) == 1
    assert intraop.threads_under_load(1, 3) == 1


def test_a_replica_that_chose_two_threads_uses_one_while_another_replica_runs(monkeypatch):
    monkeypatch.setattr(intraop, "_default", 2)
    intraop.fix_threads(None)
    fast_at_two = ThreadSensitiveService({1: 0.02, 2: 0.002})
    replica = Replica(fast_at_two)  # type: ignore[arg-type]
    try:
        for _ in range(12):
            replica.submit(ServiceCall("unet", {})).result(timeout=10)
        assert replica.describe()["intraop_threads"] == 2
        assert fast_at_two.threads_seen[-1] == 2  # alone: its choice
        others = intraop.RUNNING.enter()  # another replica of the process is in a batch
        try:
            assert others == 0
            replica.submit(ServiceCall("unet", {})).result(timeout=10)
            assert fast_at_two.threads_seen[-1] == 1
        finally:
            intraop.RUNNING.leave()
        replica.submit(ServiceCall("unet", {})).result(timeout=10)
        assert fast_at_two.threads_seen[-1] == 2  # alone again
        assert replica.describe()["intraop_threads"] == 2  # the choice itself is kept
    finally:
        replica.close()
