"""How many threads torch may use inside one forward of one replica (intra-op parallelism),
chosen from the replica's own batches.

Why: on a CPU host the server already runs forwards from several threads at once (one per
replica, plus the prompt runners). For small models, splitting each forward over an OpenMP team
costs more than it saves: every one of a forward's hundreds of small ops wakes the team. On this
project's 2-core machine a batch-1 step of the demo UNet took 8.6 ms on one thread and 25-35 ms
on two (passive OpenMP waiting); a real SD UNet at 512 px is the other way round. The replica
cannot know which from the model's size alone, so it measures: its first batches alternate
between all threads and one, and it keeps the count whose batches took less time per row.

A count chosen while the replica ran alone does not hold when other replicas' forwards run
at the same moment: the cores are then taken, and a forward split over an OpenMP team waits at
every op for a team thread that is not scheduled. So a replica that chose more than one thread
uses one whenever another replica of the process is in a batch (`threads_under_load`). In a
monolithic run on this machine, three of six VAE replicas had chosen 2 threads alone.

The policy is pure (no torch); `apply` sets the calling thread's count with
`torch.set_num_threads` (OpenMP keeps it per thread), imported only when called."""
from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass, field


@dataclass
class IntraOpTuner:
    max_threads: int  # what torch would use by default (the cores)
    warmup_batches: int = 2  # not measured: first runs pay one-time costs (allocations, caches)
    trial_batches: int = 8  # measured, alternating between the candidates
    decided: int | None = None  # the chosen thread count, once known
    _seen: int = 0
    _per_row: dict[int, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_threads <= 1:
            self.decided = 1  # nothing to choose

    @property
    def candidates(self) -> tuple[int, ...]:
        return (self.max_threads, 1)

    def threads_for_next_batch(self) -> int:
        if self.decided is not None:
            return self.decided
        if self._seen < self.warmup_batches:
            return self.max_threads
        # alternate, so both candidates see the same traffic and the same other load
        return self.candidates[(self._seen - self.warmup_batches) % 2]

    def observe(self, threads: int, seconds: float, rows: int) -> None:
        """A batch of `rows` rows ran in `seconds` with `threads` threads."""
        if self.decided is not None:
            return
        self._seen += 1
        if self._seen <= self.warmup_batches:
            return
        self._per_row.setdefault(threads, []).append(seconds / max(1, rows))
        if self._seen >= self.warmup_batches + self.trial_batches:
            medians = {n: statistics.median(v) for n, v in self._per_row.items() if v}
            # ties keep the default: more threads is what torch would have done
            self.decided = min(self.candidates, key=lambda n: (medians.get(n, float("inf")),
                                                                -n))


def threads_under_load(chosen: int, others_running: int) -> int:
    """The thread count a decided replica uses for a batch that starts while
    `others_running` other replicas of the process are in a batch."""
    return 1 if others_running > 0 else chosen


class RunningBatches:
    """How many replicas of this process are running a batch right now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0

    def enter(self) -> int:
        """A batch starts; returns how many others were already running."""
        with self._lock:
            others = self._n
            self._n += 1
            return others

    def leave(self) -> None:
        with self._lock:
            self._n -= 1


RUNNING = RunningBatches()

_fixed: int | None = None  # `lego serve --threads N`: the user's count, no tuning
_default: int | None = None  # torch's own count, read before any replica changed it


def fix_threads(count: int | None) -> None:
    """The user chose the thread count (or None: tune per replica again)."""
    global _fixed
    _fixed = count


def new_tuner() -> IntraOpTuner | None:
    """A tuner for a new in-process replica, or None when the user fixed the count."""
    global _default
    if _fixed is not None:
        return None
    if _default is None:
        import torch

        _default = torch.get_num_threads()
    return IntraOpTuner(_default)


def apply(threads: int) -> None:
    """Set the calling thread's intra-op thread count (OpenMP keeps it per thread)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
