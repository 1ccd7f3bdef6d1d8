"""Cluster shape and where replicas go. `desired_replicas` (the server's scaling rule) sizes
each service for the load the planner expects at the simulated rate; replicas are then packed
onto GPUs, heaviest first, each onto the least-loaded GPU that has the memory and does not
already hold that service (the same service twice on one GPU would only split its batches)."""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from lego_backend.byte_sizes import parse_bytes
from lego_backend.services.router import ScalingRule, desired_replicas


@dataclass(frozen=True)
class ClusterSpec:
    gpus: int = 64
    mem_bytes: int = 80 << 30  # per GPU

    @classmethod
    def parse(cls, text: str) -> ClusterSpec:
        """`gpus=64,mem=80GiB` (either part optional)."""
        fields: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key == "gpus":
                fields["gpus"] = int(value)
            elif key == "mem":
                fields["mem_bytes"] = parse_bytes(value)
            else:
                raise ValueError(f"unknown cluster field {key!r}: expected gpus=N,mem=SIZE")
        spec = cls(**fields)
        if spec.gpus < 1:
            raise ValueError("gpus must be >= 1")
        return spec

    def as_dict(self) -> dict[str, int]:
        return {"gpus": self.gpus, "mem_bytes": self.mem_bytes}


@dataclass(frozen=True)
class Demand:
    """One service (micro: a checkpoint's denoiser stack; monolithic: a workflow kind)."""
    name: str
    concurrency: float  # requests expected in it at once (arrival rate x standalone time)
    work: float  # GPU-seconds per second it needs at batch 1 (for spreading)
    mem_bytes: int  # weights one replica holds
    act_bytes: int = 0  # working memory of its largest batch (one batch runs at a time on a
    # GPU, so a GPU reserves the largest of its services', not the sum)


def replica_counts(demands: list[Demand], gpus: int, target_load: int, spread: float = 1.0
                   ) -> dict[str, int]:
    """Per service: what the scaling rule asks for at the expected load, and never fewer than
    its share of the cluster's GPUs by work, rounded up (spare GPUs are spread, not left idle;
    rounding up packs a little so the tail of the popularity curve does not sit on one GPU).
    Two replicas at least when the cluster has room for two of everything (balance, failover).
    `spread` > 1 shares each GPU among more services (smoother load, smaller batches)."""
    total_work = sum(d.work for d in demands) or 1.0
    floor = 2 if gpus >= 2 * len(demands) else 1
    rule = ScalingRule(min_replicas=floor, max_replicas=gpus, target_load=target_load)
    out = {}
    for d in demands:
        want = desired_replicas(rule, 0, math.ceil(d.concurrency))
        share = math.ceil(spread * gpus * d.work / total_work)
        out[d.name] = max(1, min(gpus, max(want, share)))
    return out


def place(demands: list[Demand], counts: dict[str, int], spec: ClusterSpec) -> list[list[str]]:
    """GPU index -> services on it. Raises if a replica fits nowhere."""
    hosts: list[list[str]] = [[] for _ in range(spec.gpus)]
    load = [0.0] * spec.gpus
    weights = [0] * spec.gpus
    act = [0] * spec.gpus

    def fits(g: int, d: Demand) -> bool:
        return weights[g] + d.mem_bytes + max(act[g], d.act_bytes) <= spec.mem_bytes
    replicas = [(d.work / counts[d.name], d) for d in demands for _ in range(counts[d.name])]
    replicas.sort(key=lambda x: -x[0])
    # GPUs by (load, index): the first that qualifies is the least loaded one that does
    # (a heap instead of scanning every GPU for every replica: 512 GPUs x 1000 replicas)
    heap = [(0.0, g) for g in range(spec.gpus)]
    for work, d in replicas:
        skipped = []
        chosen = None
        while heap:
            entry = heapq.heappop(heap)
            g = entry[1]
            if d.name not in hosts[g] and fits(g, d):
                chosen = g
                break
            skipped.append(entry)
        for entry in skipped:
            heapq.heappush(heap, entry)
        if chosen is None:
            if any(d.name in h for h in hosts):
                continue  # fewer replicas than asked: the cluster is full
            raise ValueError(f"{d.name} ({d.mem_bytes / 2**30:.1f} GiB) fits on no GPU")
        g = chosen
        hosts[g].append(d.name)
        load[g] += work
        weights[g] += d.mem_bytes
        act[g] = max(act[g], d.act_bytes)
        heapq.heappush(heap, (load[g], g))
    return hosts
