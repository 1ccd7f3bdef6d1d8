"""Search for the highest load (request rate, or burst multiplier) a server sustains at a target
SLO attainment. Every probe is an expensive live replay, so the search brackets geometrically
(grow on success, shrink on failure) and then bisects the bracket a fixed number of times.

Measurements are noisy; the search assumes attainment falls as load rises and reports the
highest passing value BELOW every failing one it saw, never a lucky pass above a failure."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SweepPoint:
    value: float  # the load probed: requests/s, or a burst multiplier
    attainment: float  # fraction of requests served within their SLO
    passed: bool  # attainment >= the search's target
    detail: dict[str, Any] = field(default_factory=dict)  # stats and trace parameters

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "attainment": self.attainment, "passed": self.passed,
                **self.detail}


@dataclass(frozen=True)
class SearchPlan:
    start: float  # first value probed
    growth: float = 1.5  # bracketing factor (> 1)
    bisect_steps: int = 1  # bisections of the bracket after it is found
    max_points: int = 6  # hard cap on probes: it bounds the wall time of a sweep
    floor: float = 0.0  # never probe below this
    ceiling: float = math.inf  # never probe above this
    target: float = 0.9  # attainment a value must reach to pass

    def __post_init__(self) -> None:
        if self.growth <= 1.0:
            raise ValueError(f"growth must be > 1, got {self.growth}")
        if self.max_points < 1:
            raise ValueError("max_points must be >= 1")
        if not self.floor <= self.start <= self.ceiling:
            raise ValueError(f"start {self.start} outside [{self.floor}, {self.ceiling}]")

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "growth": self.growth, "bisect_steps": self.bisect_steps,
                "max_points": self.max_points, "floor": self.floor,
                "ceiling": None if math.isinf(self.ceiling) else self.ceiling,
                "target": self.target}


@dataclass(frozen=True)
class SearchResult:
    best: float  # highest passing value below every failure; 0.0 if nothing passed
    best_point: SweepPoint | None  # the probe at `best`
    points: list[SweepPoint]  # every probe, in the order measured


def search_max(measure: Callable[[float], tuple[float, dict[str, Any]]],
               plan: SearchPlan) -> SearchResult:
    """Probe `measure(value) -> (attainment, details)` per `plan`; see the module docstring."""
    points: list[SweepPoint] = []
    lo: float | None = None  # highest value that passed (below hi)
    hi: float | None = None  # lowest value that failed

    def probe(x: float) -> bool:
        x = round(x, 6)  # values land in JSON; keep them tidy and exactly repeatable
        att, detail = measure(x)
        point = SweepPoint(x, att, att >= plan.target, detail)
        points.append(point)
        return point.passed

    def room() -> bool:
        return len(points) < plan.max_points

    x = plan.start
    if probe(x):
        lo = x
        while room():
            nxt = min(x * plan.growth, plan.ceiling)
            if nxt <= x:
                break  # already at the ceiling: nothing higher to try
            x = nxt
            if not probe(x):
                hi = x
                break
            lo = x
    else:
        hi = x
        while room():
            nxt = max(x / plan.growth, plan.floor)
            if nxt >= x:
                break  # already at the floor
            x = nxt
            if probe(x):
                lo = x
                break
            hi = x
    steps = 0
    while lo is not None and hi is not None and steps < plan.bisect_steps and room():
        mid = (lo + hi) / 2.0
        if probe(mid):
            lo = mid
        else:
            hi = mid
        steps += 1
    best = round(lo, 6) if lo is not None else 0.0
    best_point = next((p for p in reversed(points) if p.passed and p.value == best), None)
    return SearchResult(best, best_point, points)


def measure_values(measure: Callable[[float], tuple[float, dict[str, Any]]],
                   values: Sequence[float], target: float = 0.9) -> SearchResult:
    """Probe exactly `values`, in ascending order, instead of searching: fixed load points
    (`lego bench --rates/--bursts`) that stay the same from run to run, so runs, replays and
    the simulator compare point for point. `best` follows the search's rule: the highest
    passing value below every failing one."""
    if not values:
        raise ValueError("no values to measure")
    points = []
    for x in sorted({round(v, 6) for v in values}):
        att, detail = measure(x)
        points.append(SweepPoint(x, att, att >= target, detail))
    first_fail = min((p.value for p in points if not p.passed), default=math.inf)
    passing = [p for p in points if p.passed and p.value < first_fail]
    best_point = passing[-1] if passing else None
    return SearchResult(best_point.value if best_point else 0.0, best_point, points)
