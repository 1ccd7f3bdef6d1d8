"""The connection to a Ray cluster, shared by every replica actor of this server.

`connect(address)` once (by `lego serve --cluster ...` or a test); replicas then ask `current()`
for the cluster to start their actors on. `ray` is imported only here and in the actor/replica
modules, never by the rest of the backend: `pip install lego-diffusion[ray]` is optional.

Addresses: "ray" starts a local Ray in this process; "auto" or "HOST:PORT" joins a running
cluster's head (this machine must be able to join it, as with `ray start`); "ray://HOST:PORT"
uses Ray Client (needs `ray[client]`)."""
from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from lego_backend.cluster.placement import ActorResources, NodeView, choose_node
from lego_backend.dataplane.nvshmem import NvshmemStatus, detect_nvshmem
from lego_backend.dataplane.transport import HOPS, Capabilities
from lego_backend.errors import ServiceUnavailableError
from lego_backend.services.protocol import ServiceSpec

log = logging.getLogger("lego.cluster")
# Ray rewrites 127.0.0.1 and localhost to the machine's network address; any other loopback
# address it keeps. A local Ray started by `--cluster ray` stays on loopback this way.
LOCAL_RAY_IP = "127.0.0.2"
PREFER_SHARE = 0.001  # of a preferred custom resource, asked for while a live node has it


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ServiceUnavailableError(
            "running on a Ray cluster needs Ray: pip install 'lego-diffusion[ray]'") from None
    return ray


def _loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


