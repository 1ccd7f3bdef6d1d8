"""Choosing a replica for a request, and how many replicas a service should have. Pure policy:
no threads, no torch (the pool applies the decisions)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaLoad:
    queue_depth: int  # calls waiting
    streams: int  # requests pinned to it for their whole sampling loop
    loaded: bool  # weights resident
    adapters_held: int = 0  # how many of the request's LoRAs it already holds


def choose_replica(loads: Sequence[ReplicaLoad], affinity_slack: int = 2) -> int:
    """Adapter affinity (no reload) while that replica is within `affinity_slack` requests of
    the least loaded one -- unbounded affinity piles a popular LoRA's traffic onto the few
    replicas holding it (seen in the simulator) -- then resident weights, then least loaded."""
    least = min(r.queue_depth + r.streams for r in loads)

    def score(i: int) -> tuple[int, int, int, int, int]:
        r = loads[i]
        load = r.queue_depth + r.streams
        affine = r.adapters_held > 0 and load <= least + affinity_slack
        return (0 if affine else 1, -r.adapters_held if affine else 0, 0 if r.loaded else 1,
                load, i)
    return min(range(len(loads)), key=score)


@dataclass(frozen=True)
class ScalingRule:
    min_replicas: int = 1
    max_replicas: int = 1
    target_load: int = 8  # requests (waiting calls + open streams) one replica should carry


def desired_replicas(rule: ScalingRule, current: int, load: int) -> int:
    """Enough replicas that each carries at most `target_load`, within [min, max]; scale
    down one at a time so a short lull does not drop warm replicas all at once."""
    want = max(rule.min_replicas, min(rule.max_replicas, math.ceil(load / rule.target_load)))
    if want < current:
        return current - 1
    return want
