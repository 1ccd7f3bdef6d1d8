"""LoRA adapters applied at run time, per batch row, instead of merged into a copy of the
weights: one loaded UNet (and text encoder) serves every LoRA combination, requests with
different LoRAs still batch together, and removing a LoRA gives the base model's exact output.

Each replica keeps an LRU of loaded adapters and loads new ones in the background (bounded
asynchronous loading, SwiftDiffusion): a request may start denoising before its adapter is
ready, and waits for it at step K at the latest."""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lego_backend.models import loading
from lego_backend.services.protocol import AdapterRef


class AdapterCache:
    def __init__(self, capacity: int = 16):
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Future] = OrderedDict()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lora-load")

    def request(self, ref: AdapterRef) -> Future:
        """The loaded LoRA (a future: loading runs in the background)."""
        with self._lock:
            future = self._entries.get(ref.identity)
            if future is None or (future.done() and future.exception() is not None):
                future = self._loader.submit(loading.load_lora, ref.path)
                self._entries[ref.identity] = future
            self._entries.move_to_end(ref.identity)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return future

    def ready(self, ref: AdapterRef) -> Any | None:
        """The loaded LoRA if it is ready now, else None (still loading, or failed)."""
        with self._lock:
            future = self._entries.get(ref.identity)
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()

    def identities(self) -> list[str]:
        with self._lock:
            return [k for k, f in self._entries.items() if f.done() and f.exception() is None]

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)


Rows = tuple[int, int]  # [start, stop) rows of the batch one call occupies
Stack = Sequence[tuple[Any, float]]  # (loaded LoRA, strength) pairs one call asked for


@dataclass(frozen=True)
class _Factor:
    """One LoRA's low-rank pair for one target, shaped for F.linear / F.conv2d (views of the
    loaded tensors: no copies)."""

    down: torch.Tensor
    up: torch.Tensor
    scale: float  # alpha / rank
    conv: tuple[Any, Any, Any] | None  # the target's (stride, padding, dilation); None = linear


def _factor(target: torch.nn.Module, delta: Any) -> _Factor:
    down, up = delta.down, delta.up
    if isinstance(target, torch.nn.Conv2d):
        if down.dim() == 2:  # a linear-shaped LoRA on a 1x1 conv
            down, up = down[:, :, None, None], up[:, :, None, None]
        return _Factor(down, up, delta.scale, (target.stride, target.padding, target.dilation))
    return _Factor(down.reshape(down.shape[0], -1), up.reshape(up.shape[0], -1), delta.scale,
                   None)


def _low_rank(f: _Factor, x: torch.Tensor) -> torch.Tensor:
    down, up = f.down, f.up
    if down.dtype != x.dtype:
        down, up = down.to(x.dtype), up.to(x.dtype)
    if f.conv is None:
        return F.linear(F.linear(x, down), up)
    stride, padding, dilation = f.conv
    return F.conv2d(F.conv2d(x, down, stride=stride, padding=padding, dilation=dilation), up)


class _ModuleLoras:
    """What row_adapters keeps per model between batches: target modules by path and each
    LoRA's prepared factors (looking a path up and reshaping cost more than the low-rank
    product itself at small batches, and the same LoRAs come back at every step)."""

    CAPACITY = 32  # LoRAs whose prepared factors are kept (views: they cost no weight memory)

    def __init__(self) -> None:
        self.targets: dict[str, torch.nn.Module] = {}
        self.prepared: OrderedDict[tuple[int, str], tuple[Any, dict[str, _Factor]]] = \
            OrderedDict()

    def target(self, module: torch.nn.Module, path: str) -> torch.nn.Module:
        found = self.targets.get(path)
        if found is None:
            found = self.targets[path] = module.get_submodule(path)
        return found

    def factors(self, module: torch.nn.Module, component: str,
                weights: Any) -> dict[str, _Factor]:
        key = (id(weights), component)
        entry = self.prepared.get(key)
        if entry is None or entry[0] is not weights:
            deltas = weights.for_component(component)
            entry = (weights, {path: _factor(self.target(module, path), delta)
                               for path, delta in deltas.items()})
            self.prepared[key] = entry  # holding `weights` keeps its id from being reused
            while len(self.prepared) > self.CAPACITY:
                self.prepared.popitem(last=False)
        self.prepared.move_to_end(key)
        return entry[1]