class RayCluster:
    def __init__(self, address: str, resources: dict[str, ActorResources] | None = None,
                 nvshmem: bool = False, init_kwargs: dict[str, Any] | None = None):
        ray = import_ray()
        self.address = address
        self.resources = dict(resources or {})
        # Payloads up to this size ride inside the actor call (Ray's small-object path: one
        # message instead of a put plus a fetch, ~2 ms less per call); larger ones go through
        # the object store. 0 sends everything through the object store.
        self.inline_bytes = int(os.environ.get("LEGO_RAY_INLINE_BYTES", "65536"))
        # Per-step calls (denoiser, ControlNet) over a direct socket to the actor instead of a
        # Ray call each (cluster/direct.py); LEGO_RAY_DIRECT=0 sends them through Ray too.
        self.direct = os.environ.get("LEGO_RAY_DIRECT", "1") != "0"
        self._started_ray = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"namespace": "lego", "log_to_driver": False,
                                      "include_dashboard": False, **(init_kwargs or {})}
            host = address.removeprefix("ray://").rpartition(":")[0]
            if address == "ray":  # a local Ray for this server only
                kwargs.setdefault("_node_ip_address", LOCAL_RAY_IP)
            else:
                kwargs["address"] = address
                if address.startswith("ray://"):
                    kwargs.pop("include_dashboard")
                elif _loopback(host):  # join as a node on the same loopback address
                    kwargs.setdefault("_node_ip_address",
                                      LOCAL_RAY_IP if host in ("localhost", "127.0.0.1") else host)
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise ServiceUnavailableError(f"cannot reach Ray at {address}: {exc}") from None
            self._started_ray = True
        self.driver_node = ray.get_runtime_context().get_node_id()
        self.nvshmem: NvshmemStatus | None = detect_nvshmem() if nvshmem else None
        self.capabilities = Capabilities(shm=True, ray=True,
                                         nvshmem=bool(self.nvshmem and self.nvshmem.available))
        self._lock = threading.Lock()
        self._replicas: weakref.WeakSet[Any] = weakref.WeakSet()
        self.actors_started = 0
        log.info("connected to Ray at %s: %d node(s), transports %s", address,
                 len([n for n in ray.nodes() if n.get("Alive")]), self.transports())

    # --- replicas ------------------------------------------------------------------------------
    def resources_for(self, kind: str) -> ActorResources:
        return self.resources.get(kind, ActorResources())

    def register(self, replica: Any) -> None:
        with self._lock:
            self._replicas.add(replica)

    def unregister(self, replica: Any) -> None:
        with self._lock:
            self._replicas.discard(replica)

    def node_views(self) -> list[NodeView]:
        ray = import_ray()
        with self._lock:
            replicas = list(self._replicas)
        views = []
        for node in ray.nodes():
            nid = node["NodeID"]
            mine = [r for r in replicas if r.node == nid and r.out_of_service is None]
            views.append(NodeView(
                nid, bool(node.get("Alive")), dict(node.get("Resources") or {}),
                frozenset(r.service.spec.key for r in mine),
                frozenset(str(r.service.spec.path) for r in mine if r.loaded),
                sum(r.resident_bytes() for r in mine),
                sum(self.resources_for(r.service.spec.kind).memory for r in mine),
                sum(r.queue_depth for r in mine)))
        return views

    def node_address(self, node_id: str) -> str | None:
        return next((n.get("NodeManagerAddress") for n in import_ray().nodes()
                     if n["NodeID"] == node_id), None)

    def start_actor(self, spec: ServiceSpec, threads: int | None) -> Any:
        """A new replica actor, placed by our scheduler; Ray enforces the declared resources
        (the choice is a soft preference, so Ray may still place it elsewhere if that node
        filled up meanwhile)."""
        ray = import_ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from lego_backend.cluster.actor import ReplicaActor

        res = self.resources_for(spec.kind)
        node = choose_node(self.node_views(), res.demand(), spec.key, str(spec.path),
                           res.prefer)
        if node is None:
            raise ServiceUnavailableError(
                f"{spec.label}: no live node of the cluster has the resources its replicas "
                f"declare ({res.demand() or 'none'})")
        options: dict[str, Any] = {**res.options(), "max_restarts": 0,
                                   "scheduling_strategy":
                                   NodeAffinitySchedulingStrategy(node, soft=True)}
        # A preferred resource the chosen node has is asked for (a sliver of it), since Ray's
        # soft affinity alone may still put the actor elsewhere; when no live node has it, it
        # is not asked for at all, so the replica moves to a live node instead of waiting.
        chosen = next(v for v in self.node_views() if v.node_id == node)
        held = {r: PREFER_SHARE for r in res.prefer if chosen.capacity.get(r, 0.0) > 0}
        if held:
            options["resources"] = {**dict(options.get("resources") or {}), **held}
        actor = ray.remote(ReplicaActor).options(**options).remote(spec, threads)
        log.info("%s: new replica actor placed on node %s (declares %s%s)", spec.label,
                 node[:12], res.demand() or "nothing",
                 f", prefers {'+'.join(res.prefer)}" if res.prefer else "")
        with self._lock:
            self.actors_started += 1
        return actor

    # --- reports -------------------------------------------------------------------------------
    def transports(self) -> list[str]:
        caps = self.capabilities
        return (["inproc"] + (["nvshmem"] if caps.nvshmem else []) + ["shm", "ray"]
                + (["direct"] if self.direct else []))  # per-step calls (cluster/direct.py)

    def report(self) -> dict[str, Any]:
        """The cluster section of /lego/services: nodes, resources, transports, hops."""
        ray = import_ray()
        try:
            available = ray.available_resources()
        except Exception:  # noqa: BLE001 - a report must not fail because one call did
            available = {}
        nodes = [{"node": n["NodeID"], "alive": bool(n.get("Alive")),
                  "address": n.get("NodeManagerAddress"),
                  "resources": n.get("Resources") or {},
                  "driver": n["NodeID"] == self.driver_node}
                 for n in ray.nodes()]
        return {"address": self.address, "nodes": nodes, "available_resources": available,
                "transports": self.transports(),
                "nvshmem": None if self.nvshmem is None else {
                    "available": self.nvshmem.available, "reason": self.nvshmem.reason,
                    "detail": self.nvshmem.detail},
                "hops": HOPS.snapshot(), "actors_started": self.actors_started,
                "driver": {"node": self.driver_node, "pid": os.getpid()}}

    def close(self) -> None:
        if self._started_ray:
            import_ray().shutdown()


_current: RayCluster | None = None
_current_lock = threading.Lock()


def connect(address: str, resources: dict[str, ActorResources] | None = None,
            nvshmem: bool = False, init_kwargs: dict[str, Any] | None = None) -> RayCluster:
    """Connect this process to a Ray cluster (once; later calls return the same cluster)."""
    global _current
    with _current_lock:
        if _current is None:
            _current = RayCluster(address, resources, nvshmem, init_kwargs)
        elif resources is not None:
            _current.resources = dict(resources)
        return _current


def current() -> RayCluster:
    if _current is None:
        raise ServiceUnavailableError(
            "replica runtime 'ray' needs a cluster: start with `lego serve --cluster ...`")
    return _current


def disconnect() -> None:
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = None


def cluster_report() -> dict[str, Any] | None:
    """For /lego/services: None unless this server runs on a cluster."""
    return _current.report() if _current is not None else None
