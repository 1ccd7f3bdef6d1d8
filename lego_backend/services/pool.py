"""Services by weights identity: one service (and its replica) per ServiceSpec.key, shared by
every prompt of every workflow. Calls queue at the replica, which batches compatible ones.
A memory budget unloads least-recently-used idle services."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from lego_backend.dataplane.store import TensorStore
from lego_backend.services.controlnet import ControlNetService
from lego_backend.services.denoiser import DenoiserService
from lego_backend.services.protocol import ModelService, ServiceCall, ServiceSpec
from lego_backend.services.replica import Replica
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
    replica: Replica
    last_used: float


class ServicePool:
    def __init__(self, store: TensorStore, memory_budget: int | None = None,
                 factories: dict[str, Factory] | None = None, max_batch: int = 16,
                 linger_s: float = 0.004):
        self.store = store
        self.memory_budget = memory_budget
        self.max_batch = max_batch
        self.linger_s = linger_s
        self._factories = dict(DEFAULT_FACTORIES if factories is None else factories)
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Entry] = {}

    def replica(self, spec: ServiceSpec) -> Replica:
        with self._lock:
            entry = self._entries.get(spec.key)
            if entry is None:
                factory = self._factories.get(spec.kind)
                if factory is None:
                    raise KeyError(f"no service kind {spec.kind!r}")
                entry = _Entry(Replica(factory(spec, self.store), self.max_batch, self.linger_s),
                               time.monotonic())
                self._entries[spec.key] = entry
            entry.last_used = time.monotonic()
            return entry.replica

    def call(self, spec: ServiceSpec, op: str, deadline: float = float("inf"),
             **args: Any) -> Any:
        """Queue one call on the service for `spec` (created and loaded on first use) and wait
        for its result."""
        result = self.replica(spec).submit(ServiceCall(op, args), deadline).result()
        self._evict_over_budget(keep=spec.key)
        return result

    @contextmanager
    def stream(self, spec: ServiceSpec) -> Iterator[None]:
        """Mark a request that will call `spec` at every step (so batches wait for it)."""
        replica = self.replica(spec)
        replica.open_stream()
        try:
            yield
        finally:
            replica.close_stream()

    def prefetch_adapters(self, spec: ServiceSpec, refs: tuple[Any, ...]) -> list[Any]:
        """Start loading a request's LoRAs on the replica that will run it; futures."""
        cache = getattr(self.replica(spec).service, "adapters", None)
        return [cache.request(ref) for ref in refs] if cache is not None else []

    def resident_bytes(self) -> int:
        with self._lock:
            entries = list(self._entries.values())
        return sum(e.replica.service.resident_bytes() for e in entries)

    def _evict_over_budget(self, keep: tuple[Any, ...]) -> None:
        if self.memory_budget is None:
            return
        with self._lock:
            entries = sorted(((k, e) for k, e in self._entries.items() if k != keep),
                             key=lambda ke: ke[1].last_used)
        total = self.resident_bytes()
        for _, entry in entries:
            if total <= self.memory_budget:
                break
            total -= entry.replica.unload_if_idle()

    def unload_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            entry.replica.unload_if_idle()

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.replica.close()

    def snapshot(self) -> list[dict[str, Any]]:
        """What /lego/services shows."""
        with self._lock:
            entries = list(self._entries.values())
        out = []
        for e in entries:
            svc, rep = e.replica.service, e.replica
            sizes = list(rep.batch_sizes)
            out.append({
                "service": svc.spec.label, "kind": svc.spec.kind,
                "weights_identity": svc.spec.identity,
                "replicas": 1, "loaded": svc.loaded, "resident_bytes": svc.resident_bytes(),
                "queue_depth": rep.queue_depth, "batches_run": svc.batches_run,
                "calls_run": svc.calls_run,
                "adapters_loaded": (svc.adapters.identities()
                                    if hasattr(svc, "adapters") else []),
                "mean_batch": (sum(sizes) / len(sizes)) if sizes else 0.0,
            })
        return out
