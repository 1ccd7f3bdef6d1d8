"""Issue 9.3: faults. A worker process killed for real, again and again while it runs one
prompt's steps, is restarted up to --max-retries times, then that prompt fails with an
execution_error that says why while a prompt on another replica finishes; interrupts and queue
deletes at arbitrary moments leave no busy replica, no held tensor and no bookkeeping behind."""
from __future__ import annotations

import copy
import dataclasses
import os
import random
import signal
import threading
import time

import pytest

from lego_backend.backend import Backend
from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRequest
from lego_backend.services.replica import Replica
from tests.integration.engine.helpers import make_backend, output_files, txt2img

pytestmark = pytest.mark.slow


def _submit(backend: Backend, prompt: dict) -> str:
    return backend.submit(PromptRequest(copy.deepcopy(prompt), client_id="c")).prompt_id


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _finished(backend: Backend, pid: str) -> bool:
    """Ended and its bookkeeping released: a record's status is final a moment before the
    runner leaves its prompt (lane counters, tables), which it does in one locked block."""
    record = backend.record(pid)
    with backend._lock:
        gone = pid not in backend._running
    return gone and record is not None and record.status not in ("pending", "running")


def _nothing_left_behind(backend: Backend) -> None:
    for lane in backend.lanes.all():
        assert lane.running == 0 and len(lane.queue) == 0
        for replica in lane.services._all_replicas():
            assert replica.idle and replica.streams == 0, replica.service.spec.label
    # per-prompt bookkeeping ends with the prompt, whatever ended it
    for table in (backend._running, backend._cancels, backend._running_nodes, backend._plans,
                  backend._lane_of, backend._kinds, backend._deadlines):
        assert not table
    stored = backend._store.count() if backend._store is not None else {}
    assert not stored.get("pending") and not stored.get("running"), stored


def test_a_worker_killed_again_and_again_fails_its_prompt_and_spares_the_other(tmp_path,
                                                                               demo_models):
    base = make_backend(tmp_path, demo_models)
    backend = Backend(dataclasses.replace(base.config, replica_runtime="process",
                                          replicas=(("denoiser", 2, 2),), torch_threads=1,
                                          max_retries=2))
    pinned: dict[str, Replica] = {}
    both_sampling = threading.Event()

    def listener(event: ev.Event) -> None:
        if isinstance(event, ev.Progress) and event.prompt_id not in pinned:
            # Progress is emitted on the prompt's runner thread, inside its sampling loop:
            # the replica pinned there is the one running this prompt's steps.
            pins = getattr(backend.services._pins, "by_key", {})
            [mine] = [r for r in pins.values() if r.service.spec.kind == "denoiser"]
            pinned[event.prompt_id] = mine
            if len(pinned) == 2:
                both_sampling.set()

    backend.add_listener(listener)
    backend.start()
    try:
        doomed = _submit(backend, txt2img(seed=1, steps=400))
        other = _submit(backend, txt2img(seed=2, steps=60))
        assert both_sampling.wait(180), "both prompts should be sampling"
        target = pinned[doomed]
        assert pinned[other] is not target, "the two prompts should run on two replicas"

        killed: list[int] = []
        first_kill_ms = int(time.time() * 1000)
        while len(killed) < 3:  # every worker the replica starts, until it gives up
            pid = target.pid
            if pid is not None and pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.005)
        _wait(lambda: _finished(backend, doomed) and _finished(backend, other), 180,
              "both prompts to finish")

        failed, survived = backend.record(doomed), backend.record(other)
        assert failed is not None and survived is not None
        assert failed.status == "error"
        [err] = [m for m in failed.messages if isinstance(m, ev.ExecutionError)]
        assert err.node_type == "KSampler" and err.exception_type.endswith("ReplicaDeadError")
        assert "the worker process died 3 times" in err.exception_message
        assert "SIGKILL" in err.exception_message and "max retries 2" in err.exception_message
        assert target.restarts == 3
        assert survived.status == "success" and output_files(backend, survived)[0].is_file()
        assert (survived.end_time or 0) > first_kill_ms  # it ran through the kills

        later = _submit(backend, txt2img(seed=3, steps=4))  # the service still works
        _wait(lambda: _finished(backend, later), 180, "a later prompt")
        assert backend.record(later).status == "success"  # type: ignore[union-attr]
        _nothing_left_behind(backend)
    finally:
        backend.stop()


def test_interrupts_and_queue_deletes_at_any_moment_leave_nothing_behind(tmp_path, demo_models):
    base = make_backend(tmp_path, demo_models)
    backend = Backend(dataclasses.replace(base.config, max_concurrent_prompts=2))  # some wait
    backend.start()
    try:
        warm = _submit(backend, txt2img(seed=0, steps=4))
        _wait(lambda: _finished(backend, warm), 120, "the warm-up prompt")
        backend.free(unload_models=False, free_memory=True)
        baseline = len(backend.tensors)  # tensors alive with an empty output cache

        rng = random.Random(20240917)
        ids: list[str] = []
        deleted: set[str] = set()
        for _ in range(8):
            for _ in range(2):  # faster than they run: some wait in the queue
                ids.append(_submit(backend, txt2img(seed=10 + len(ids),
                                                    steps=rng.choice((3, 12, 40)))))
            time.sleep(rng.uniform(0.0, 0.3))  # before start, mid-sampling, at decode ...
            action = rng.choice(("interrupt", "delete", "cancel", "interrupt-all"))
            running, pending = backend.queue_items()
            # deletes mostly hit a queued prompt, interrupts a running one (either may miss)
            aim = pending if action in ("delete", "cancel") and rng.random() < 0.8 else running
            target = rng.choice([r.prompt_id for r in aim] or ids)
            if action == "interrupt":
                backend.interrupt(target)
            elif action == "interrupt-all":
                backend.interrupt()
            elif action == "delete":
                backend.delete_queued([target])
            else:
                backend.cancel(target)
            if backend.record(target) is None:  # neither queued, running nor finished
                deleted.add(target)
        # And surely once each: two long prompts running, a third queued behind them.
        sampling = threading.Event()
        backend.add_listener(lambda e: sampling.set() if isinstance(e, ev.Progress) else None)
        _wait(lambda: backend.queue_remaining() == 0, 180, "the queue to drain")
        sampling.clear()
        busy = [_submit(backend, txt2img(seed=50 + i, steps=60)) for i in range(3)]
        ids += busy
        assert backend.queue_items()[1][-1].prompt_id == busy[2]
        backend.delete_queued([busy[2]])
        deleted.add(busy[2])
        assert sampling.wait(60)
        assert backend.interrupt(busy[0])
        _wait(lambda: backend.queue_remaining() == 0, 180, "the queue to drain")

        statuses = {pid: backend.record(pid) for pid in ids}
        for pid, record in statuses.items():
            if pid in deleted:
                assert record is None  # gone from the queue, never run, not in the history
            else:
                assert record is not None and record.status in ("success", "interrupted")
        assert statuses[busy[0]].status == "interrupted"  # type: ignore[union-attr]
        assert statuses[busy[1]].status == "success"  # type: ignore[union-attr]

        after = _submit(backend, txt2img(seed=99, steps=4))  # runs normally afterwards
        _wait(lambda: _finished(backend, after), 120, "a prompt after the faults")
        assert backend.record(after).status == "success"  # type: ignore[union-attr]
        _nothing_left_behind(backend)
        backend.free(unload_models=False, free_memory=True)
        assert len(backend.tensors) == baseline  # nothing an interrupted run held survives it
    finally:
        backend.stop()
