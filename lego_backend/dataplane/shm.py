"""Shared-memory transport between processes on one host. A tensor crossing to a worker
process is moved into shared memory once; what travels on the pipe is torch's shared-memory
handle (a file descriptor and offsets), never the tensor bytes."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.dataplane.handle import TensorHandle
from lego_backend.dataplane.store import TensorStore


def to_wire(value: Any, store: TensorStore) -> Any:
    """Handles -> shared-memory tensors (picklable by handle with torch.multiprocessing)."""
    if isinstance(value, TensorHandle):
        tensor = store.get(value)
        if not tensor.is_shared():
            tensor.share_memory_()
        return tensor
    if isinstance(value, torch.Tensor):
        return value.share_memory_() if not value.is_shared() else value
    if isinstance(value, tuple):
        return tuple(to_wire(v, store) for v in value)
    if isinstance(value, list):
        return [to_wire(v, store) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v, store) for k, v in value.items()}
    return value


def from_wire(value: Any, store: TensorStore) -> Any:
    """Shared tensors that arrived -> handles in this process's store."""
    if isinstance(value, torch.Tensor):
        return store.put(value)
    if isinstance(value, tuple):
        return tuple(from_wire(v, store) for v in value)
    if isinstance(value, list):
        return [from_wire(v, store) for v in value]
    if isinstance(value, dict):
        return {k: from_wire(v, store) for k, v in value.items()}
    return value
