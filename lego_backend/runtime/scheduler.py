"""Scheduling policy, pure (no torch, no threads): which waiting service calls run together
next. Replicas ask it at every batch boundary; it runs under a fake clock in unit tests.

Policy: earliest deadline first among calls that can still meet their deadline, then the late
ones. The first call in that order picks the batch key; other waiting calls with the same key
join it in that order, up to the batch limit (in rows). A batch whose
replica still expects calls (open sampling streams that have not submitted their next step yet)
is held back for at most `linger_s`, so requests that finish their sampler math a moment later
join this step instead of forming a batch of one."""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """What the policy knows about one waiting call."""

    key: Hashable | None  # batch key; None = runs alone
    deadline: float  # absolute time (scheduler clock) by which its prompt should finish
    arrived: float  # when the call was queued
    seq: int  # arrival order, breaks ties
    rows: int = 1  # batch rows it adds (a CFG step of one image: 2); the batch limit counts rows


@dataclass(frozen=True)
class BatchDecision:
    members: tuple[int, ...]  # indices into the waiting list, in run order; empty = wait
    wait_s: float = 0.0  # when members is empty: how long to wait before asking again


def pick_batch(waiting: Sequence[Waiting], now: float, max_batch: int,
               open_streams: int = 0, linger_s: float = 0.0) -> BatchDecision:
    """`open_streams`: requests that will call this replica at every step until they finish."""
    if not waiting:
        return BatchDecision(())
    # Calls whose deadline has already passed go after those that can still make theirs: under
    # a burst, plain EDF serves the most-late first and makes everyone late (the domino effect).
    order = sorted(range(len(waiting)),
                   key=lambda i: (waiting[i].deadline < now, waiting[i].deadline, waiting[i].seq))
    head = waiting[order[0]]
    if head.key is None:
        return BatchDecision((order[0],))
    members: list[int] = []
    rows = 0
    for i in order:  # the head always runs, even if it alone exceeds the limit
        if waiting[i].key == head.key and (not members or rows + waiting[i].rows <= max_batch):
            members.append(i)
            rows += waiting[i].rows
    if len(waiting) < open_streams and rows < max_batch and linger_s > 0:
        oldest = min(w.arrived for w in waiting)
        remaining = oldest + linger_s - now
        if remaining > 0:
            return BatchDecision((), remaining)
    return BatchDecision(tuple(members))


@dataclass(frozen=True)
class Admission:
    admit: bool
    deadline: float  # absolute (scheduler clock); inf = best effort, no SLO
    predicted_finish: float
    retry_after_s: float = 0.0


def admit(now: float, slo_s: float | None, standalone_s: float, backlog_s: float,
          parallelism: float, strict: bool) -> Admission:
    """Predict when a new prompt would finish from the work queued ahead of it (`backlog_s` of
    standalone time spread over `parallelism` runners) plus its own standalone time. Strict
    admission refuses a prompt that would miss its SLO, with how long to wait before retrying."""
    predicted = now + backlog_s / max(1.0, parallelism) + standalone_s
    deadline = now + slo_s if slo_s is not None else float("inf")
    if strict and predicted > deadline:
        return Admission(False, deadline, predicted, max(1.0, predicted - deadline))
    return Admission(True, deadline, predicted)


def work_ahead(admitted: Iterable[tuple[float, float]], deadline: float, runners: int) -> float:
    """Standalone seconds of a lane's admitted work that a new prompt due at `deadline` waits
    behind, from (deadline, standalone seconds) of every prompt admitted and not finished.
    A lane that runs one prompt at a time serves them in order, so all of it. A lane that runs
    several shares its services, whose batches `pick_batch` fills earliest deadline first:
    work due later than the new prompt does not hold it up, and counting it refused prompts
    that would have met their SLO (the simulator, strict admission, micro at 64 GPUs)."""
    if runners <= 1:
        return sum(s for _, s in admitted)
    return sum(s for d, s in admitted if d <= deadline)


class LatencyModel:
    """Standalone latency per workflow kind, learned from runs that had the server to
    themselves (EWMA); until one is seen, the fastest run observed stands in."""

    def __init__(self, alpha: float = 0.3):
        self.alpha = alpha
        self._solo: dict[str, float] = {}
        self._fastest: dict[str, float] = {}

    def observe(self, kind: str, seconds: float, ran_alone: bool) -> None:
        self._fastest[kind] = min(seconds, self._fastest.get(kind, seconds))
        if ran_alone:
            old = self._solo.get(kind)
            self._solo[kind] = seconds if old is None else old + self.alpha * (seconds - old)

    def standalone(self, kind: str) -> float | None:
        return self._solo.get(kind, self._fastest.get(kind))


class WorkRate:
    """How many standalone-seconds of work a lane completes per second while it is busy: its
    effective parallelism. Batching makes it exceed 1; CPU contention makes it less than the
    number of prompt runners. Admission divides the backlog by this measured figure (the
    runner count alone predicted finishes far too early under load)."""

    def __init__(self, window: int = 32):
        self.window = window
        self._running = 0
        self._samples: list[tuple[float, float]] = []  # (standalone s done, busy s it took)
        self._busy_s = 0.0  # busy time since the last completion
        self._last: float | None = None

    def _advance(self, now: float) -> None:
        if self._running > 0 and self._last is not None:
            self._busy_s += max(0.0, now - self._last)
        self._last = now

    def started(self, now: float) -> None:
        self._advance(now)
        self._running += 1

    def finished(self, now: float, standalone_s: float | None) -> None:
        self._advance(now)
        self._running = max(0, self._running - 1)
        if standalone_s is not None and standalone_s > 0:
            self._samples.append((standalone_s, self._busy_s))
            self._busy_s = 0.0
            del self._samples[:-self.window]

    def parallelism(self, runners: int) -> float:
        """Measured effective parallelism, in [1, runners]; 1 until there is a measurement."""
        work = sum(s for s, _ in self._samples)
        busy = sum(b for _, b in self._samples)
        if len(self._samples) < 4 or busy <= 0:
            return 1.0
        return min(float(max(1, runners)), max(1.0, work / busy))
