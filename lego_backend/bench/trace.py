"""Seeded arrival traces: request arrival times in seconds from the start of a replay.

Poisson arrivals at a constant rate, and a bursty trace: Poisson at a base rate with the rate
multiplied over one window. Both draw exponential gaps piecewise; since the exponential is
memoryless, restarting the draw at a rate change gives an exact piecewise-constant-rate Poisson
process. Same arguments, same trace: sweep points are comparable across serving modes."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BurstSpec:
    base_rate: float  # requests/s outside the window
    multiplier: float  # the rate inside the window is base_rate * multiplier
    window_start_s: float  # when the burst starts, from the start of the trace
    window_s: float  # how long it lasts
    duration_s: float  # length of the whole trace

    def rate_at(self, t: float) -> float:
        inside = self.window_start_s <= t < self.window_start_s + self.window_s
        return self.base_rate * (self.multiplier if inside else 1.0)

    def expected_count(self) -> float:
        window = max(0.0, min(self.window_s, self.duration_s - self.window_start_s))
        return self.base_rate * (self.duration_s + (self.multiplier - 1.0) * window)

    def as_dict(self) -> dict[str, Any]:
        return {"base_rate": self.base_rate, "multiplier": self.multiplier,
                "window_start_s": self.window_start_s, "window_s": self.window_s,
                "duration_s": self.duration_s}


def _check(rate: float, start: float, end: float) -> None:
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    if end < start:
        raise ValueError(f"segment ends ({end}) before it starts ({start})")


def _segment(rng: random.Random, rate: float, start: float, end: float) -> list[float]:
    """Poisson arrivals in [start, end) at `rate`."""
    _check(rate, start, end)
    out: list[float] = []
    if rate == 0:
        return out
    t = start + rng.expovariate(rate)
    while t < end:
        out.append(t)
        t += rng.expovariate(rate)
    return out


def poisson_arrivals(rate: float, duration_s: float, seed: int) -> list[float]:
    """Arrival times of a Poisson process at `rate` requests/s over [0, duration_s)."""
    return _segment(random.Random(seed), rate, 0.0, duration_s)


def bursty_arrivals(spec: BurstSpec, seed: int) -> list[float]:
    """Poisson at `spec.base_rate`, at `base_rate * multiplier` inside the burst window."""
    if spec.multiplier < 0:
        raise ValueError(f"burst multiplier must be >= 0, got {spec.multiplier}")
    rng = random.Random(seed)
    w0 = min(max(spec.window_start_s, 0.0), spec.duration_s)
    w1 = min(w0 + max(spec.window_s, 0.0), spec.duration_s)
    return (_segment(rng, spec.base_rate, 0.0, w0)
            + _segment(rng, spec.base_rate * spec.multiplier, w0, w1)
            + _segment(rng, spec.base_rate, w1, spec.duration_s))
