"""A replica whose model runs in a Ray actor, on whichever node the scheduler placed it. The
driver-side object keeps the queue and the batching policy (services/replica.py, unchanged);
`_execute` ships each batch to the actor by handle: the control message holds op names,
scalars and slots, the tensors travel as object references (cluster/wire.py).

Faults: an actor that dies while running a batch (process killed, node lost) is replaced by a
new actor, placed again (so possibly on another node), and the batch is re-run there; the
request sees nothing but a slower step. After `max_restarts` deaths in a row the replica is
taken out of service: its callers get a ReplicaDeadError, the pool routes around it and
/lego/services shows why.

A whole node dying also loses the results held in its object store. A call (or a read in the
driver) that needs one raises InputLostError naming the lost objects and the node; the executor
then re-runs the graph nodes that produced them and retries (runtime/executor.py).

Per-step calls (the service's `step_ops`: a denoiser forward, a ControlNet's residuals) whose
inputs all live in this process skip Ray's task path: they go over a direct socket to the actor
(cluster/direct.py) and their results come back by value, since the sampler reads them at once.
Everything else, and every step call when that socket cannot be opened, goes through Ray."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from lego_backend.cluster.direct import ChannelClosed, DirectChannel
from lego_backend.cluster.kept import KeptTensors
from lego_backend.cluster.runtime import RayCluster, current, import_ray
from lego_backend.cluster.wire import Slot, from_payload, nbytes, to_payload, walk
from lego_backend.dataplane.handle import TensorHandle
from lego_backend.dataplane.store import iter_handles
from lego_backend.dataplane.transport import (
    HOPS,
    InputLostError,
    Location,
    choose_transport,
    hop_label,
)
from lego_backend.errors import ReplicaDeadError, ServiceUnavailableError
from lego_backend.services.protocol import ModelService, ServiceCall
from lego_backend.services.replica import Replica

log = logging.getLogger("lego.cluster")
START_TIMEOUT_S = 60.0  # an actor not up by then cannot be placed (resources never free)


@dataclass(frozen=True)
class RaySource:
    """Where a remote handle's bytes are: position `index` of the payload behind `ref`."""

    ref: Any  # ray.ObjectRef, owned by the driver
    index: int
    node: str  # node that produced it
    pid: int

    @property
    def object_id(self) -> str:
        return self.ref.hex()


