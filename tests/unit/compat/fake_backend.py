"""A BackendAPI without models: validates like the real compiler (same error types), queues with
ComfyUI's `number` semantics, and runs prompts on a worker thread emitting the realistic event
sequence (start, cached, per node state/executing/progress/previews/executed, success | error |
interrupted, done, queue status). SaveImage writes a real PNG into output/.

Knobs for tests: `step_delay` (seconds per sampler step), `hold` (clear it to keep prompts
pending), `max_pending` (BackPressureError beyond), FAIL_SEED (KSampler raises)."""
from __future__ import annotations

import copy
import heapq
import io
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from lego_backend.config import BackendConfig
from lego_backend.errors import (
    BackPressureError,
    DuplicatePromptError,
    GraphValidationError,
    NodeValidationErrors,
    ValidationReason,
)
from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRecord, PromptRequest, SubmitResult

FAIL_SEED = 666
FOLDERS = ("checkpoints", "loras", "vae", "embeddings", "configs", "controlnet")
SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m"]
SCHEDULERS = ["simple", "normal", "karras"]


def _inp(type_: str, **opts: Any) -> list[Any]:
    return [type_, opts] if opts else [type_]


def _node(name: str, display: str, category: str, required: dict[str, Any], outputs: list[str],
          output_node: bool = False, hidden: dict[str, Any] | None = None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, Any] = {"required": list(required)}
    if hidden:
        inputs["hidden"], order["hidden"] = hidden, list(hidden)
    return {"input": inputs, "input_order": order, "is_input_list": False, "output": outputs,
            "output_is_list": [False] * len(outputs), "output_name": outputs,
            "output_tooltips": [""] * len(outputs), "name": name, "display_name": display,
            "description": "", "python_module": "nodes", "category": category,
            "output_node": output_node, "has_intermediate_output": False, "search_aliases": []}


