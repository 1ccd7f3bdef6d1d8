"""The model-service seam. Nodes never touch model weights: they send ServiceCalls (handles and
scalars) to a ModelService named by a ServiceKey, i.e. by the weights it holds. Every prompt of every
workflow that names the same weights reaches the same service."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lego_backend.dataplane.store import TensorStore


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA a request applies on top of a service's weights (at run time, per batch row)."""

    identity: str  # content hash of the LoRA file
    path: Path
    strength: float


@dataclass(frozen=True)
class ServiceSpec:
    """Everything needed to create a service; `key` is its identity for sharing."""

    kind: str  # "text_encoder" | "denoiser" | "vae" | "controlnet" | "upscaler"
    identity: str  # content hash of the weights file (checkpoint, VAE file, ...)
    path: Path  # where the weights are
    family: str = "sd15"  # architecture family (selects config, latent scale, ...)
    source: str = "checkpoint"  # "checkpoint" (a component of a checkpoint) | "file" (standalone)

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.kind, self.identity)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.path.name}@{self.identity[:10]}"


@dataclass
class ServiceCall:
    """One request to a service: an operation name plus handles and scalars (never raw tensors
    when crossing a process boundary)."""

    op: str  # e.g. "encode", "unet", "decode", "residuals"
    args: dict[str, Any] = field(default_factory=dict)


_LOAD_LOCK = threading.Lock()


class ModelService:
    """Base class: one loaded copy of one set of weights. Subclasses implement `load` and `_run`.
    Not thread-safe by itself: the pool serialises calls per service."""

    # Ops a sampler calls at every step: latency-bound, their results read by the caller at once
    # (a remote replica may send these over a faster channel than one-shot calls).
    step_ops: frozenset[str] = frozenset()

    def __init__(self, spec: ServiceSpec, store: TensorStore):
        self.spec = spec
        self.store = store
        self.loaded = False
        self.batches_run = 0
        self.calls_run = 0

    def load(self) -> None:
        raise NotImplementedError

    def unload(self) -> None:
        self.loaded = False

    def resident_bytes(self) -> int:
        return 0

    def close(self) -> None:
        """Release helpers (threads) at shutdown."""
        self.unload()

    def batch_key(self, call: ServiceCall) -> tuple[Any, ...] | None:
        """Calls with equal non-None keys may run as one batch. Default: never batch."""
        return None

    def batch_rows(self, call: ServiceCall) -> int:
        """Rows a call adds to a batch (the replica's batch limit counts rows)."""
        x = call.args.get("x")
        shape = getattr(x, "shape", None)
        return int(shape[0]) if shape else 1

    def run_batch(self, calls: list[ServiceCall]) -> list[Any]:
        if not self.loaded:
            # One load at a time per process: diffusers/transformers import their model modules
            # lazily and two first imports racing from different threads fail with KeyError.
            with _LOAD_LOCK:
                self.load()
            self.loaded = True
        self.batches_run += 1
        self.calls_run += len(calls)
        return self._run(calls)

    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        raise NotImplementedError


def module_bytes(*modules: Any) -> int:
    total = 0
    for m in modules:
        if m is None:
            continue
        for p in m.parameters():
            total += p.numel() * p.element_size()
        for b in m.buffers():
            total += b.numel() * b.element_size()
    return total
