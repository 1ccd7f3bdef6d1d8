"""How many threads torch may use inside one forward of one replica (intra-op parallelism),
chosen from the replica's own batches.

Why: on a CPU host the server already runs forwards from several threads at once (one per
replica, plus the prompt runners). For small models, splitting each forward over an OpenMP team
costs more than it saves: every one of a forward's hundreds of small ops wakes the team. On this
project's 2-core machine a batch-1 step of the demo UNet took 8.6 ms on one thread and 25-35 ms
on two (passive OpenMP waiting); a real SD UNet at 512 px is the other way round. The replica
cannot know which from the model's size alone, so it measures: its first batches alternate
between all threads and one, and it keeps the count whose batches took less time per row.

Pure policy, no torch: the replica thread applies `threads_for_next_batch()` with
`torch.set_num_threads` (per calling thread in OpenMP) and reports each batch's time."""
from __future__ import annotations

import statistics
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