_STATE: weakref.WeakKeyDictionary[torch.nn.Module, _ModuleLoras] = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()


def _state(module: torch.nn.Module) -> _ModuleLoras:
    with _STATE_LOCK:
        state = _STATE.get(module)
        if state is None:
            state = _STATE[module] = _ModuleLoras()
        return state


def _groups(rows: Sequence[tuple[Rows, Stack]]) -> list[tuple[int, int, Stack]]:
    """Adjacent row ranges asking for the same LoRAs at the same strengths become one range:
    one low-rank product per target for all of them."""
    out: list[tuple[int, int, Stack]] = []
    for (start, stop), stack in rows:
        if out and out[-1][1] == start and _same(out[-1][2], stack):
            out[-1] = (out[-1][0], stop, out[-1][2])
        else:
            out.append((start, stop, stack))
    return out


def _same(a: Stack, b: Stack) -> bool:
    return len(a) == len(b) and all(wa is wb and sa == sb for (wa, sa), (wb, sb) in zip(a, b))


def _hook(entries: list[tuple[int, int, _Factor, float]], in_place: bool) -> Any:
    def hook(mod: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        x = args[0]
        if not in_place:
            out = out.clone()
        n = out.shape[0]
        for start, stop, factor, alpha in entries:
            if start == 0 and stop >= n:  # every row: no slicing
                out.add_(_low_rank(factor, x), alpha=alpha)
            else:
                out[start:stop].add_(_low_rank(factor, x[start:stop]), alpha=alpha)
        return out
    return hook


@contextmanager
def row_adapters(module: torch.nn.Module, component: str,
                 rows: Sequence[tuple[Rows, Stack]]) -> Iterator[None]:
    """While active, every LoRA target in `module` adds strength * scale * up(down(x)) to the
    rows of the calls that asked for that LoRA. `rows`: per call, its row range and its
    (loaded LoRA, strength) list. Rows that asked for none get the base output exactly."""
    if not rows:
        yield
        return
    state = _state(module)
    per_target: dict[str, list[tuple[int, int, _Factor, float]]] = {}
    for start, stop, stack in _groups(rows):
        for weights, strength in stack:
            for path, factor in state.factors(module, component, weights).items():
                per_target.setdefault(path, []).append(
                    (start, stop, factor, float(strength) * factor.scale))
    hooks = []
    try:
        for path, entries in per_target.items():
            target = state.target(module, path)
            # A Linear's or Conv2d's output is a fresh tensor nobody else holds yet: add the
            # LoRA rows into it instead of copying the whole activation first.
            in_place = isinstance(target, (torch.nn.Linear, torch.nn.Conv2d))
            hooks.append(target.register_forward_hook(_hook(entries, in_place)))
        yield
    finally:
        for handle in hooks:
            handle.remove()


def loaded_rows(cache: AdapterCache, spans: Sequence[Rows],
                wanted: Sequence[Sequence[AdapterRef]],
                wait: bool) -> list[tuple[Rows, list[tuple[Any, float]]]]:
    """Pair each call's rows with its loaded adapters. With `wait`, block until they load
    (errors propagate); without, use only those already loaded."""
    out = []
    for span, refs in zip(spans, wanted):
        ready = []
        for ref in refs:
            weights = cache.request(ref).result() if wait else cache.ready(ref)
            if weights is not None:
                ready.append((weights, ref.strength))
        if ready:
            out.append((span, ready))
    return out
