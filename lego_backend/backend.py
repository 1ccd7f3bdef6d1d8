"""Backend: owns the node registry, model store, services, queue, cache and history, and the
worker that runs prompts. Created once (in the app's lifespan or by `lego run`)."""
from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from lego_backend.config import BackendConfig
from lego_backend.dataplane.store import TensorStore
from lego_backend.errors import (
    BackPressureError,
    DuplicatePromptError,
    GraphValidationError,
    ValidationReason,
)
from lego_backend.graph.compiler import CompileOptions, compile_graph
from lego_backend.graph.graph import to_graph
from lego_backend.graph.plan import ExecutionPlan
from lego_backend.models.store import ModelStore
from lego_backend.runtime import events as ev
from lego_backend.runtime.context import Paths, RunContext
from lego_backend.runtime.event_bus import EventBus, Listener
from lego_backend.runtime.executor import execute
from lego_backend.runtime.history import PromptHistory
from lego_backend.runtime.lanes import Lane, LaneRouter, workflow_kind
from lego_backend.runtime.output_cache import OutputCache
from lego_backend.runtime.records import PromptRecord, PromptRequest, SubmitResult
from lego_backend.runtime.scheduler import LatencyModel, admit, work_ahead
from lego_backend.services import intraop
from lego_backend.services.pool import ServicePool
from lego_backend.services.router import ScalingRule
from lego_backend.storage.prompt_db import PromptStore
from lego_backend.storage.recovery import mark_failed, plan_recovery
from node_library import build_registry
from node_library.image_io import list_input_images


