"""Transport per hop, and the hop statistics."""
from __future__ import annotations

import pytest

from lego_backend.dataplane.transport import (
    Capabilities,
    HopStats,
    Location,
    choose_transport,
    hop_label,
)

ALL = Capabilities(shm=True, ray=True, nvshmem=True)


def test_same_process_is_zero_copy():
    here = Location("n1", 10, "cuda:0", ray=True)
    assert choose_transport(here, here, ALL) == "inproc"


def test_gpu_to_gpu_uses_nvshmem_only_when_it_was_found_ready():
    a, b = Location("n1", 10, "cuda:0", ray=True), Location("n2", 11, "cuda:1", ray=True)
    assert choose_transport(a, b, ALL) == "nvshmem"
    assert choose_transport(a, b, Capabilities(shm=True, ray=True)) == "ray"


def test_ray_processes_use_the_object_store_and_hops_say_if_they_crossed_hosts():
    a, b, c = (Location("n1", 10, ray=True), Location("n1", 11, ray=True),
               Location("n2", 12, ray=True))
    caps = Capabilities(shm=True, ray=True)
    assert choose_transport(a, b, caps) == "ray"
    assert hop_label("ray", a, b) == "ray:same-node"
    assert hop_label(choose_transport(a, c, caps), a, c) == "ray:cross-node"


def test_worker_processes_on_one_host_use_shared_memory():
    a, b = Location("host", 10), Location("host", 11)
    assert choose_transport(a, b, Capabilities()) == "shm"
    with pytest.raises(ValueError):
        choose_transport(a, Location("other", 12), Capabilities())


def test_hop_stats_sum_per_label():
    stats = HopStats()
    stats.record("ray:cross-node", 1000, 0.002)
    stats.record("ray:cross-node", 3000, 0.004)
    snap = stats.snapshot()["ray:cross-node"]
    assert snap["hops"] == 2 and snap["bytes"] == 4000
    assert snap["mean_ms"] == pytest.approx(3.0)


def test_input_lost_names_objects_and_nodes():
    from dataclasses import dataclass

    from lego_backend.dataplane.transport import InputLostError

    @dataclass(frozen=True)
    class Source:
        object_id: str
        node: str

    lost = InputLostError("gone", frozenset({"o1"}), frozenset({"nodeB"}))
    assert lost.matches(Source("o1", "nodeA"))  # the object itself
    assert lost.matches(Source("o2", "nodeB"))  # anything else held on the dead node
    assert not lost.matches(Source("o3", "nodeA"))
    assert not lost.matches(None)  # bytes held in this process are never lost this way
    assert InputLostError("unknown").matches(Source("o3", "nodeA"))  # unknown: all suspect
