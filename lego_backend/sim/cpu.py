"""A CPU host's cores, shared by whatever runs on them at once (processor sharing).

On a CPU the server's replicas (text encoder, denoiser, VAE, ControlNet threads), its prompt
runners (sampler math, image saving) and, in monolithic mode, its per-workflow workers all run
concurrently on the same few cores; nothing runs "one batch at a time". A job here is a piece of
CPU work measured alone (`work` seconds on an otherwise idle host, from the profile). While k
jobs are in progress each advances at `speedup(k) / k` of its standalone speed, where
`speedup(k)` is the total throughput of k concurrent jobs relative to one, measured by
`lego profile` (one job does not use every core; past the cores it no longer grows).

Implemented with a virtual clock: every job in progress has advanced by the same amount of
standalone work since it started, so a job started at virtual time V finishes when the virtual
clock reaches V + work, and only the earliest finish needs an event."""
from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

EPS = 1e-12  # relative: rounding of the virtual clock never leaves a job a hair short


class SharedCores:
    def __init__(self, loop: Any, speedup: Sequence[float]):
        if not speedup or speedup[0] <= 0:
            raise ValueError("speedup must start with the throughput of one job (> 0)")
        self.loop = loop
        self._speedup = tuple(speedup)
        self._rate = [s / k for k, s in enumerate(speedup, start=1)]  # per-job speed at k jobs
        self._virtual = 0.0  # standalone seconds of progress a job in progress has made
        self._since = 0.0  # real time the virtual clock was last advanced
        self._jobs: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._gen = 0  # the one pending completion event that is still valid
        self.busy_s = 0.0  # real seconds with at least one job in progress
        self.work_s = 0.0  # standalone seconds of work completed

    def rate(self, k: int) -> float:
        """Speed of each of k concurrent jobs, relative to running alone."""
        if k <= len(self._rate):
            return self._rate[k - 1]
        return self._speedup[-1] / k  # past the measured counts the total stays flat

    @property
    def running(self) -> int:
        return len(self._jobs)

    def run(self, work: float, fn: Callable[..., None], *args: Any) -> None:
        """Start a job of `work` standalone seconds now; `fn(*args)` when it completes."""
        self._advance()
        heapq.heappush(self._jobs, (self._virtual + max(0.0, work), next(self._seq), fn, args))
        self.work_s += max(0.0, work)
        self._schedule()

    def _advance(self) -> None:
        now = self.loop.now
        k = len(self._jobs)
        if k:
            self._virtual += (now - self._since) * self.rate(k)
            self.busy_s += now - self._since
        self._since = now

    def _schedule(self) -> None:
        self._gen += 1
        if self._jobs:
            left = max(0.0, self._jobs[0][0] - self._virtual)
            self.loop.at(self.loop.now + left / self.rate(len(self._jobs)), self._fire,
                         self._gen)

    def _fire(self, gen: int) -> None:
        if gen != self._gen:
            return  # superseded: the set of jobs changed after this event was scheduled
        self._advance()
        done = []
        jobs = self._jobs
        limit = self._virtual + EPS * max(1.0, self._virtual)
        while jobs and jobs[0][0] <= limit:
            done.append(heapq.heappop(jobs))
        self._schedule()
        for _, _, fn, args in done:
            fn(*args)
