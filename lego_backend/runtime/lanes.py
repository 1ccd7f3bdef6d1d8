"""Where a prompt runs. A lane is a queue, the prompt runners draining it, and the services and
output cache those runners use.

- micro (default): ONE lane; its services are shared by every prompt of every workflow, several
  prompts run at once and their denoiser steps batch together.
- monolithic (the baseline: what users run today): one lane per workflow kind, each holding
  its own copy of every model it needs and running one prompt at a time, like N ComfyUI
  instances behind a least-loaded balancer."""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from lego_backend.dataplane.store import TensorStore
from lego_backend.graph.plan import ExecutionPlan
from lego_backend.runtime.output_cache import OutputCache
from lego_backend.runtime.queue import PromptQueue
from lego_backend.runtime.scheduler import WorkRate
from lego_backend.services.pool import ServicePool
from lego_backend.services.router import ScalingRule

MODEL_INPUTS = ("ckpt_name", "lora_name", "vae_name", "control_net_name", "model_name")


@dataclass
class Lane:
    name: str
    queue: PromptQueue
    services: ServicePool
    cache: OutputCache
    runners: int  # prompts this lane runs at once
    threads: list[threading.Thread] = field(default_factory=list)
    running: int = 0  # prompts executing now (for the balancer)
    work: WorkRate = field(default_factory=WorkRate)  # measured parallelism (for admission)

    @property
    def load(self) -> int:
        return len(self.queue) + self.running


def workflow_kind(plan: ExecutionPlan) -> str:
    """Same node classes and same model files = same kind of workflow (a monolithic worker
    holds exactly those models)."""
    parts = sorted({step.class_type for step in plan.steps.values()})
    models = sorted({f"{k}={v}" for step in plan.steps.values()
                     for k, v in step.constants.items() if k in MODEL_INPUTS})
    digest = hashlib.sha256("|".join(parts + models).encode()).hexdigest()[:12]
    return f"kind-{digest}"


class LaneRouter:
    def __init__(self, mode: str, store: TensorStore, runners: int, max_batch: int,
                 model_memory: int | None, instances_per_kind: int = 1,
                 scaling: dict[str, ScalingRule] | None = None, runtime: str = "thread",
                 max_retries: int = 2):
        if mode not in ("micro", "monolithic"):
            raise ValueError(f"unknown mode {mode!r}: expected micro or monolithic")
        self.mode = mode
        self._store = store
        self._runners = runners
        self._max_batch = max_batch
        self._model_memory = model_memory
        self._instances = instances_per_kind
        self._scaling = scaling or {}
        self._runtime = runtime
        self._max_retries = max_retries
        self._lock = threading.Lock()
        self.lanes: dict[str, Lane] = {}
        self.on_new_lane: list = []  # callbacks(lane): the backend starts its runners
        if mode == "micro":
            self._add("micro", runners, max_batch)

    def _add(self, name: str, runners: int, max_batch: int) -> Lane:
        lane = Lane(name, PromptQueue(),
                    ServicePool(self._store, self._model_memory, max_batch=max_batch,
                                scaling=self._scaling, runtime=self._runtime,
                                max_retries=self._max_retries),
                    OutputCache(self._store), runners)
        self.lanes[name] = lane
        for callback in self.on_new_lane:
            callback(lane)
        return lane

    def lane_for(self, plan: ExecutionPlan) -> Lane:
        if self.mode == "micro":
            return self.lanes["micro"]
        kind = workflow_kind(plan)
        with self._lock:
            own = [self.lanes.get(f"{kind}/{i}") for i in range(self._instances)]
            for i, lane in enumerate(own):
                if lane is None:  # one worker, no batching: a ComfyUI instance
                    own[i] = self._add(f"{kind}/{i}", 1, 1)
            return min(own, key=lambda lane: lane.load)  # type: ignore[arg-type,return-value]

    def all(self) -> list[Lane]:
        with self._lock:
            return list(self.lanes.values())

    def services_report(self) -> dict[str, Any]:
        """Every service of every lane, resident weights, mean denoiser batch, scaling log."""
        services = [{**entry, "lane": lane.name} for lane in self.all()
                    for entry in lane.services.snapshot()]
        denoisers = [s for s in services if s["kind"] == "denoiser"]
        calls = sum(s["calls_run"] for s in denoisers)
        batches = sum(s["batches_run"] for s in denoisers)
        scaling = [d for lane in self.all() for d in lane.services.scaling_log]
        from lego_backend.cluster.runtime import cluster_report  # no ray import unless used
        return {"mode": self.mode, "services": services, "scaling_decisions": scaling[-50:],
                "resident_weight_bytes": sum(s["resident_bytes"] for s in services),
                "mean_denoiser_batch": calls / batches if batches else 0.0,
                "cluster": cluster_report()}
