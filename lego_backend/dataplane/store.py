"""In-process tensor store: zero-copy (the handle maps to the very tensor object). Refcounted so a
prompt's intermediate tensors are freed as soon as their last consumer has run."""
from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import torch

from lego_backend.dataplane.handle import TensorHandle


class TensorStore:
    owner = "inproc"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tensors: dict[str, torch.Tensor] = {}
        self._refs: dict[str, int] = {}
        self._ids = itertools.count()

    def put(self, tensor: torch.Tensor, refs: int = 1) -> TensorHandle:
        with self._lock:
            hid = f"t{next(self._ids)}"
            self._tensors[hid] = tensor
            self._refs[hid] = refs
        return TensorHandle(hid, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."),
                            str(tensor.device), self.owner)

    def get(self, handle: TensorHandle) -> torch.Tensor:
        with self._lock:
            try:
                return self._tensors[handle.id]
            except KeyError:
                raise KeyError(f"tensor {handle.id} was released") from None

    def retain(self, handle: TensorHandle, n: int = 1) -> None:
        with self._lock:
            self._refs[handle.id] += n

    def release(self, handle: TensorHandle) -> None:
        with self._lock:
            left = self._refs.get(handle.id, 0) - 1
            if left <= 0:
                self._refs.pop(handle.id, None)
                self._tensors.pop(handle.id, None)
            else:
                self._refs[handle.id] = left

    def __len__(self) -> int:
        with self._lock:
            return len(self._tensors)

    def resident_bytes(self) -> int:
        with self._lock:
            return sum(t.numel() * t.element_size() for t in self._tensors.values())


def iter_handles(value: Any) -> Iterator[TensorHandle]:
    """Every handle inside a node value (tuples, lists, dicts and dataclasses are walked), so a
    cache eviction can release what the evicted outputs held."""
    if isinstance(value, TensorHandle):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from iter_handles(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_handles(v)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from iter_handles(getattr(value, f.name))