class FakeBackend:
    def __init__(self, config: BackendConfig, step_delay: float = 0.0, max_pending: int = 100):
        self.config = config
        self.step_delay = step_delay
        self.max_pending = max_pending
        self.hold = threading.Event()
        self.hold.set()
        self.freed: list[tuple[bool, bool]] = []
        self.started = self.stopped = False
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, PromptRecord]] = []
        self._seq = 0
        self._counter = 0
        self._running: PromptRecord | None = None
        self._running_node: str | None = None
        self._history: dict[str, PromptRecord] = {}
        self._listeners: list[Callable[[ev.Event], None]] = []
        self._cache: dict[str, dict[str, Any] | None] = {}
        self._cancel = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        for d in (self.config.output_dir, self.config.input_dir, self.config.temp_dir,
                  self.config.user_dir, *(self.config.models_dir / f for f in FOLDERS)):
            Path(d).mkdir(parents=True, exist_ok=True)
        self.started = True
        self._thread = threading.Thread(target=self._work, name="fake-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopped = True
        with self._lock:
            self._stop = True
            self._cancel.set()
            self._wake.notify_all()
        self.hold.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- graph surface ----------------------------------------------------------------------------
    def object_info(self) -> dict[str, Any]:
        ckpts = self.list_models("checkpoints") or []
        inputs = sorted(p.name for p in Path(self.config.input_dir).glob("*") if p.is_file())
        nodes = [
            _node("CheckpointLoaderSimple", "Load Checkpoint", "loaders",
                  {"ckpt_name": [ckpts, {}]}, ["MODEL", "CLIP", "VAE"]),
            _node("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
                  {"text": _inp("STRING", multiline=True, dynamicPrompts=True),
                   "clip": _inp("CLIP")}, ["CONDITIONING"]),
            _node("EmptyLatentImage", "Empty Latent Image", "latent",
                  {"width": _inp("INT", default=512, min=16, max=16384, step=8),
                   "height": _inp("INT", default=512, min=16, max=16384, step=8),
                   "batch_size": _inp("INT", default=1, min=1, max=4096)}, ["LATENT"]),
            _node("KSampler", "KSampler", "sampling", {
                "model": _inp("MODEL"),
                "seed": _inp("INT", default=0, min=0, max=18446744073709551615,
                             control_after_generate=True),
                "steps": _inp("INT", default=20, min=1, max=10000),
                "cfg": _inp("FLOAT", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
                "sampler_name": [SAMPLERS, {}], "scheduler": [SCHEDULERS, {}],
                "positive": _inp("CONDITIONING"), "negative": _inp("CONDITIONING"),
                "latent_image": _inp("LATENT"),
                "denoise": _inp("FLOAT", default=1.0, min=0.0, max=1.0, step=0.01)}, ["LATENT"]),
            _node("VAEDecode", "VAE Decode", "latent",
                  {"samples": _inp("LATENT"), "vae": _inp("VAE")}, ["IMAGE"]),
            _node("SaveImage", "Save Image", "image",
                  {"images": _inp("IMAGE"), "filename_prefix": _inp("STRING", default="ComfyUI")},
                  [], output_node=True, hidden={"prompt": "PROMPT",
                                                "extra_pnginfo": "EXTRA_PNGINFO"}),
            _node("PreviewImage", "Preview Image", "image", {"images": _inp("IMAGE")}, [],
                  output_node=True),
            _node("LoadImage", "Load Image", "image",
                  {"image": [inputs, {"image_upload": True}]}, ["IMAGE", "MASK"]),
        ]
        return {n["name"]: n for n in nodes}

    def list_models(self, folder: str) -> list[str] | None:
        if folder not in FOLDERS:
            return None
        root = Path(self.config.models_dir) / folder
        if not root.is_dir():
            return []
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    def model_folders(self) -> dict[str, list[str]]:
        return {f: [str(Path(self.config.models_dir) / f)] for f in FOLDERS}

    def convert_workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError("UI workflows are not supported by the fake")

    # --- validation -------------------------------------------------------------------------------
    def _validate(self, prompt: Any, targets: list[str] | None
                  ) -> tuple[list[str], dict[str, NodeValidationErrors]]:
        if not isinstance(prompt, dict):
            raise GraphValidationError(ValidationReason(
                "invalid_prompt", "Cannot execute because the prompt is not a JSON object.",
                type(prompt).__name__), {})
        info = self.object_info()
        for nid, node in prompt.items():
            if not isinstance(node, dict) or "class_type" not in node:
                raise GraphValidationError(ValidationReason(
                    "invalid_prompt", "Cannot execute because a node is missing the class_type "
                    "property.", f"Node ID '#{nid}'"), {})
            if node["class_type"] not in info:
                raise GraphValidationError(ValidationReason(
                    "invalid_prompt", f"Cannot execute because node {node['class_type']} does not "
                    "exist.", f"Node ID '#{nid}'"), {})
        outputs = [nid for nid, n in prompt.items() if info[n["class_type"]]["output_node"]
                   and (targets is None or nid in targets)]
        if not outputs:
            raise GraphValidationError(ValidationReason("prompt_no_outputs",
                                                        "Prompt has no outputs", ""), {})
        own: dict[str, list[ValidationReason]] = {}
        for nid, node in prompt.items():
            reasons = self._check_node(node, info[node["class_type"]])
            if reasons:
                own[nid] = reasons
        node_errors: dict[str, NodeValidationErrors] = {}
        good = []
        for out in outputs:
            bad = [nid for nid in self._upstream(prompt, out) if nid in own]
            for nid in bad:
                ne = node_errors.setdefault(nid, NodeValidationErrors(
                    prompt[nid]["class_type"], own[nid]))
                ne.dependent_outputs.append(out)
            if not bad:
                good.append(out)
        if not good:
            details = "\n".join(f"{r.message}: {r.details}" for ne in node_errors.values()
                                for r in ne.errors)
            raise GraphValidationError(ValidationReason(
                "prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
                node_errors)
        return good, node_errors

    @staticmethod
    def _check_node(node: dict[str, Any], info: dict[str, Any]) -> list[ValidationReason]:
        reasons = []
        inputs = node.get("inputs") or {}
        for name, spec in info["input"]["required"].items():
            if name not in inputs:
                reasons.append(ValidationReason("required_input_missing",
                                                "Required input is missing", name,
                                                {"input_name": name}))
                continue
            value, opts = inputs[name], (spec[1] if len(spec) > 1 else {})
            if isinstance(value, list):
                continue  # a link
            if isinstance(spec[0], list) and value not in spec[0]:
                reasons.append(ValidationReason(
                    "value_not_in_list", "Value not in list", f"{name}: '{value}' not in "
                    f"{spec[0]}", {"input_name": name, "input_config": spec,
                                   "received_value": value}))
            elif spec[0] in ("INT", "FLOAT") and isinstance(value, (int, float)):
                if "min" in opts and value < opts["min"]:
                    reasons.append(ValidationReason(
                        "value_smaller_than_min", f"Value {value} smaller than min of "
                        f"{opts['min']}", name, {"input_name": name, "input_config": spec,
                                                 "received_value": value}))
                if "max" in opts and value > opts["max"]:
                    reasons.append(ValidationReason(
                        "value_bigger_than_max", f"Value {value} bigger than max of "
                        f"{opts['max']}", name, {"input_name": name, "input_config": spec,
                                                 "received_value": value}))
        return reasons

    @staticmethod
    def _upstream(prompt: dict[str, Any], out: str) -> list[str]:
        """`out` and its ancestors, dependencies first."""
        order: list[str] = []

        def visit(nid: str) -> None:
            if nid in order or nid not in prompt:
                return
            for value in (prompt[nid].get("inputs") or {}).values():
                if isinstance(value, list) and len(value) == 2:
                    visit(str(value[0]))
            order.append(nid)
        visit(out)
        return order

    # --- queue ------------------------------------------------------------------------------------
    def submit(self, request: PromptRequest) -> SubmitResult:
        outputs, node_errors = self._validate(request.prompt, request.partial_execution_targets)
        with self._lock:
            pid = request.prompt_id or str(uuid.uuid4())
            if self.record(pid) is not None:
                raise DuplicatePromptError(pid)
            if len(self._heap) >= self.max_pending:
                raise BackPressureError("Queue is full", retry_after_s=1.5)
            if request.number is not None:
                number = float(request.number)
            else:
                self._counter += 1
                number = float(-self._counter if request.front else self._counter)
            extra = copy.deepcopy(request.extra_data)
            extra["client_id"] = request.client_id
            extra.setdefault("create_time", int(time.time() * 1000))
            rec = PromptRecord(pid, number, copy.deepcopy(request.prompt), extra, outputs,
                               create_time=extra["create_time"])
            self._seq += 1
            heapq.heappush(self._heap, (number, self._seq, rec))
            self._wake.notify_all()
        self._status()
        return SubmitResult(pid, number, node_errors)

    def queue_remaining(self) -> int:
        with self._lock:
            return len(self._heap) + (self._running is not None)

    def queue_items(self) -> tuple[list[PromptRecord], list[PromptRecord]]:
        with self._lock:
            pending = [rec for _, _, rec in sorted(self._heap, key=lambda t: (t[0], t[1]))]
            return ([self._running] if self._running else []), pending

    def delete_queued(self, prompt_ids: list[str]) -> None:
        with self._lock:
            self._heap = [t for t in self._heap if t[2].prompt_id not in prompt_ids]
            heapq.heapify(self._heap)
        self._status()

    def clear_queue(self) -> None:
        with self._lock:
            self._heap = []
        self._status()

    def interrupt(self, prompt_id: str | None = None) -> bool:
        with self._lock:
            running = self._running
            if running is None or (prompt_id is not None and running.prompt_id != prompt_id):
                return False
            self._cancel.set()
            return True

    def cancel(self, prompt_id: str) -> bool:
        with self._lock:
            before = len(self._heap)
            self.delete_queued([prompt_id])
            if len(self._heap) != before:
                return True
        return self.interrupt(prompt_id)

    def free(self, unload_models: bool, free_memory: bool) -> None:
        self.freed.append((unload_models, free_memory))
        if free_memory:
            self._cache.clear()

    # --- history ----------------------------------------------------------------------------------
    def history(self) -> list[PromptRecord]:
        with self._lock:
            return list(self._history.values())

    def record(self, prompt_id: str) -> PromptRecord | None:
        with self._lock:
            if self._running is not None and self._running.prompt_id == prompt_id:
                return self._running
            for _, _, rec in self._heap:
                if rec.prompt_id == prompt_id:
                    return rec
            return self._history.get(prompt_id)

    def delete_history(self, prompt_ids: list[str]) -> None:
        with self._lock:
            for pid in prompt_ids:
                self._history.pop(pid, None)

    def clear_history(self) -> None:
        with self._lock:
            self._history.clear()

    # --- events -----------------------------------------------------------------------------------
    def set_preview_audience(self, audience: Callable[[str], bool] | None) -> None:
        self.preview_audience = audience

    def add_listener(self, listener: Callable[[ev.Event], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return remove

    def services_report(self) -> dict[str, Any]:
        return {"mode": "fake", "services": [], "resident_weight_bytes": 0,
                "mean_denoiser_batch": 0.0, "scaling_decisions": []}

    def running_node(self, client_id: str) -> tuple[str, str] | None:
        with self._lock:
            rec, node = self._running, self._running_node
            if rec is None or node is None or rec.client_id != client_id:
                return None
            return rec.prompt_id, node

    def _emit(self, event: ev.Event, rec: PromptRecord | None = None) -> None:
        if rec is not None and isinstance(event, (ev.ExecutionStart, ev.ExecutionCached,
                                                  ev.ExecutionSuccess, ev.ExecutionError,
                                                  ev.ExecutionInterrupted)):
            rec.messages.append(event)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def _status(self) -> None:
        self._emit(ev.QueueStatus("", None, queue_remaining=self.queue_remaining()))

    # --- worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            self.hold.wait()
            with self._lock:
                while not self._heap and not self._stop:
                    self._wake.wait(0.2)
                if self._stop:
                    return
                if not self.hold.is_set():
                    continue
                _, _, rec = heapq.heappop(self._heap)
                self._running, self._running_node = rec, None
                self._cancel.clear()
            rec.status, rec.start_time = "running", int(time.time() * 1000)
            self._status()
            try:
                self._run(rec)
            finally:
                rec.end_time = int(time.time() * 1000)
                with self._lock:
                    self._history[rec.prompt_id] = rec
                    self._running, self._running_node = None, None
                self._emit(ev.PromptDone(rec.prompt_id, rec.client_id))
                self._status()

    def _signature(self, prompt: dict[str, Any], nid: str) -> str:
        node = prompt[nid]
        inputs = {k: (self._signature(prompt, str(v[0])) + f"#{v[1]}"
                      if isinstance(v, list) and len(v) == 2 else v)
                  for k, v in sorted((node.get("inputs") or {}).items())}
        return json.dumps([node["class_type"], inputs], sort_keys=True, default=str)

    def _run(self, rec: PromptRecord) -> None:
        pid, cid, prompt = rec.prompt_id, rec.client_id, rec.prompt
        order: list[str] = []
        for out in rec.outputs_to_execute:
            order += [n for n in self._upstream(prompt, out) if n not in order]
        sigs = {nid: self._signature(prompt, nid) for nid in order}
        cached = [nid for nid in order if sigs[nid] in self._cache]
        self._emit(ev.ExecutionStart(pid, cid), rec)
        self._emit(ev.ExecutionCached(pid, cid, nodes=tuple(cached)), rec)
        states: dict[str, tuple[str, str, int, int]] = {}
        values: dict[str, dict[str, Any]] = {}
        executed: list[str] = []
        new_cache: dict[str, dict[str, Any] | None] = {}
        for nid in order:
            class_type = prompt[nid]["class_type"]
            if nid in cached:
                ui = self._cache[sigs[nid]]
                new_cache[sigs[nid]] = ui
                if ui is not None:
                    rec.outputs[nid] = ui
                    self._emit(ev.Executed(pid, cid, node=nid, display_node=nid, output=ui))
                continue
            states[nid] = (nid, "running", 0, 1)
            self._emit(ev.NodeStateChange(pid, cid, nodes=tuple(states.values())))
            with self._lock:
                self._running_node = nid
            self._emit(ev.Executing(pid, cid, node=nid, display_node=nid))
            try:
                ui = self._node(rec, nid, values, states)
            except _Interrupted:
                self._emit(ev.ExecutionInterrupted(pid, cid, node_id=nid, node_type=class_type,
                                                   executed=tuple(executed)), rec)
                rec.status = "interrupted"
                return
            except RuntimeError as exc:
                states[nid] = (nid, "error", 0, 1)
                self._emit(ev.NodeStateChange(pid, cid, nodes=tuple(states.values())))
                self._emit(ev.ExecutionError(
                    pid, cid, node_id=nid, node_type=class_type, executed=tuple(executed),
                    exception_message=str(exc), exception_type="RuntimeError",
                    traceback=("Traceback (most recent call last):\n", f"RuntimeError: {exc}\n"),
                    current_inputs={"seed": [FAIL_SEED]}), rec)
                rec.status = "error"
                return
            executed.append(nid)
            new_cache[sigs[nid]] = ui
            states[nid] = (nid, "finished", states[nid][3], states[nid][3])
            self._emit(ev.NodeStateChange(pid, cid, nodes=tuple(states.values())))
            if ui is not None:
                rec.outputs[nid] = ui
                self._emit(ev.Executed(pid, cid, node=nid, display_node=nid, output=ui))
        self._cache = new_cache
        rec.status = "success"
        self._emit(ev.ExecutionSuccess(pid, cid), rec)

    def _node(self, rec: PromptRecord, nid: str, values: dict[str, dict[str, Any]],
              states: dict[str, tuple[str, str, int, int]]) -> dict[str, Any] | None:
        node = rec.prompt[nid]
        inputs = node.get("inputs") or {}
        linked = {k: values.get(str(v[0]), {}) for k, v in inputs.items()
                  if isinstance(v, list) and len(v) == 2}
        out: dict[str, Any] = {}
        class_type = node["class_type"]
        if class_type == "EmptyLatentImage":
            out = {"w": int(inputs.get("width", 512)), "h": int(inputs.get("height", 512))}
        elif class_type == "KSampler":
            out = dict(linked.get("latent_image", {}), seed=int(inputs.get("seed", 0)))
            steps = int(inputs.get("steps", 20))
            for step in range(1, steps + 1):
                if self._cancel.is_set():
                    raise _Interrupted
                time.sleep(self.step_delay)
                if out["seed"] == FAIL_SEED:
                    raise RuntimeError("sampler exploded (FAIL_SEED)")
                states[nid] = (nid, "running", step, steps)
                self._emit(ev.Progress(rec.prompt_id, rec.client_id, node=nid, value=step,
                                       max=steps))
                self._emit(ev.NodeStateChange(rec.prompt_id, rec.client_id,
                                              nodes=tuple(states.values())))
                self._emit(ev.Preview(rec.prompt_id, rec.client_id, node=nid,
                                      image_format="jpeg", data=_jpeg(step)))
        elif class_type == "VAEDecode":
            out = dict(linked.get("samples", {}))
        elif class_type in ("SaveImage", "PreviewImage"):
            if self._cancel.is_set():
                raise _Interrupted
            src = linked.get("images", {})
            return self._save(rec, class_type, inputs, src)
        values[nid] = out
        return None

    def _save(self, rec: PromptRecord, class_type: str, inputs: dict[str, Any],
              src: dict[str, Any]) -> dict[str, Any]:
        w, h, seed = min(src.get("w", 64), 512), min(src.get("h", 64), 512), src.get("seed", 0)
        img = Image.new("RGB", (w, h), ((seed * 37) % 256, (seed * 91) % 256, 128))
        if class_type == "SaveImage":
            folder, kind = Path(self.config.output_dir), "output"
            prefix = str(inputs.get("filename_prefix", "ComfyUI"))
            n = 1 + len(list(folder.glob(f"{prefix}_*_.png")))
            name = f"{prefix}_{n:05d}_.png"
        else:
            folder, kind = Path(self.config.temp_dir), "temp"
            name = f"ComfyUI_temp_{uuid.uuid4().hex[:5]}_00001_.png"
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / name)
        return {"images": [{"filename": name, "subfolder": "", "type": kind}]}


class _Interrupted(Exception):
    pass


def _jpeg(step: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (step * 10 % 256, 0, 0)).save(buf, format="JPEG")
    return buf.getvalue()


def api_prompt(seed: int = 1, steps: int = 3, width: int = 64, height: int = 64,
               ckpt: str = "fake.safetensors", prefix: str = "ComfyUI") -> dict[str, Any]:
    """The default text-to-image graph in API format."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": width, "height": height, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 8.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix,
                                                    "images": ["8", 0]}},
    }
