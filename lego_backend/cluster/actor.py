"""The replica actor: one loaded copy of one model service, living in a Ray worker process on
some node. The driver keeps the queue and the batching policy (services/replica.py); the actor
only runs the batches it is sent. Inputs arrive as object references and are fetched here,
straight from the object store of whichever node holds them; outputs go back as one payload per
call (owned by the driver, so they outlive this actor). Per-step batches (a denoiser forward)
arrive instead over the actor's direct channel (cluster/direct.py), served on its own thread,
and their outputs go back by value on it; the driver sends one batch at a time either way."""
from __future__ import annotations

import os
import socket
import time
from typing import Any

from lego_backend import process_env

process_env.configure()  # before torch: offline hub, passive OpenMP waiting

from lego_backend.cluster.direct import DirectAddress, DirectServer
from lego_backend.cluster.wire import (
    Slot,
    check_control,
    from_payload,
    nbytes,
    to_payload,
    walk,
)
from lego_backend.dataplane.handle import TensorHandle
from lego_backend.services.protocol import ServiceCall, ServiceSpec

STATS_REFRESH_S = 1.0


class ReplicaActor:
    def __init__(self, spec: ServiceSpec, threads: int | None = None):
        import torch

        from lego_backend.dataplane.store import TensorStore
        from lego_backend.services.pool import DEFAULT_FACTORIES

        if threads:
            torch.set_num_threads(threads)
        self.store = TensorStore()
        self.service = DEFAULT_FACTORIES[spec.kind](spec, self.store)
        self._direct: DirectServer | None = None
        self._kept: dict[str, Any] = {}  # driver handle id -> payload array (cluster/kept.py)
        self._resident = 0  # resident bytes as last counted (see stats)
        self._counted_loaded = False
        self._counted_at = float("-inf")

    def open_direct(self) -> DirectAddress:
        """Address and token of this actor's direct channel (cluster/direct.py), opened on
        first use: the driver sends per-step calls there instead of through Ray."""
        if self._direct is None:
            import ray
            self._direct = DirectServer(ray.util.get_node_ip_address(),
                                        lambda message: self.run_step(*message),
                                        on_connect=self._kept.clear)
        return self._direct.address

    def run_step(self, control: list[tuple[str, Any]], inline: list[Any],
                 keep: list[tuple[int, str]], kept: list[str],
                 forget: list[str]) -> tuple[Any, ...]:
        """A batch from the direct channel. Payload 1 is `kept`: tensors the driver sent
        before and asked this actor to keep (by handle id); `keep` names positions of payload
        0 to keep from now on (only if the batch succeeds: the driver counts them kept only
        then); `forget` are ids the driver no longer needs."""
        for key in forget:
            self._kept.pop(key, None)
        out = self.run(control, [], inline, [self._kept[key] for key in kept])
        for position, key in keep:
            self._kept[key] = inline[position]
        return out

    def where(self) -> dict[str, Any]:
        """Node, address and process of this actor (for placement and /lego/services)."""
        import ray
        ctx = ray.get_runtime_context()
        return {"node": ctx.get_node_id(), "actor_id": ctx.get_actor_id(), "pid": os.getpid(),
                "host": socket.gethostname()}

    def stats(self) -> dict[str, Any]:
        """What the driver shows for this replica; sent back with every batch. Resident bytes
        walk every weight tensor (about 1 ms for the demo UNet, as long as a 64 px step's
        Ray overhead), so they are counted again only when the weights were (un)loaded or a
        second has passed (adapters may have come and gone)."""
        loaded, now = self.service.loaded, time.monotonic()
        if loaded != self._counted_loaded or now - self._counted_at > STATS_REFRESH_S:
            self._resident = self.service.resident_bytes()
            self._counted_loaded, self._counted_at = loaded, now
        return {"loaded": loaded, "resident_bytes": self._resident, "pid": os.getpid(),
                "kept": len(self._kept)}

    def unload(self) -> dict[str, Any]:
        self.service.unload()
        self._counted_at = float("-inf")
        return self.stats()

    def run(self, control: list[tuple[str, Any]], refs: list[Any],
            inline: list[Any] | None, kept: list[Any] | None = None) -> tuple[Any, ...]:
        """Run one batch: `inline` is payload 0 when it came with the call (inside the Ray call
        or over the direct channel), else `refs[0]` is. Returns (skeletons, stats, fetches,
        seconds busy) then one payload per call."""
        import ray

        started = time.perf_counter()
        check_control(control)
        payloads: list[Any] = [] if inline is None else [inline]
        if kept is not None:  # direct channel: payload 1 is what this actor kept
            payloads.append(kept)
        fetches = []
        for ref in refs:  # one at a time: the driver reports time per hop
            start = time.perf_counter()
            payload = ray.get(ref)
            fetches.append((len(payloads), sum(nbytes(p) for p in payload),
                            time.perf_counter() - start))
            payloads.append(payload)
        held = []

        def arrive(slot: Slot) -> Any:
            handle = self.store.put(from_payload(payloads[slot.ref][slot.index]))
            held.append(handle)
            return handle

        calls = [ServiceCall(op, walk(args, arrive)) for op, args in control]
        try:
            results = self.service.run_batch(calls)
            skeletons, outs = [], []
            for result in results:
                payload: list[Any] = []

                def leave(value: Any, payload: list[Any] = payload) -> Slot:
                    tensor = value
                    if isinstance(value, TensorHandle):
                        tensor = self.store.get(value)
                        held.append(value)
                    payload.append(to_payload(tensor))
                    return Slot(-1, len(payload) - 1, tuple(tensor.shape),
                                str(tensor.dtype).removeprefix("torch."), str(tensor.device))
                skeletons.append(walk(result, leave))
                outs.append(payload)
        finally:
            for handle in held:  # this batch's tensors end here: the payloads carry them on
                self.store.release(handle)
        fetch_s = sum(f[2] for f in fetches)
        return (skeletons, self.stats(), fetches,
                time.perf_counter() - started - fetch_s), *outs
