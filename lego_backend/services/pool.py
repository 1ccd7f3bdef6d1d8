"""Services by weights identity: one service per ServiceSpec.key, shared by every prompt of every
workflow, with one or more replicas. Calls queue at a replica, which batches compatible ones.
The router picks a replica per request (pinned for a whole sampling loop); scaling rules set how
many replicas each service kind runs, in this process (threads) or in worker processes. A memory
budget unloads least-recently-used idle services."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lego_backend.dataplane.store import TensorStore
from lego_backend.errors import ServiceUnavailableError
from lego_backend.services.controlnet import ControlNetService
from lego_backend.services.denoiser import DenoiserService
from lego_backend.services.protocol import ModelService, ServiceCall, ServiceSpec
from lego_backend.services.replica import Replica
from lego_backend.services.router import ReplicaLoad, ScalingRule, choose_replica, desired_replicas
from lego_backend.services.text_encoder_sdxl import text_encoder_service
from lego_backend.services.upscaler import UpscalerService
from lego_backend.services.vae import VaeService

log = logging.getLogger("lego.scaling")
Factory = Callable[[ServiceSpec, TensorStore], ModelService]

DEFAULT_FACTORIES: dict[str, Factory] = {
    "text_encoder": text_encoder_service,  # SD1 CLIP, or both SDXL encoders, by family
    "denoiser": DenoiserService,
    "vae": VaeService,
    "controlnet": ControlNetService,
    "upscaler": UpscalerService,
}
SCALE_EVERY_S = 1.0  # autoscaling looks at a service at most this often
COLD_AFTER_S = 60.0  # a service with min 0 replicas unused this long scales to zero


@dataclass
class _Entry:
    spec: ServiceSpec
    replicas: list[Replica]
    last_used: float
    last_scaled: float = 0.0
    adapters_sent: dict[int, set[str]] = field(default_factory=dict)  # id(replica) -> LoRAs


class ServicePool:
    def __init__(self, store: TensorStore, memory_budget: int | None = None,
                 factories: dict[str, Factory] | None = None, max_batch: int = 16,
                 linger_s: float = 0.004, scaling: dict[str, ScalingRule] | None = None,
                 runtime: str = "thread", worker_threads: int | None = None,
                 max_retries: int = 2):
        self.store = store
        self.memory_budget = memory_budget
        self.max_batch = max_batch
        self.linger_s = linger_s
        self.scaling = dict(scaling or {})
        self.runtime = runtime  # "thread" | "process"
        self.worker_threads = worker_threads
        self.max_retries = max_retries  # a worker process dying mid-batch: restarts per batch
        self.scaling_log: list[dict[str, Any]] = []  # decisions, newest last (bounded)
        self._factories = dict(DEFAULT_FACTORIES if factories is None else factories)
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], _Entry] = {}
        self._pins = threading.local()  # a request's replica for its sampling loop
        self.cold_after_s = COLD_AFTER_S
        # Requests trigger scaling up; only a clock can notice that nobody comes any more.
        self._stop_ticks = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="lego-autoscale", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop_ticks.wait(SCALE_EVERY_S):
            with self._lock:
                entries = list(self._entries.values())
            for entry in entries:
                if entry.replicas:
                    try:
                        self._autoscale(entry, requested=False)
                    except Exception:  # the ticker must outlive one bad entry
                        log.exception("autoscaling %s failed", entry.spec.label)

    def _rule(self, kind: str) -> ScalingRule:
        return self.scaling.get(kind, ScalingRule())

    def _new_replica(self, spec: ServiceSpec) -> Replica:
        factory = self._factories.get(spec.kind)
        if factory is None:
            raise KeyError(f"no service kind {spec.kind!r}")
        service = factory(spec, self.store)
        if self.runtime == "process":
            from lego_backend.services.process_replica import ProcessReplica
            return ProcessReplica(service, self.max_batch, self.linger_s, self.worker_threads,
                                  max_restarts=self.max_retries)
        if self.runtime == "ray":  # replicas as Ray actors on any node (lego_backend/cluster)
            from lego_backend.cluster.ray_replica import RayReplica
            return RayReplica(service, self.max_batch, self.linger_s, self.worker_threads,
                              max_restarts=self.max_retries)
        return Replica(service, self.max_batch, self.linger_s)

    def _entry(self, spec: ServiceSpec) -> _Entry:
        with self._lock:
            entry = self._entries.get(spec.key)
            if entry is None:
                entry = _Entry(spec, [], time.monotonic())
                self._entries[spec.key] = entry
            entry.last_used = time.monotonic()
        self._autoscale(entry)
        return entry

    def replica(self, spec: ServiceSpec, adapters: tuple[Any, ...] = ()) -> Replica:
        """The replica a request should use now (its pinned one inside a stream)."""
        pinned = getattr(self._pins, "by_key", {}).get(spec.key)
        if pinned is not None:
            return pinned
        entry = self._entry(spec)
        with self._lock:
            if not entry.replicas:  # scaled to zero: a request brings one back
                entry.replicas.append(self._new_replica(spec))
                self._log(spec, 0, 1, "cold start")
            live = [r for r in entry.replicas if not r.out_of_service]
            if not live:  # every replica kept dying: say why instead of retrying forever
                raise ServiceUnavailableError(entry.replicas[0].out_of_service)
            wanted = {a.identity for a in adapters}
            loads = [ReplicaLoad(r.queue_depth, r.streams, r.loaded,
                                 len(wanted & entry.adapters_sent.get(id(r), set())))
                     for r in live]
            chosen = live[choose_replica(loads)]
            entry.adapters_sent.setdefault(id(chosen), set()).update(wanted)
            return chosen

    def call(self, spec: ServiceSpec, op: str, deadline: float = float("inf"),
             **args: Any) -> Any:
        """Queue one call on a replica of the service for `spec` and wait for its result."""
        replica = self.replica(spec, args.get("adapters", ()))
        result = replica.submit(ServiceCall(op, args), deadline).result()
        self._evict_over_budget(keep=spec.key)
        return result

    @contextmanager
    def stream(self, spec: ServiceSpec, adapters: tuple[Any, ...] = ()) -> Iterator[None]:
        """A request that calls `spec` at every step: pin it to one replica (its batches form
        there) for the whole loop."""
        replica = self.replica(spec, adapters)
        pins = getattr(self._pins, "by_key", None)
        if pins is None:
            pins = self._pins.by_key = {}
        pins[spec.key] = replica
        replica.open_stream()
        try:
            yield
        finally:
            replica.close_stream()
            pins.pop(spec.key, None)

    def prefetch_adapters(self, spec: ServiceSpec, refs: tuple[Any, ...]) -> list[Any]:
        """Start loading a request's LoRAs on the replica that will run it; futures (in-process
        replicas; a worker process loads them with its first batch)."""
        cache = getattr(self.replica(spec, refs).service, "adapters", None)
        if cache is None or self.runtime in ("process", "ray"):
            return []
        return [cache.request(ref) for ref in refs]

    # --- scaling and memory ---------------------------------------------------------------------
    def _autoscale(self, entry: _Entry, requested: bool = True) -> None:
        """`requested`: a request for this service is being routed now (so keep >= 1)."""
        now = time.monotonic()
        if now - entry.last_scaled < SCALE_EVERY_S and entry.replicas:
            return
        entry.last_scaled = now
        rule = self._rule(entry.spec.kind)
        with self._lock:
            current = len(entry.replicas)
            load = sum(r.queue_depth + r.streams for r in entry.replicas)
            want = desired_replicas(rule, current, load)
            recent = now - entry.last_used < self.cold_after_s
            if want == 0 and (requested or (recent and current > 0)):
                want = 1  # someone is asking for it now, or did recently: keep it warm
            while len(entry.replicas) < want:
                entry.replicas.append(self._new_replica(entry.spec))
            retired = []
            while len(entry.replicas) > want:
                idle = [r for r in entry.replicas if r.idle and r.streams == 0]
                if not idle:
                    break
                entry.replicas.remove(idle[-1])
                retired.append(idle[-1])
        if len(entry.replicas) != current:
            why = f"load {load}" if requested or load else f"idle {now - entry.last_used:.0f}s"
            self._log(entry.spec, current, len(entry.replicas), why)
        for replica in retired:
            replica.close()

    def _log(self, spec: ServiceSpec, before: int, after: int, why: str) -> None:
        decision = {"time": time.time(), "service": spec.label, "from": before, "to": after,
                    "why": why}
        log.info("scaling %s: %d -> %d replicas (%s)", spec.label, before, after, why)
        self.scaling_log.append(decision)
        del self.scaling_log[:-200]

    def resident_bytes(self) -> int:
        return sum(r.resident_bytes() for r in self._all_replicas())

    def _all_replicas(self) -> list[Replica]:
        with self._lock:
            return [r for e in self._entries.values() for r in e.replicas]

    def _evict_over_budget(self, keep: tuple[Any, ...]) -> None:
        if self.memory_budget is None:
            return
        with self._lock:
            entries = sorted((e for k, e in self._entries.items() if k != keep),
                             key=lambda e: e.last_used)
        total = self.resident_bytes()
        for entry in entries:
            for replica in entry.replicas:
                if total <= self.memory_budget:
                    return
                total -= replica.unload_if_idle()

    def unload_all(self) -> None:
        for replica in self._all_replicas():
            replica.unload_if_idle()

    def close(self) -> None:
        self._stop_ticks.set()
        replicas = self._all_replicas()
        with self._lock:
            self._entries.clear()
        for replica in replicas:
            replica.close()

    def snapshot(self) -> list[dict[str, Any]]:
        """What /lego/services shows: one row per service, its replicas inside."""
        with self._lock:
            entries = [(e.spec, list(e.replicas)) for e in self._entries.values()]
        out = []
        for spec, replicas in entries:
            sizes = [n for r in replicas for n in r.batch_sizes]
            adapters = sorted({a for r in replicas if hasattr(r.service, "adapters")
                               for a in r.service.adapters.identities()})
            out.append({
                "service": spec.label, "kind": spec.kind, "weights_identity": spec.identity,
                "replicas": len(replicas), "loaded": any(r.loaded for r in replicas),
                "resident_bytes": sum(r.resident_bytes() for r in replicas),
                "queue_depth": sum(r.queue_depth for r in replicas),
                "batches_run": sum(r.batches_run for r in replicas),
                "calls_run": sum(r.calls_run for r in replicas),
                "busy_s": round(sum(getattr(r, "busy_s", 0.0) for r in replicas), 6),
                "mean_batch": (sum(sizes) / len(sizes)) if sizes else 0.0,
                "adapters_loaded": adapters,
                "replica_detail": [{**r.describe(), "loaded": r.loaded,
                                    "resident_bytes": r.resident_bytes(),
                                    "queue_depth": r.queue_depth} for r in replicas],
            })
        return out