class RayReplica(Replica):
    def __init__(self, service: ModelService, max_batch: int = 16, linger_s: float = 0.004,
                 threads: int | None = None, max_restarts: int = 3,
                 cluster: RayCluster | None = None):
        self.cluster = cluster or current()
        self._ray = import_ray()
        self._threads = threads
        self.max_restarts = max_restarts
        self.restarts = 0
        self.out_of_service: str | None = None
        self._actor_lock = threading.Lock()
        self._actor: Any = None
        self._ready: Any = None
        self._where: dict[str, Any] = {}
        self._input_nodes: dict[str, str] = {}
        self._stats: dict[str, Any] = {"loaded": False, "resident_bytes": 0}
        self._spec = service.spec
        self._channel: DirectChannel | None = None  # to the current actor, opened on first step
        self._probe: Any = None  # a liveness check in flight while a direct call runs long
        self._kept = KeptTensors()  # what the actor holds of ours (sent once per sampling loop)
        self.direct_off: str | None = None  # why step calls go through Ray, if they do
        self._start_actor()
        super().__init__(service, max_batch, linger_s)
        self.runtime = "ray"
        self.cluster.register(self)

    # --- the actor -----------------------------------------------------------------------------
    def _start_actor(self) -> None:
        self._drop_channel()
        self._actor = self.cluster.start_actor(self._spec, self._threads)
        self._ready = self._actor.where.remote()
        self._where = {}
        self._stats = {"loaded": False, "resident_bytes": 0}

    def _ensure_started(self) -> None:
        if self._where:
            return
        try:
            where = self._ray.get(self._ready, timeout=START_TIMEOUT_S)
            where["ip"] = self.cluster.node_address(where["node"])
            self._where = where
        except self._ray.exceptions.GetTimeoutError:
            self._ray.kill(self._actor)
            self._start_actor()  # the next batch tries again (resources may free up)
            raise ServiceUnavailableError(
                f"{self._spec.label}: no replica actor could start within {START_TIMEOUT_S:.0f}s "
                f"(resources {self.cluster.resources_for(self._spec.kind).demand() or 'none'})"
            ) from None

    @property
    def node(self) -> str | None:
        return self._where.get("node")

    @property
    def pid(self) -> int | None:
        return self._where.get("pid")

    def _location(self) -> Location:
        return Location(self._where["node"], self._where["pid"], "cpu", ray=True)

    def _driver(self) -> Location:
        return Location(self.cluster.driver_node, os.getpid(), "cpu", ray=True)

    # --- running batches -------------------------------------------------------------------------
    def _execute(self, calls: list[ServiceCall]) -> list[Any]:
        if self.out_of_service:
            raise ReplicaDeadError(self.out_of_service)
        dead = self._ray.exceptions.RayActorError
        failures = 0
        while True:
            with self._actor_lock:
                try:
                    self._ensure_started()
                    return self._run_on_actor(calls)
                except self._ray.exceptions.RayTaskError as exc:  # the service raised
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, self._ray.exceptions.ObjectLostError):
                        raise self._lost(cause) from None  # the actor could not fetch an input
                    raise (cause if isinstance(cause, Exception) else exc) from None
                except self._ray.exceptions.ObjectLostError as exc:
                    # An input's bytes died with their node: re-running here cannot help; the
                    # executor re-runs whoever produced them.
                    raise self._lost(exc) from None
                except (dead, ChannelClosed) as death:
                    failures += 1
                    self.restarts += 1
                    why = _first_line(death)
                    with contextlib.suppress(Exception):  # unreachable, maybe not yet dead
                        self._ray.kill(self._actor)
                    if failures > self.max_restarts:
                        self.out_of_service = (
                            f"{self._spec.label}: replica actor died {failures} times in a row "
                            f"(last: {why}); taken out of service")
                        log.error("%s", self.out_of_service)
                        raise ReplicaDeadError(self.out_of_service) from None
                    log.warning("%s: replica actor (pid %s on node %s) died: %s; re-running "
                                "the batch on a new actor", self._spec.label, self.pid,
                                (self.node or "?")[:12], why)
                    self._start_actor()

    def _lost(self, exc: BaseException) -> InputLostError:
        """An ObjectLostError as the executor's InputLostError: the object and, where we know
        it, the node that held it (then every result from that node counts as lost)."""
        object_id = getattr(exc, "object_ref_hex", None) or ""
        nodes = frozenset(n for n in (self._input_nodes.get(object_id),) if n)
        return InputLostError(f"{self._spec.label}: an input was lost with its node "
                              f"({_first_line(exc)})",
                              frozenset({object_id}) if object_id else frozenset(), nodes)

    def _run_on_actor(self, calls: list[ServiceCall], direct_ok: bool = True) -> list[Any]:
        """One batch on the actor. Payload 0 holds the tensors that live in this process (one
        payload for the whole batch: one transfer, not one per tensor); payloads 1.. are
        results of other actors still in the object store, forwarded by reference. A step
        batch with no such references goes over the direct channel instead."""
        ray, store, caps = self._ray, self.service.store, self.cluster.capabilities
        here, there = self._driver(), self._location()
        self._input_nodes = {}  # object id -> node, to name the node if one is lost
        local: list[Any] = []
        refs: list[Any] = []
        sources: list[Location] = []
        positions: dict[Any, int] = {}
        direct = direct_ok and self._direct_wanted(calls) and not any(
            isinstance(store.source(h), RaySource) for c in calls for h in iter_handles(c.args))
        kept: list[str] = []  # direct: payload 1, tensors the actor kept from earlier steps
        keep: list[tuple[int, str, int, torch.Tensor]] = []  # (position, id, bytes, tensor)

        def ship(value: Any) -> Slot:
            source = store.source(value) if isinstance(value, TensorHandle) else None
            if isinstance(source, RaySource):  # already in the object store: forward the ref
                self._input_nodes[source.object_id] = source.node
                if source.ref not in positions:
                    refs.append(source.ref)
                    sources.append(Location(source.node, source.pid, ray=True))
                    positions[source.ref] = len(refs)  # 0 is the local payload
                return Slot(positions[source.ref], source.index, tuple(value.shape),
                            value.dtype, value.device)
            tensor = store.get(value) if isinstance(value, TensorHandle) else value
            dtype = str(tensor.dtype).removeprefix("torch.")
            if direct and isinstance(value, TensorHandle):
                held = tensor.numel() * tensor.element_size()
                plan = self._kept.plan(value.id, held)
                if plan == "kept":  # sent at an earlier step: the id is enough
                    HOPS.record("direct:kept", held, 0.0)
                    kept.append(value.id)
                    return Slot(1, len(kept) - 1, tuple(tensor.shape), dtype,
                                str(tensor.device))
                if plan == "keep":
                    keep.append((len(local), value.id, held, tensor))
            local.append(to_payload(tensor))
            return Slot(0, len(local) - 1, tuple(tensor.shape), dtype, str(tensor.device))

        control = [(c.op, walk(c.args, ship)) for c in calls]
        size = sum(nbytes(item) for item in local)
        if direct:
            results = self._run_direct(control, local, size, kept, keep)
            if results is None:  # the channel broke, the actor lives: this batch via Ray
                return self._run_on_actor(calls, direct_ok=False)
            return results
        label = hop_label(choose_transport(here, there, caps), here, there)
        inline: list[Any] | None = local
        if size > self.cluster.inline_bytes:  # through the object store
            start = time.perf_counter()
            refs.insert(0, ray.put(local))
            sources.insert(0, here)
            HOPS.record(label + ":put", size, time.perf_counter() - start)
            inline = None
        elif local:  # small: Ray carries it inside the task (its own small-object path)
            HOPS.record("ray:inline", size, 0.0)
        sent = time.perf_counter()
        outs = self._actor.run.options(num_returns=len(calls) + 1).remote(control, refs, inline)
        skeletons, stats, fetches, busy_s = ray.get(outs[0])
        HOPS.record("ray:call", 0, max(0.0, time.perf_counter() - sent - busy_s))
        self._stats = stats
        offset = 0 if inline is None else 1
        for i, nbytes_in, seconds in fetches:
            src = sources[i - offset]
            HOPS.record(hop_label(choose_transport(src, there, caps), src, there), nbytes_in,
                        seconds)
        results = []
        for skeleton, ref in zip(skeletons, outs[1:]):
            def arrive(slot: Slot, ref: Any = ref) -> TensorHandle:
                src = RaySource(ref, slot.index, there.node, there.pid)
                return store.put_remote(src, functools.partial(_fetch, src, here,
                                                               self.cluster),
                                        slot.shape, slot.dtype, slot.device, owner="ray")
            results.append(walk(skeleton, arrive))
        return results

    # --- the direct channel for per-step calls -----------------------------------------------------
    def _direct_wanted(self, calls: list[ServiceCall]) -> bool:
        step_ops = getattr(self.service, "step_ops", frozenset())
        return (self.cluster.direct and self.direct_off is None
                and all(c.op in step_ops for c in calls))

    def _run_direct(self, control: list[Any], local: list[Any], size: int, kept: list[str],
                    keep: list[tuple[int, str, int, torch.Tensor]]) -> list[Any] | None:
        """The batch over the direct channel; None if it cannot be used (then Ray carries it).
        `kept`: ids of tensors the actor holds (payload 1); `keep`: tensors of payload 0 it
        should hold from now on (cluster/kept.py).
        A dead actor raises (RayActorError from the liveness check, or ChannelClosed) so that
        `_execute` starts a new one and runs the batch again."""
        channel = self._channel or self._open_channel()
        if channel is None:
            return None
        sent = time.perf_counter()
        try:
            message = (control, local, [(pos, hid) for pos, hid, _, _ in keep], kept,
                       self._kept.take_forget())
            reply, out_bytes = channel.call(message, self._check_alive)
        except ChannelClosed:
            self._drop_channel()
            if self._actor_alive():  # only the socket broke: this batch goes through Ray
                log.warning("%s: direct channel broke, actor alive; reconnecting",
                            self._spec.label)
                return None
            raise
        finally:
            self._probe = None
        rtt = time.perf_counter() - sent
        for _, hid, nbytes_kept, tensor in keep:
            self._kept.kept(hid, nbytes_kept, tensor)
        (skeletons, stats, _, busy_s), *outs = reply
        self._stats = stats
        there = self._where["node"]
        label = "direct:same-node" if there == self.cluster.driver_node else "direct:cross-node"
        back = sum(nbytes(item) for payload in outs for item in payload)
        HOPS.record(label, out_bytes + back, max(0.0, rtt - busy_s))
        store = self.service.store
        return [walk(skeleton, lambda slot, payload=payload:
                     store.put(from_payload(payload[slot.index])))
                for skeleton, payload in zip(skeletons, outs)]

    def _open_channel(self) -> DirectChannel | None:
        try:
            address = self._ray.get(self._actor.open_direct.remote(), timeout=START_TIMEOUT_S)
            self._channel = DirectChannel(address)
        except OSError as exc:  # e.g. a firewall between nodes: Ray's path still works
            self.direct_off = f"cannot connect to the actor's direct channel: {exc}"
            log.warning("%s: %s; step calls go through Ray", self._spec.label, self.direct_off)
            return None
        return self._channel

    def _drop_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._probe = None
        self._kept.reset()  # a new connection starts with nothing kept on either end

    def _check_alive(self) -> None:
        """Called every couple of seconds while a direct call has no reply: a dead node never
        closes the socket, so ask Ray (its answer comes once its health checks have run)."""
        if self._probe is None:
            self._probe = self._actor.where.remote()
            return
        ready, _ = self._ray.wait([self._probe], timeout=0)
        if ready:
            self._probe = None
            self._ray.get(ready[0])  # raises RayActorError if the actor is gone

    def _actor_alive(self) -> bool:
        try:
            self._ray.get(self._actor.where.remote(), timeout=START_TIMEOUT_S)
        except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError):
            return False
        return True

    # --- what the pool and /lego/services see ----------------------------------------------------
    @property
    def loaded(self) -> bool:
        return bool(self._stats.get("loaded"))

    def resident_bytes(self) -> int:
        return int(self._stats.get("resident_bytes") or 0)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtime": "ray", "pid": self.pid, "node": self.node,
                               "node_ip": self._where.get("ip"), "host": self._where.get("host"),
                               "actor_id": self._where.get("actor_id"),
                               "restarts": self.restarts,
                               "resources": self.cluster.resources_for(self._spec.kind).demand()}
        if getattr(self.service, "step_ops", None):  # how its per-step calls travel
            out["step_channel"] = ("direct" if self.cluster.direct and self.direct_off is None
                                   else f"ray ({self.direct_off or 'LEGO_RAY_DIRECT=0'})")
            out["kept_tensors"] = self._stats.get("kept", 0)  # held by the actor for us
        if self.out_of_service:
            out["error"] = self.out_of_service
        return out

    def unload_if_idle(self) -> int:
        if not self.idle or not self.loaded or not self._where:
            return 0
        freed = self.resident_bytes()
        with self._actor_lock:
            try:
                self._stats = self._ray.get(self._actor.unload.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - a dead or stuck actor frees nothing now
                return 0
        return freed

    def close(self) -> None:
        super().close()
        self.cluster.unregister(self)
        with self._actor_lock:
            self._drop_channel()
        with contextlib.suppress(Exception):  # already gone with its node or the cluster
            self._ray.kill(self._actor)


def _fetch(source: RaySource, here: Location, cluster: RayCluster) -> torch.Tensor:
    """Bring a result's bytes into the driver (first local use of the handle)."""
    ray = import_ray()
    start = time.perf_counter()
    try:
        item = ray.get(source.ref)[source.index]
    except ray.exceptions.ObjectLostError as exc:  # its node died before we read it
        raise InputLostError(f"a result was lost with node {source.node[:12]} "
                             f"({_first_line(exc)})", frozenset({source.object_id}),
                             frozenset({source.node})) from None
    tensor = from_payload(item)
    src = Location(source.node, source.pid, ray=True)
    HOPS.record(hop_label(choose_transport(src, here, cluster.capabilities), src, here),
                nbytes(item), time.perf_counter() - start)
    return tensor


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
