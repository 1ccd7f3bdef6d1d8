"""Where a new replica actor goes, and what it declares. Pure policy: no ray, no threads.

A node qualifies when it is alive and its capacity covers what the service kind declares (CPUs,
GPUs, memory, custom resources). Among those: a node with the custom resources the kind only
prefers (`prefer=NAME`: soft, so a replica moves elsewhere when that node is gone), then not a node already running a replica of this very service
(replicas spread, so one node's death does not take them all), then a node that already holds
weights from the same file (another component of the checkpoint: warm page cache, and the
hops between them stay on one host), then the most free memory, then the shortest queue."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lego_backend.byte_sizes import parse_bytes


@dataclass(frozen=True)
class ActorResources:
    """What one replica actor of a service kind declares to Ray."""

    num_cpus: float = 0.0  # 0: CPU-only demo replicas do not reserve a core each
    num_gpus: float = 0.0
    memory: int = 0  # bytes reserved for the actor (Ray's `memory` resource)
    custom: tuple[tuple[str, float], ...] = ()  # e.g. (("node_b", 0.01),) to pin a node
    prefer: tuple[str, ...] = ()  # custom resources wanted if a live node has them (soft)

    def demand(self) -> dict[str, float]:
        """As Ray resource names (what a node's totals are compared with)."""
        out = {"CPU": self.num_cpus, "GPU": self.num_gpus, "memory": float(self.memory)}
        out.update(dict(self.custom))
        return {k: v for k, v in out.items() if v > 0}

    def options(self) -> dict[str, object]:
        """As keyword arguments of Ray's `.options(...)`."""
        opts: dict[str, object] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.memory:
            opts["memory"] = self.memory
        if self.custom:
            opts["resources"] = dict(self.custom)
        return opts


def parse_resources(text: str) -> tuple[str, ActorResources]:
    """'denoiser=num_gpus=1,memory=4GiB,node_b=0.01' -> ("denoiser", ActorResources(...)).
    num_cpus, num_gpus and memory are Ray's standard resources; other names are custom
    resources a node was started with (`ray start --resources`)."""
    kind, sep, rest = text.partition("=")
    if not sep or not kind or not rest:
        raise ValueError(f"{text!r}: expected KIND=NAME=VALUE[,NAME=VALUE...]")
    values: dict[str, float] = {}
    memory = 0
    prefer: list[str] = []
    for part in rest.split(","):
        name, eq, raw = part.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"{text!r}: {part!r} is not NAME=VALUE")
        if name == "prefer":  # prefer=node_b: a node with that resource if one is alive
            if not raw.strip():
                raise ValueError(f"{text!r}: prefer needs a resource name")
            prefer.append(raw.strip())
            continue
        try:
            if name == "memory":
                memory = parse_bytes(raw)
                continue
            values[name] = float(raw)
        except ValueError:
            raise ValueError(f"{text!r}: {raw!r} is not a number") from None
        if values[name] < 0:
            raise ValueError(f"{text!r}: {name} must not be negative")
    cpus = values.pop("num_cpus", 0.0)
    gpus = values.pop("num_gpus", 0.0)
    return kind, ActorResources(cpus, gpus, memory, tuple(sorted(values.items())),
                                tuple(prefer))


@dataclass(frozen=True)
class NodeView:
    """One node as the scheduler sees it: Ray's capacity plus our own replicas on it."""

    node_id: str
    alive: bool
    capacity: dict[str, float]  # Ray's total resources of the node
    services: frozenset[tuple[str, str]] = frozenset()  # (kind, identity) replicas running here
    weight_files: frozenset[str] = frozenset()  # weights files some replica here has loaded
    resident_bytes: int = 0  # weights our replicas hold on this node
    reserved_memory: int = 0  # memory our actors declared on this node
    queue: int = 0  # calls waiting at our replicas on this node
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def free_memory(self) -> float:
        return self.capacity.get("memory", 0.0) - self.resident_bytes - self.reserved_memory


def fits(node: NodeView, demand: dict[str, float]) -> bool:
    return node.alive and all(node.capacity.get(k, 0.0) >= v for k, v in demand.items())


def choose_node(nodes: Sequence[NodeView], demand: dict[str, float], service: tuple[str, str],
                weight_file: str, prefer: Sequence[str] = ()) -> str | None:
    """The node for a new replica of `service`, or None when no live node can host it (a dead
    node never qualifies: replicas lost with a node are re-placed on the live ones)."""
    candidates = [n for n in nodes if fits(n, demand)]
    if not candidates:
        return None

    def score(n: NodeView) -> tuple[int, int, int, float, int, str]:
        return (0 if all(n.capacity.get(r, 0.0) > 0 for r in prefer) else 1,
                1 if service in n.services else 0, 0 if weight_file in n.weight_files else 1,
                -n.free_memory, n.queue, n.node_id)
    return min(candidates, key=score).node_id