class Backend:
    def __init__(self, config: BackendConfig):
        self.config = config
        self.registry = build_registry()
        self.models = ModelStore(config.models_dir, config.extra_model_paths)
        self.tensors = TensorStore()
        scaling = {kind: ScalingRule(lo, hi) for kind, lo, hi in config.replicas}
        self.lanes = LaneRouter(config.mode, self.tensors, config.max_concurrent_prompts,
                                config.max_batch, config.model_memory, scaling=scaling,
                                runtime=config.replica_runtime, max_retries=config.max_retries)
        self.paths = Paths(config.output_dir, config.input_dir, config.temp_dir, self.models,
                           config.max_pixels)
        self._lane_of: dict[str, Lane] = {}  # queued or running prompt -> its lane
        self.latency = LatencyModel()
        self._kinds: dict[str, str] = {}  # queued or running prompt -> workflow kind
        self._deadlines: dict[str, float] = {}  # queued or running prompt -> monotonic deadline
        self._lock = threading.Lock()
        # Durable queue and history (<data_dir>/lego.db); None = in memory only (`lego run`).
        self._store = PromptStore.in_dir(config.data_dir) if config.durable else None
        self._history = PromptHistory(config.history_max, self._store)
        self._plans: dict[str, ExecutionPlan] = {}
        self._running: dict[str, PromptRecord] = {}  # prompt_id -> record, in start order
        self._running_nodes: dict[str, str] = {}  # prompt_id -> node executing now
        self._cancels: dict[str, threading.Event] = {}
        self._events = EventBus()
        self._preview_audience: Callable[[str], bool] | None = None  # see set_preview_audience
        self._counter = int(self._store.max_number()) if self._store is not None else 0
        self._started = False
        self._stopping = False

    @property
    def services(self) -> ServicePool:
        """The shared services (micro mode; monolithic lanes each have their own)."""
        return self.lanes.all()[0].services

    @property
    def cache(self) -> OutputCache:
        """The shared output cache (micro mode)."""
        return self.lanes.all()[0].cache

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        for d in (self.config.output_dir, self.config.input_dir, self.config.temp_dir,
                  self.config.user_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.config.torch_threads:
            import torch
            torch.set_num_threads(self.config.torch_threads)
        # no --threads: each in-process replica picks its own (services/intraop.py)
        intraop.fix_threads(self.config.torch_threads or None)
        if self._store is not None:
            self.claim_data_dir()
            self._recover()
        self._started = True
        self.lanes.on_new_lane.append(self._start_lane)
        for lane in self.lanes.all():
            self._start_lane(lane)

    def claim_data_dir(self) -> None:
        """One server per data dir: its unfinished prompts are ours to re-run. PromptStoreError
        if another live process holds it (idempotent)."""
        if self._store is not None:
            self._store.claim()

    def _start_lane(self, lane: Lane) -> None:
        if not self._started:
            return
        for i in range(max(1, lane.runners)):
            thread = threading.Thread(target=self._work, args=(lane,),
                                      name=f"lego-{lane.name}-{i}", daemon=True)
            thread.start()
            lane.threads.append(thread)

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            for cancel in self._cancels.values():
                cancel.set()
        lanes = self.lanes.all()
        for lane in lanes:
            lane.queue.close()
        for lane in lanes:
            for thread in lane.threads:
                thread.join(timeout=30)
            lane.services.close()
        if self._store is not None:
            self._store.close()

    def _recover(self) -> None:
        """Prompts a previous server process left queued or running: re-queued in their queue
        order, or recorded as failed with the reason (storage/recovery.py)."""
        assert self._store is not None
        left = plan_recovery(self._store.unfinished(), self.config.on_restart,
                             self.config.max_retries)
        for record, reason in left.failed:
            self._history.add(mark_failed(record, reason))
        for record in left.requeue:
            try:
                plan = self.compile(record.prompt, record.outputs_to_execute)
            except GraphValidationError as err:  # e.g. its model file is gone
                reason = "cannot run after the restart: " + "; ".join(err.describe())
                self._history.add(mark_failed(record, reason))
                continue
            with self._lock:  # admitted before the restart: no queue limit or SLO refusal
                lane, kind = self.lanes.lane_for(plan), workflow_kind(plan)
                decision = self._admission(lane, kind, record.extra_data)
                self._enqueue(record, plan, lane, kind, decision.deadline, persist=False)

    # --- graph surface -----------------------------------------------------------------------------
    def list_choices(self, folder: str) -> list[str]:
        if folder == "input_images":
            return list_input_images(self.config.input_dir)
        return self.models.list(folder) or []

    def object_info(self) -> dict[str, Any]:
        return self.registry.object_info(self.list_choices)

    def list_models(self, folder: str) -> list[str] | None:
        if folder not in self.models.folders():
            return None
        return self.models.list(folder)

    def model_folders(self) -> dict[str, list[str]]:
        return {k: [str(p) for p in v] for k, v in self.models.folders().items()}

    def convert_workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        from comfy_compat.workflow_format import workflow_to_prompt
        return workflow_to_prompt(workflow, self.registry)

    def compile(self, prompt: dict[str, Any],
                partial_targets: list[str] | None = None) -> ExecutionPlan:
        if not isinstance(prompt, dict):
            raise GraphValidationError(ValidationReason(
                "invalid_prompt", "Cannot execute because the prompt is not a JSON object.",
                type(prompt).__name__, {}), {})
        options = CompileOptions(self.list_choices, self.paths, partial_targets)
        return compile_graph(to_graph(prompt), self.registry, options)

    # --- queue -------------------------------------------------------------------------------------
    def submit(self, request: PromptRequest) -> SubmitResult:
        plan = self.compile(request.prompt, request.partial_execution_targets)
        with self._lock:
            pid = request.prompt_id or str(uuid.uuid4())
            if self._known(pid):
                raise DuplicatePromptError(f"prompt_id already exists: {pid}")
            if request.number is not None:
                number = float(request.number)
            else:
                self._counter += 1
                number = float(-self._counter if request.front else self._counter)
            extra = copy.deepcopy(request.extra_data or {})
            extra["client_id"] = request.client_id
            extra.setdefault("create_time", int(time.time() * 1000))
            record = PromptRecord(pid, number, plan.prompt, extra, list(plan.outputs),
                                  create_time=extra["create_time"])
            self._check_queue_room(request.client_id)
            lane = self.lanes.lane_for(plan)
            kind = workflow_kind(plan)
            decision = self._admission(lane, kind, extra)
            if not decision.admit:
                raise BackPressureError(
                    "The server predicts this prompt would miss its SLO "
                    f"({decision.predicted_finish - time.monotonic():.1f}s needed)",
                    decision.retry_after_s)
            self._enqueue(record, plan, lane, kind, decision.deadline)
        self._emit_queue_status()
        return SubmitResult(pid, number, plan.node_errors)

    def _enqueue(self, record: PromptRecord, plan: ExecutionPlan, lane: Lane, kind: str,
                 deadline: float, persist: bool = True) -> None:
        """Under self._lock: the prompt waits in its lane (and, durably, in lego.db)."""
        pid = record.prompt_id
        if persist and self._store is not None:
            self._store.add(record)  # before the queue: a runner may start it at once
        self._plans[pid] = plan
        self._lane_of[pid] = lane
        self._kinds[pid] = kind
        self._deadlines[pid] = deadline
        lane.queue.put(record)

    def _check_queue_room(self, client_id: str | None) -> None:
        pending = self._pending()
        if len(pending) >= self.config.max_queue:
            raise BackPressureError(f"The queue is full ({len(pending)} prompts waiting)", 5.0)
        mine = sum(1 for r in pending if r.client_id == client_id)
        if client_id is not None and mine >= self.config.max_queue_per_client:
            raise BackPressureError(f"This client already has {mine} prompts waiting", 5.0)

    def _admission(self, lane: Lane, kind: str, extra: dict[str, Any]) -> Any:
        """SLO: extra_data.lego.slo_ms, else slo_scale x the kind's standalone latency."""
        standalone = self.latency.standalone(kind)
        lego = extra.get("lego") if isinstance(extra.get("lego"), dict) else {}
        slo_ms = lego.get("slo_ms")
        if isinstance(slo_ms, (int, float)) and not isinstance(slo_ms, bool) and slo_ms > 0:
            slo_s: float | None = float(slo_ms) / 1000.0
        elif standalone is not None:
            slo_s = self.config.slo_scale * standalone
        else:
            slo_s = None
        now = time.monotonic()
        admitted = [(self._deadlines[p], self.latency.standalone(self._kinds[p]))
                    for p, ln in self._lane_of.items() if ln is lane]
        deadline = now + slo_s if slo_s is not None else float("inf")
        backlog = work_ahead(((d, s) for d, s in admitted if s is not None), deadline,
                             lane.runners)
        return admit(now, slo_s, standalone or 0.0, backlog,
                     lane.work.parallelism(lane.runners),
                     self.config.admission == "strict")

    def _known(self, pid: str) -> bool:
        return pid in self._lane_of or pid in self._history

    def _pending(self) -> list[PromptRecord]:
        records = [r for lane in self.lanes.all() for r in lane.queue.pending()]
        return sorted(records, key=lambda r: r.number)

    def queue_remaining(self) -> int:
        return sum(len(lane.queue) for lane in self.lanes.all()) + len(self._running)

    def queue_items(self) -> tuple[list[PromptRecord], list[PromptRecord]]:
        with self._lock:
            running = list(self._running.values())
        return running, self._pending()

    def _dequeue(self, pid: str) -> bool:
        with self._lock:
            lane = self._lane_of.get(pid)
            if lane is None or not lane.queue.delete(pid):
                return False
            self._lane_of.pop(pid, None)
            self._plans.pop(pid, None)
            self._kinds.pop(pid, None)
            self._deadlines.pop(pid, None)
            if self._store is not None:
                self._store.delete([pid], finished=False)
            return True

    def delete_queued(self, prompt_ids: list[str]) -> None:
        for pid in prompt_ids:
            self._dequeue(pid)
        self._emit_queue_status()

    def clear_queue(self) -> None:
        for record in self._pending():
            self._dequeue(record.prompt_id)
        self._emit_queue_status()

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt `prompt_id` if it is running; without an id, every running prompt."""
        with self._lock:
            targets = [c for pid, c in self._cancels.items() if prompt_id in (None, pid)]
        for cancel in targets:
            cancel.set()
        return bool(targets)

    def cancel(self, prompt_id: str) -> bool:
        if self._dequeue(prompt_id):
            self._emit_queue_status()
            return True
        return self.interrupt(prompt_id)

    def free(self, unload_models: bool, free_memory: bool) -> None:
        for lane in self.lanes.all():
            if unload_models:
                lane.services.unload_all()
            if free_memory:
                lane.cache.clear()  # running prompts hold their own references

    def services_report(self) -> dict[str, Any]:
        """GET /lego/services: every service of every lane, resident weights, batching."""
        return self.lanes.services_report()

    # --- history -----------------------------------------------------------------------------------
    def history(self) -> list[PromptRecord]:
        return self._history.all()

    def record(self, prompt_id: str) -> PromptRecord | None:
        running = self._running.get(prompt_id)
        if running is not None:
            return running
        for rec in self._pending():
            if rec.prompt_id == prompt_id:
                return rec
        return self._history.get(prompt_id)

    def delete_history(self, prompt_ids: list[str]) -> None:
        self._history.delete(prompt_ids)

    def clear_history(self) -> None:
        self._history.clear()

    # --- events ------------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        return self._events.add_listener(listener)

    def set_preview_audience(self, audience: Callable[[str], bool] | None) -> None:
        self._preview_audience = audience

    def _wants_preview(self, client_id: str) -> bool:
        audience = self._preview_audience
        return audience is None or audience(client_id)

    def running_node(self, client_id: str) -> tuple[str, str] | None:
        with self._lock:
            for pid, record in self._running.items():
                node = self._running_nodes.get(pid)
                if record.client_id == client_id and node is not None:
                    return pid, node
        return None

    def _emit(self, event: ev.Event) -> None:
        if isinstance(event, ev.Executing):
            self._running_nodes[event.prompt_id] = event.node
        self._events.emit(event)

    def _emit_queue_status(self) -> None:
        self._emit(ev.QueueStatus("", None, queue_remaining=self.queue_remaining()))

    # --- worker ------------------------------------------------------------------------------------
    def _work(self, lane: Lane) -> None:
        while not self._stopping:
            if not lane.queue.wait(timeout=0.5):
                continue
            # Taking a prompt off the queue and marking it running is one step under the lock:
            # an interrupt, a queue delete or a lookup never falls between the two.
            with self._lock:
                record = lane.queue.get(timeout=0)
                if record is not None:
                    self._claim(record)
            if record is not None:
                self.run_record(record)

    def _claim(self, record: PromptRecord) -> None:
        """Under self._lock: the prompt has left its queue and is running from now on."""
        lane = self._lane_of[record.prompt_id]
        self._running[record.prompt_id] = record
        self._cancels[record.prompt_id] = threading.Event()
        lane.running += 1
        lane.work.started(time.monotonic())

    def run_next(self) -> PromptRecord | None:
        """Run the next queued prompt in the calling thread (for `lego run`, which has no
        worker); returns its finished record, or None if the queue is empty."""
        for lane in self.lanes.all():
            record = lane.queue.get(timeout=0)
            if record is not None:
                self.run_record(record)
                return record
        return None

    def run_record(self, record: PromptRecord) -> None:
        """Run one queued prompt to its end (the worker's body; `lego run` calls it directly)."""
        plan = self._plans.pop(record.prompt_id)
        with self._lock:
            if record.prompt_id not in self._running:  # `lego run`: no runner claimed it
                self._claim(record)
            lane = self._lane_of[record.prompt_id]
            cancel = self._cancels[record.prompt_id]
            alone_at_start = len(self._running) == 1
            deadline = self._deadlines.get(record.prompt_id, float("inf"))
        record.status = "running"
        record.start_time = int(time.time() * 1000)
        self._emit_queue_status()
        extra = record.extra_data
        ctx = RunContext(self.paths, self.tensors, lane.services, self._emit, cancel,
                         record.prompt_id, record.client_id, record.prompt,
                         extra.get("extra_pnginfo"),
                         preview_method=str(extra.get("preview_method", self.config.preview_method)),
                         preview_interval_s=self.config.preview_interval_s,
                         wants_preview=self._wants_preview,
                         deadline=deadline, lora_async_steps=self.config.lora_async_steps)
        started = time.monotonic()
        try:
            if self._store is not None:  # inside: a failed write fails this prompt, not the runner
                self._store.started(record.prompt_id, record.start_time)
            lane.cache.trim()
            execute(record, plan, ctx, lane.cache)
        except Exception as exc:  # noqa: BLE001 -- a bug outside any node: fail this prompt, keep serving
            record.status = "error"
            failure = ev.ExecutionError(record.prompt_id, record.client_id,
                                        exception_message=str(exc),
                                        exception_type=type(exc).__name__)
            record.messages.append(failure)
            self._emit(failure)
        finally:
            record.end_time = int(time.time() * 1000)
            if self._stopping and record.status == "interrupted" and self._store is not None:
                self._store.requeue(record.prompt_id)  # cut short by shutdown: runs after restart
            else:
                self._history.add(record)
            with self._lock:
                alone = alone_at_start and len(self._running) == 1
                self._running.pop(record.prompt_id, None)
                self._lane_of.pop(record.prompt_id, None)
                lane.running -= 1
                kind = self._kinds.pop(record.prompt_id, None)
                lane.work.finished(time.monotonic(),
                                   self.latency.standalone(kind) if kind is not None else None)
                self._deadlines.pop(record.prompt_id, None)
                self._running_nodes.pop(record.prompt_id, None)
                self._cancels.pop(record.prompt_id, None)
            if kind is not None and record.status == "success":
                self.latency.observe(kind, time.monotonic() - started, alone)
            self._emit(ev.PromptDone(record.prompt_id, record.client_id))
            self._emit_queue_status()
