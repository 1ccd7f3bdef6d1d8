"""What crosses between the driver and a replica actor, split in two planes.

Control plane: the call (op name, scalars, LoRA references) with every tensor replaced by a
`Slot` -- its shape and dtype and where its bytes are (which payload, which position). Data
plane: payloads, lists of arrays that travel through Ray's object store as object references.
A control message never holds tensor bytes (`check_control` enforces it on the receiving side).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lego_backend.dataplane.handle import TensorHandle


@dataclass(frozen=True)
class Slot:
    """A tensor in a control message: payload `ref` (an index into the message's payload list;
    -1 = the payload sent back with this result), position `index` inside it."""

    ref: int
    index: int
    shape: tuple[int, ...]
    dtype: str
    device: str = "cpu"


def walk(value: Any, leaf: Callable[[Any], Any]) -> Any:
    """Copy of `value` with every TensorHandle, tensor and Slot replaced by `leaf(x)`."""
    if isinstance(value, (TensorHandle, torch.Tensor, Slot)):
        return leaf(value)
    if isinstance(value, tuple):
        return tuple(walk(v, leaf) for v in value)
    if isinstance(value, list):
        return [walk(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: walk(v, leaf) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: walk(getattr(value, f.name), leaf)
                   for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def to_payload(tensor: torch.Tensor) -> Any:
    """A tensor as Ray serialises it best: a numpy array (out-of-band, zero-copy reads from the
    object store) where numpy has the dtype, else the tensor itself (bfloat16, ...)."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    try:
        return t.contiguous().numpy()
    except TypeError:
        return t.contiguous()


def from_payload(item: Any) -> torch.Tensor:
    """A payload element as a tensor this process may modify (object-store arrays are
    read-only views: copied once)."""
    if isinstance(item, np.ndarray):
        return torch.from_numpy(item if item.flags.writeable else item.copy())
    if isinstance(item, torch.Tensor):
        return item
    raise TypeError(f"not a tensor payload: {type(item).__name__}")


def nbytes(item: Any) -> int:
    if isinstance(item, np.ndarray):
        return int(item.nbytes)
    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    return 0


def check_control(value: Any) -> None:
    """Refuse a control message that carries tensor bytes (a bug, never a user error)."""
    def leaf(x: Any) -> Any:
        if not isinstance(x, Slot):
            raise TypeError(f"control message carries a {type(x).__name__}; tensors must "
                            "travel as payload references")
        return x

    def visit(v: Any) -> None:
        if isinstance(v, (np.ndarray, bytes, bytearray, memoryview)):
            raise TypeError(f"control message carries {type(v).__name__} data")
        if isinstance(v, (tuple, list)):
            for item in v:
                visit(item)
        elif isinstance(v, dict):
            for item in v.values():
                visit(item)
    walk(value, leaf)
    visit(value)
