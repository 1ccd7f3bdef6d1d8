"""Outputs of executed nodes keyed by input signature, shared across prompts (ComfyUI's output
and ui caches). Least-recently-used entries are dropped at prompt boundaries and their tensors
released."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lego_backend.dataplane.store import TensorStore, iter_handles


@dataclass(frozen=True)
class CachedOutput:
    result: tuple[Any, ...]  # output values (handles inside)
    ui: dict[str, Any] | None


class OutputCache:
    def __init__(self, store: TensorStore, max_entries: int = 256):
        self.store = store
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CachedOutput] = OrderedDict()

    def get(self, key: str) -> CachedOutput | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def put(self, key: str, value: CachedOutput) -> None:
        """Store outputs; the cache takes its own reference on every handle inside."""
        for handle in set(iter_handles(value.result)):
            self.store.retain(handle)
        with self._lock:
            old = self._entries.pop(key, None)
            self._entries[key] = value
        if old is not None:
            self._release(old)

    def trim(self, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Drop least-recently-used entries beyond the limit (never the ones in `keep`)."""
        dropped = []
        with self._lock:
            for key in list(self._entries):
                if len(self._entries) <= self.max_entries:
                    break
                if key not in keep:
                    dropped.append(self._entries.pop(key))
        for value in dropped:
            self._release(value)

    def clear(self) -> None:
        with self._lock:
            values = list(self._entries.values())
            self._entries.clear()
        for value in values:
            self._release(value)

    def _release(self, value: CachedOutput) -> None:
        for handle in set(iter_handles(value.result)):
            self.store.release(handle)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
