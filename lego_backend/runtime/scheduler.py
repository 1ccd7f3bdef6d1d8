"""Scheduling policy, pure (no torch, no threads): which waiting service calls run together
next. Replicas ask it at every batch boundary; it runs under a fake clock in unit tests.

Policy: earliest deadline first. The call with the earliest deadline picks the batch key; other
waiting calls with the same key join it in deadline order, up to the batch limit. A batch whose
replica still expects calls (open sampling streams that have not submitted their next step yet)
is held back for at most `linger_s`, so requests that finish their sampler math a moment later
join this step instead of forming a batch of one."""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """What the policy knows about one waiting call."""

    key: Hashable | None  # batch key; None = runs alone
    deadline: float  # absolute time (scheduler clock) by which its prompt should finish
    arrived: float  # when the call was queued
    seq: int  # arrival order, breaks ties


@dataclass(frozen=True)
class BatchDecision:
    members: tuple[int, ...]  # indices into the waiting list, in run order; empty = wait
    wait_s: float = 0.0  # when members is empty: how long to wait before asking again


def pick_batch(waiting: Sequence[Waiting], now: float, max_batch: int,
               open_streams: int = 0, linger_s: float = 0.0) -> BatchDecision:
    """`open_streams`: requests that will call this replica at every step until they finish."""
    if not waiting:
        return BatchDecision(())
    order = sorted(range(len(waiting)), key=lambda i: (waiting[i].deadline, waiting[i].seq))
    head = waiting[order[0]]
    if head.key is None:
        return BatchDecision((order[0],))
    members = [i for i in order if waiting[i].key == head.key][:max_batch]
    if len(waiting) < open_streams and len(members) < max_batch and linger_s > 0:
        oldest = min(w.arrived for w in waiting)
        remaining = oldest + linger_s - now
        if remaining > 0:
            return BatchDecision((), remaining)
    return BatchDecision(tuple(members))
