"""Placement: replica counts follow the server's scaling rule and the work shares; replicas are
packed within GPU memory, never twice on one GPU."""
from __future__ import annotations

import pytest

from lego_backend.sim.placement import ClusterSpec, Demand, place, replica_counts


def test_counts_follow_the_scaling_rule_and_the_work_share() -> None:
    demands = [Demand("hot", concurrency=40.0, work=3.0, mem_bytes=1),
               Demand("cold", concurrency=0.5, work=1.0, mem_bytes=1)]
    # rule: ceil(40 / 8) = 5 for hot, capped at the 4 GPUs; room for two of each -> cold 2
    assert replica_counts(demands, gpus=4, target_load=8) == {"hot": 4, "cold": 2}
    assert replica_counts(demands, gpus=3, target_load=8) == {"hot": 3, "cold": 1}
    # work share of 16 GPUs: hot 12 > the rule's 5; cold 4
    assert replica_counts(demands, gpus=16, target_load=8) == {"hot": 12, "cold": 4}
    assert replica_counts(demands, gpus=16, target_load=8, spread=2.0)["cold"] == 8


def test_packing_respects_memory_and_distinct_hosts() -> None:
    gib = 1 << 30
    demands = [Demand("a", 1, 2.0, 30 * gib, act_bytes=10 * gib),
               Demand("b", 1, 1.0, 30 * gib, act_bytes=20 * gib)]
    hosts = place(demands, {"a": 2, "b": 2}, ClusterSpec(gpus=2, mem_bytes=80 * gib))
    assert sorted(map(sorted, hosts)) == [["a", "b"], ["a", "b"]]
    with pytest.raises(ValueError, match="fits on no GPU"):
        place([Demand("big", 1, 1.0, 90 * gib)], {"big": 1}, ClusterSpec(1, 80 * gib))
    # weights add up, activations do not (one batch at a time): 30 + 30 + max(10, 20) = 80
    assert place(demands, {"a": 1, "b": 1}, ClusterSpec(1, 80 * gib)) == [["a", "b"]]
    with pytest.raises(ValueError, match="b"):
        place(demands, {"a": 1, "b": 1}, ClusterSpec(1, 79 * gib))
    # a second replica that finds no room is dropped: the service still runs somewhere
    assert place(demands, {"a": 2, "b": 1}, ClusterSpec(1, 80 * gib)) == [["a", "b"]]
