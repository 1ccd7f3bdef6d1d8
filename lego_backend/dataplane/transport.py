"""Which transport moves a tensor on one hop (producer -> consumer), and what each hop cost.

Transports, best first where they apply:
- "inproc": same process; the handle maps to the very tensor object (zero copy).
- "nvshmem": both ends on GPUs and NVSHMEM initialised (symmetric GPU memory, GPU to GPU).
- "shm": same host, another process (torch shared memory: the pipe carries a file handle).
- "ray": Ray's object store (shared memory on one node, Ray's object transfer across nodes).

The policy is pure (no torch, no ray) and decided per hop; `HopStats` records what moved so
`/lego/services` and the cluster benchmark can report transfer time per transport."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from lego_backend.errors import LegoError

TRANSPORTS = ("inproc", "nvshmem", "shm", "ray")


@dataclass(frozen=True)
class Location:
    """Where a tensor's bytes are produced or consumed."""

    node: str  # cluster node id (or hostname outside a cluster)
    pid: int
    device: str = "cpu"  # "cpu", "cuda:0", ...
    ray: bool = False  # a Ray worker or driver (the Ray object store is reachable)

    @property
    def gpu(self) -> bool:
        return self.device.startswith("cuda")


@dataclass(frozen=True)
class Capabilities:
    """What this deployment can use, found once at startup."""

    shm: bool = True
    ray: bool = False
    nvshmem: bool = False


def choose_transport(src: Location, dst: Location, caps: Capabilities) -> str:
    """The best transport available for one hop."""
    if src.node == dst.node and src.pid == dst.pid:
        return "inproc"
    if caps.nvshmem and src.gpu and dst.gpu:
        return "nvshmem"
    if src.ray and dst.ray and caps.ray:
        # Between Ray processes the object store is the one both ends can address; on one node
        # it is itself shared memory, so nothing better is left on the table.
        return "ray"
    if src.node == dst.node and caps.shm:
        return "shm"
    raise ValueError(f"no transport from {src} to {dst} with {caps}")


def hop_label(transport: str, src: Location, dst: Location) -> str:
    """Transport plus whether the hop crossed hosts (ray on one node is shared memory)."""
    if transport == "ray":
        return "ray:same-node" if src.node == dst.node else "ray:cross-node"
    return transport


class HopStats:
    """Hops by label: count, bytes, seconds (thread-safe, process-wide)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by: dict[str, list[float]] = {}

    def record(self, label: str, nbytes: int, seconds: float) -> None:
        with self._lock:
            row = self._by.setdefault(label, [0, 0, 0.0])
            row[0] += 1
            row[1] += nbytes
            row[2] += seconds

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {label: {"hops": int(n), "bytes": int(b), "seconds": s,
                            "mean_ms": 1000.0 * s / n if n else 0.0}
                    for label, (n, b, s) in sorted(self._by.items())}

    def reset(self) -> None:
        with self._lock:
            self._by.clear()


HOPS = HopStats()


class InputLostError(LegoError):
    """A tensor's bytes died with the node (or process) that held them: the call that needed
    them cannot run until whoever produced them runs again. The executor catches it, re-runs
    the producing graph nodes and retries (runtime/executor.py); the transport only says which
    bytes are gone: object ids (`refs`) and/or every object held on `nodes`."""

    recoverable = True

    def __init__(self, message: str, refs: frozenset[str] = frozenset(),
                 nodes: frozenset[str] = frozenset()):
        super().__init__(message)
        self.refs = frozenset(refs)
        self.nodes = frozenset(nodes)

    def matches(self, source: Any) -> bool:
        """Is the remote source of a handle (TensorStore.source) among the lost bytes?"""
        if source is None:  # bytes held in this process are never lost this way
            return False
        object_id = getattr(source, "object_id", None)
        node = getattr(source, "node", None)
        if not self.refs and not self.nodes:  # unknown: every remote input is suspect
            return True
        return object_id in self.refs or node in self.nodes
