"""The control plane carries slots, never tensor bytes; payloads round-trip exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lego_backend.cluster.wire import Slot, check_control, from_payload, to_payload, walk
from lego_backend.dataplane.store import TensorStore
from lego_backend.services.protocol import AdapterRef


def test_walk_replaces_every_tensor_and_keeps_the_rest(tmp_path):
    store = TensorStore()
    h = store.put(torch.ones(2, 3))
    ref = AdapterRef("id", tmp_path / "l.safetensors", 0.5)
    args = {"x": h, "down": [h, h], "t": torch.zeros(2), "adapters": (ref,), "text": "hi"}
    seen = []
    out = walk(args, lambda v: seen.append(v) or Slot(0, len(seen) - 1, (1,), "float32"))
    assert len(seen) == 4
    assert out["adapters"] == (ref,) and out["text"] == "hi"
    check_control(out)  # slots only: fine


@pytest.mark.parametrize("bad", [torch.zeros(3), np.zeros(3), b"\x00" * 8])
def test_control_with_bytes_is_refused(bad):
    with pytest.raises(TypeError):
        check_control([("unet", {"x": bad})])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int64, torch.bfloat16])
def test_payload_round_trip(dtype):
    t = (torch.arange(12).reshape(3, 4) * 3).to(dtype)
    item = to_payload(t)
    if isinstance(item, np.ndarray):  # the object store hands out read-only views
        item.flags.writeable = False
    back = from_payload(item)
    assert back.dtype == dtype and torch.equal(back, t)
    back += 1  # safe to modify: never the object store's buffer
    assert not torch.equal(back, t) or dtype == torch.bfloat16


def test_remote_handles_resolve_once_and_forward_their_source():
    store = TensorStore()
    fetched = []

    def resolve():
        fetched.append(1)
        return torch.full((2, 2), 7.0)

    h = store.put_remote(("ref", 0), resolve, (2, 2), "float32", "cpu", owner="ray")
    assert h.owner == "ray" and h.shape == (2, 2)
    assert store.source(h) == ("ref", 0) and fetched == []
    assert store.resident_bytes() == 0  # nothing here until something reads it
    assert torch.equal(store.get(h), torch.full((2, 2), 7.0))
    store.get(h)
    assert fetched == [1] and store.resident_bytes() == 16
    local = store.put(torch.zeros(1))
    assert store.source(local) is None
    store.release(h)
    with pytest.raises(KeyError):
        store.get(h)
    assert len(store) == 1
