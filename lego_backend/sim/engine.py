"""The simulated clock: a heap of timed callbacks. Events at the same time run in the order
they were scheduled (a sequence number breaks ties), so a run is deterministic."""
from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any


class EventLoop:
    def __init__(self) -> None:
        self.now = 0.0  # seconds of simulated time
        self._heap: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self.events_run = 0

    def clock(self) -> float:
        """The policy functions take `now` as an argument; this is where it comes from."""
        return self.now

    def at(self, t: float, fn: Callable[..., None], *args: Any) -> None:
        if t < self.now:
            raise ValueError(f"event at {t} is in the past (now {self.now})")
        heapq.heappush(self._heap, (t, next(self._seq), fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + max(0.0, delay), fn, *args)

    def run(self, until: float = math.inf) -> None:
        """Run events up to and including time `until`; the clock stops at the last event run
        (or at `until` if events remain beyond it)."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            t, _, fn, args = pop(heap)
            self.now = t
            fn(*args)
            self.events_run += 1
        if heap and until != math.inf:
            self.now = until

    @property
    def pending(self) -> int:
        return len(self._heap)
