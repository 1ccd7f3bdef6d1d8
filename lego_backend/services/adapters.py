"""LoRA adapters applied at run time, per batch row, instead of merged into a copy of the
weights: one loaded UNet (and text encoder) serves every LoRA combination, requests with
different LoRAs still batch together, and removing a LoRA gives the base model's exact output.

Each replica keeps an LRU of loaded adapters and loads new ones in the background (bounded
asynchronous loading, SwiftDiffusion): a request may start denoising before its adapter is
ready, and waits for it at step K at the latest."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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


def _lora_out(target: torch.nn.Module, x: torch.Tensor, down: torch.Tensor,
              up: torch.Tensor) -> torch.Tensor:
    if isinstance(target, torch.nn.Conv2d):
        if down.dim() == 2:  # a linear-shaped LoRA on a 1x1 conv
            down, up = down[:, :, None, None], up[:, :, None, None]
        h = F.conv2d(x, down, stride=target.stride, padding=target.padding,
                     dilation=target.dilation)
        return F.conv2d(h, up)
    return F.linear(F.linear(x, down.reshape(down.shape[0], -1)), up.reshape(up.shape[0], -1))


@contextmanager
def row_adapters(module: torch.nn.Module, component: str,
                 rows: Sequence[tuple[Rows, Sequence[tuple[Any, float]]]]) -> Iterator[None]:
    """While active, every LoRA target in `module` adds strength * scale * up(down(x)) to the
    rows of the calls that asked for that LoRA. `rows`: per call, its row range and its
    (loaded LoRA, strength) list."""
    per_target: dict[str, list[tuple[Rows, Any, float]]] = {}
    for span, adapters in rows:
        for weights, strength in adapters:
            for path, delta in weights.for_component(component).items():
                per_target.setdefault(path, []).append((span, delta, strength))
    hooks = []
    try:
        for path, entries in per_target.items():
            target = module.get_submodule(path)

            def hook(mod: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor,
                     entries: list[tuple[Rows, Any, float]] = entries) -> torch.Tensor:
                x = args[0]
                out = out.clone()
                for (start, stop), delta, strength in entries:
                    extra = _lora_out(mod, x[start:stop], delta.down.to(x.dtype),
                                      delta.up.to(x.dtype))
                    out[start:stop] += extra * (strength * delta.scale)
                return out

            hooks.append(target.register_forward_hook(hook))
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
