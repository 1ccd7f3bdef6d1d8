"""What the driver believes a replica actor keeps for it (cluster/kept.py): a handle's bytes go
the first two times, then only its id; a freed tensor and the oldest over the byte budget are
named for the actor to drop; a new connection starts from nothing."""
from __future__ import annotations

import gc

import torch

from lego_backend.cluster.kept import KeptTensors


def _ship(kept: KeptTensors, hid: str, tensor: torch.Tensor) -> str:
    """What the replica does for one input: plan, and after a successful call, record."""
    size = tensor.numel() * tensor.element_size()
    plan = kept.plan(hid, size)
    if plan == "keep":
        kept.kept(hid, size, tensor)
    return plan


def test_the_conditioning_goes_twice_then_only_its_id():
    kept = KeptTensors()
    context = torch.zeros(2, 77, 32)  # 19.7 KB, the same handle at every step
    plans = [_ship(kept, "t7", context) for _ in range(20)]
    assert plans[:2] == ["send", "keep"] and set(plans[2:]) == {"kept"}
    assert len(kept) == 1 and kept.nbytes == context.numel() * 4
    # a per-step latent (a new handle every step) is never kept
    assert {_ship(kept, f"x{i}", torch.zeros(2, 4, 32, 32)) for i in range(20)} == {"send"}
    # small tensors are cheaper to send than to track
    t = torch.zeros(2)
    assert [_ship(kept, "t9", t) for _ in range(3)] == ["send"] * 3


def test_a_freed_tensor_is_named_once_for_the_actor_to_drop():
    kept = KeptTensors()
    context = torch.zeros(2, 77, 32)
    for _ in range(3):
        _ship(kept, "t1", context)
    assert kept.take_forget() == []
    del context  # the prompt finished: the driver's store let go of it
    gc.collect()
    assert kept.take_forget() == ["t1"]
    assert kept.take_forget() == [] and len(kept) == 0


def test_the_oldest_go_first_over_the_byte_budget():
    one = torch.zeros(1024, 4)  # 16 KiB each
    kept = KeptTensors(max_bytes=3 * one.numel() * 4)
    tensors = {f"t{i}": one.clone() for i in range(5)}
    for hid, tensor in tensors.items():
        _ship(kept, hid, tensor)
        _ship(kept, hid, tensor)
    _ship(kept, "t2", tensors["t2"])  # recently used: stays
    for hid in ("t3", "t4"):
        _ship(kept, hid, tensors[hid])
    assert kept.take_forget() == ["t0", "t1"]
    assert len(kept) == 3 and _ship(kept, "t2", tensors["t2"]) == "kept"


def test_a_new_connection_starts_from_nothing_and_old_frees_are_ignored():
    kept = KeptTensors()
    context = torch.zeros(2, 77, 32)
    for _ in range(3):
        _ship(kept, "t1", context)
    kept.reset()  # the channel broke or the actor was replaced
    assert len(kept) == 0 and _ship(kept, "t1", context) == "send"
    del context
    gc.collect()
    assert kept.take_forget() == []  # the new actor never had it
