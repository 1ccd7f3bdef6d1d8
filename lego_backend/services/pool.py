"""Services by weights identity: one service per ServiceSpec.key, shared by every prompt. Calls to
one service are serialised (a loaded model is not re-entrant); different services run in
parallel. A memory budget evicts least-recently-used idle services."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lego_backend.dataplane.store import TensorStore
from lego_backend.services.controlnet import ControlNetService
from lego_backend.services.denoiser import DenoiserService
from lego_backend.services.protocol import ModelService, ServiceCall, ServiceSpec
from lego_backend.services.text_encoder import TextEncoderService
from lego_backend.services.vae import VaeService

Factory = Callable[[ServiceSpec, TensorStore], ModelService]

DEFAULT_FACTORIES: dict[str, Factory] = {
    "text_encoder": TextEncoderService,
    "denoiser": DenoiserService,
    "vae": VaeService,
    "controlnet": ControlNetService,
}


@dataclass
class _Entry:
    service: ModelService
    lock: threading.Lock
    last_used: float
    busy: int = 0


class ServicePool:
    def __init__(self, store: TensorStore, memory_budget: int | None = None,
                 factories: dict[str, Factory] | None = None):
        self.store = store
        self.memory_budget = memory_budget
        self._factories = dict(DEFAULT_FACTORIES if factories is None else factories)
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Entry] = {}

    def register_factory(self, kind: str, factory: Factory) -> None:
        self._factories[kind] = factory

    def _entry(self, spec: ServiceSpec) -> _Entry:
        with self._lock:
            entry = self._entries.get(spec.key)
            if entry is None:
                factory = self._factories.get(spec.kind)
                if factory is None:
                    raise KeyError(f"no service kind {spec.kind!r}")
                entry = _Entry(factory(spec, self.store), threading.Lock(), time.monotonic())
                self._entries[spec.key] = entry
            entry.busy += 1
            return entry

    def call(self, spec: ServiceSpec, op: str, **args: Any) -> Any:
        """Run one call on the service for `spec` (created and loaded on first use)."""
        entry = self._entry(spec)
        try:
            with entry.lock:
                result = entry.service.run_batch([ServiceCall(op, args)])[0]
        finally:
            with self._lock:
                entry.busy -= 1
                entry.last_used = time.monotonic()
        self._evict_over_budget()
        return result

    def _evict_over_budget(self) -> None:
        if self.memory_budget is None:
            return
        with self._lock:
            idle = sorted((e for e in self._entries.values() if e.busy == 0 and e.service.loaded),
                          key=lambda e: e.last_used)
            total = sum(e.service.resident_bytes() for e in self._entries.values())
            for e in idle:
                if total <= self.memory_budget:
                    break
                total -= e.service.resident_bytes()
                e.service.unload()

    def unload_all(self) -> None:
        with self._lock:
            for e in self._entries.values():
                if e.busy == 0:
                    e.service.unload()

    def snapshot(self) -> list[dict[str, Any]]:
        """What /lego/services shows."""
        with self._lock:
            return [{
                "service": e.service.spec.label, "kind": e.service.spec.kind,
                "weights_identity": e.service.spec.identity,
                "adapters": [a.identity for a in e.service.spec.adapters],
                "loaded": e.service.loaded, "resident_bytes": e.service.resident_bytes(),
                "busy": e.busy, "batches_run": e.service.batches_run,
                "calls_run": e.service.calls_run,
            } for e in self._entries.values()]
