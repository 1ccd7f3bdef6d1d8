"""In-process tensor store: zero-copy (the handle maps to the very tensor object). Refcounted so a
prompt's intermediate tensors are freed as soon as their last consumer has run.

A handle may also name bytes that live elsewhere (`put_remote`: e.g. a Ray object produced by a
replica actor on another host). The store then holds only where the bytes are; they are fetched
the first time something in this process reads the tensor, and a hop to another remote consumer
forwards the reference without the bytes ever passing through this process."""
from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lego_backend.dataplane.handle import TensorHandle


@dataclasses.dataclass
class _Remote:
    source: Any  # transport-specific reference to the bytes (forwarded as is to the next hop)
    resolve: Callable[[], torch.Tensor]  # fetches the bytes into this process


class TensorStore:
    owner = "inproc"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tensors: dict[str, torch.Tensor] = {}
        self._remote: dict[str, _Remote] = {}
        self._refs: dict[str, int] = {}
        self._ids = itertools.count()

    def put_remote(self, source: Any, resolve: Callable[[], torch.Tensor],
                   shape: tuple[int, ...], dtype: str, device: str, owner: str,
                   refs: int = 1) -> TensorHandle:
        """A handle for bytes held elsewhere; `resolve` fetches them on first local use."""
        with self._lock:
            hid = f"t{next(self._ids)}"
            self._remote[hid] = _Remote(source, resolve)
            self._refs[hid] = refs
        return TensorHandle(hid, tuple(shape), dtype, device, owner)

    def source(self, handle: TensorHandle) -> Any | None:
        """Where a remote handle's bytes are (None for a tensor held here)."""
        with self._lock:
            remote = self._remote.get(handle.id)
        return remote.source if remote is not None else None

    def put(self, tensor: torch.Tensor, refs: int = 1) -> TensorHandle:
        with self._lock:
            hid = f"t{next(self._ids)}"
            self._tensors[hid] = tensor
            self._refs[hid] = refs
        return TensorHandle(hid, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."),
                            str(tensor.device), self.owner)

    def get(self, handle: TensorHandle) -> torch.Tensor:
        with self._lock:
            tensor = self._tensors.get(handle.id)
            remote = self._remote.get(handle.id) if tensor is None else None
        if tensor is not None:
            return tensor
        if remote is None:
            raise KeyError(f"tensor {handle.id} was released")
        tensor = remote.resolve()  # outside the lock: may wait on the network
        with self._lock:
            if handle.id in self._remote:  # keep the bytes here while the handle lives
                self._tensors[handle.id] = tensor
        return tensor

    def retain(self, handle: TensorHandle, n: int = 1) -> None:
        with self._lock:
            self._refs[handle.id] += n

    def release(self, handle: TensorHandle) -> None:
        with self._lock:
            left = self._refs.get(handle.id, 0) - 1
            if left <= 0:
                self._refs.pop(handle.id, None)
                self._tensors.pop(handle.id, None)
                self._remote.pop(handle.id, None)
            else:
                self._refs[handle.id] = left

    def __len__(self) -> int:
        with self._lock:
            return len(self._tensors.keys() | self._remote.keys())

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
