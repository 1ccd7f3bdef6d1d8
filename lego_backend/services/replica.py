"""A replica: one loaded copy of one service and the thread that feeds it batches. Calls wait in
the replica's queue; at each batch boundary the scheduling policy picks which run together
(step-level continuous batching: a request joins the next step of whoever is running)."""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from lego_backend.runtime.scheduler import Waiting, pick_batch
from lego_backend.services import intraop
from lego_backend.services.protocol import ModelService, ServiceCall


@dataclass
class _Queued:
    call: ServiceCall
    key: Hashable | None
    deadline: float
    arrived: float
    seq: int
    rows: int
    future: Future


MAX_LINGER_S = 0.05


def batch_time_ewma(run_s: float, ran_s: float) -> float:
    """EWMA of how long one batch takes (`run_s` 0 = no batch yet), updated with `ran_s`.
    Module-level so the capacity simulator (lego_backend/sim) applies the same rule."""
    return ran_s if not run_s else run_s + 0.2 * (ran_s - run_s)


def linger_for(linger_s: float, run_s: float) -> float:
    """How long a batch may wait for open streams that have not called yet: a straggler
    (e.g. one whose ControlNet step runs first) costs a fraction of a step to wait for and
    joins at a small marginal cost, so wait up to half a step (at least `linger_s`)."""
    return max(linger_s, min(0.5 * run_s, MAX_LINGER_S))


class Replica:
    out_of_service: str | None = None  # why a replica that kept dying no longer takes work

    def __init__(self, service: ModelService, max_batch: int = 16, linger_s: float = 0.004):
        self.service = service
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._cv = threading.Condition()
        self._queue: list[_Queued] = []
        self._streams = 0  # open sampling streams: requests calling at every step
        self._seq = itertools.count()
        self._busy = False
        self._closed = False
        self._run_lock = threading.Lock()  # held while the model runs or is unloaded
        self.batch_sizes: list[int] = []  # sizes of the last batches run (bounded)
        self._run_s = 0.0  # EWMA of how long one batch takes (scales the linger)
        self.batches_run = 0
        self.calls_run = 0
        self.busy_s = 0.0  # seconds spent running batches (utilization; lego profile's split)
        self.runtime = "thread"
        self._intraop = intraop.new_tuner()  # None: the user fixed torch's thread count
        self._thread = threading.Thread(target=self._loop, name=f"replica-{service.spec.kind}",
                                        daemon=True)
        self._thread.start()

    # --- callers -----------------------------------------------------------------------------
    def submit(self, call: ServiceCall, deadline: float = float("inf")) -> Future:
        future: Future = Future()
        key = self.service.batch_key(call)
        rows = self.service.batch_rows(call)
        with self._cv:
            if self._closed:
                raise RuntimeError("replica is closed")
            self._queue.append(_Queued(call, key, deadline, time.monotonic(), next(self._seq),
                                       rows, future))
            self._cv.notify()
        return future

    def open_stream(self) -> None:
        """A request will call at every step until close_stream (lets batches wait for it)."""
        with self._cv:
            self._streams += 1

    def close_stream(self) -> None:
        with self._cv:
            self._streams = max(0, self._streams - 1)
            self._cv.notify()

    @property
    def streams(self) -> int:
        with self._cv:
            return self._streams

    @property
    def queue_depth(self) -> int:
        with self._cv:
            return len(self._queue)

    @property
    def idle(self) -> bool:
        with self._cv:
            return not self._queue and not self._busy

    # --- where the model runs (a worker-process replica overrides these) -------------------------
    def _execute(self, calls: list[ServiceCall]) -> list[Any]:
        with self._run_lock:
            tuner = self._intraop
            if tuner is None:
                return self.service.run_batch(calls)
            others = intraop.RUNNING.enter()
            try:
                threads = tuner.threads_for_next_batch()
                if tuner.decided is not None:  # trials keep alternating, to measure both
                    threads = intraop.threads_under_load(threads, others)
                intraop.apply(threads)
                started = time.perf_counter()
                results = self.service.run_batch(calls)
                tuner.observe(threads, time.perf_counter() - started,
                              sum(self.service.batch_rows(c) for c in calls))
                return results
            finally:
                intraop.RUNNING.leave()

    @property
    def loaded(self) -> bool:
        return self.service.loaded

    def resident_bytes(self) -> int:
        return self.service.resident_bytes()

    def describe(self) -> dict[str, Any]:
        """Where this replica runs (for /lego/services)."""
        import os
        tuner = self._intraop
        threads = "fixed" if tuner is None else tuner.decided or "tuning"
        return {"runtime": self.runtime, "pid": os.getpid(), "intraop_threads": threads}

    def unload_if_idle(self) -> int:
        """Free the weights if nothing waits or runs; returns the bytes freed."""
        if not self._run_lock.acquire(blocking=False):
            return 0
        try:
            with self._cv:
                if self._queue or not self.service.loaded:
                    return 0
            freed = self.service.resident_bytes()
            self.service.unload()
            return freed
        finally:
            self._run_lock.release()

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=10)
        self.service.close()

    # --- the replica's thread ------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                batch = self._next_batch()
                if batch is None:
                    return
                self._busy = True
            started = time.monotonic()
            try:
                results = self._execute([q.call for q in batch])
                for q, result in zip(batch, results):
                    q.future.set_result(result)
            except BaseException as exc:  # noqa: BLE001 - the callers see the failure; the replica lives on
                for q in batch:
                    if not q.future.done():
                        q.future.set_exception(exc)
            finally:
                with self._cv:
                    ran = time.monotonic() - started
                    self._run_s = batch_time_ewma(self._run_s, ran)
                    self._busy = False
                    self.busy_s += ran
                    self.batches_run += 1
                    self.calls_run += len(batch)
                    self.batch_sizes.append(len(batch))
                    del self.batch_sizes[:-1000]

    def _linger(self) -> float:
        return linger_for(self.linger_s, self._run_s)

    def _next_batch(self) -> list[_Queued] | None:
        """Under the lock: wait until the policy releases a batch (None when closed)."""
        while True:
            if self._closed:
                for q in self._queue:
                    q.future.set_exception(RuntimeError("replica closed"))
                self._queue.clear()
                return None
            if not self._queue:
                self._cv.wait()
                continue
            waiting = [Waiting(q.key, q.deadline, q.arrived, q.seq, q.rows) for q in self._queue]
            decision = pick_batch(waiting, time.monotonic(), self.max_batch, self._streams,
                                  self._linger())
            if not decision.members:
                self._cv.wait(decision.wait_s)
                continue
            chosen = [self._queue[i] for i in decision.members]
            picked = set(decision.members)
            self._queue = [q for i, q in enumerate(self._queue) if i not in picked]
            return chosen
