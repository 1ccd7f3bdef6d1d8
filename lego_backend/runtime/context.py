"""The NodeContext a node runs with: service calls, tensor handles, progress and previews,
interruption. Tracks the handles a node run creates so the executor can free its scratch."""
from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from lego_backend.dataplane.handle import TensorHandle
from lego_backend.dataplane.store import TensorStore, iter_handles
from lego_backend.errors import PromptCancelled
from lego_backend.runtime import events as ev
from lego_backend.runtime.latent_format import latent_format

MAX_PREVIEW_SIDE = 512


@dataclass
class Paths:
    """Folders a node may read or write, and the server's size limit; also what validation of
    file inputs and sizes checks against."""

    output_dir: Path
    input_dir: Path
    temp_dir: Path
    models: Any  # ModelStore
    max_pixels: int = 64 * 1024 * 1024  # width x height x batch of one image/latent tensor


@dataclass
class RunContext:
    paths: Paths
    store: TensorStore
    services: Any  # ServicePool: call(spec, op, deadline=, **args), stream(spec)
    emit: Callable[[ev.Event], None]
    cancel: threading.Event
    prompt_id: str
    client_id: str | None
    prompt: dict[str, Any]
    extra_pnginfo: dict[str, Any] | None
    deadline: float = float("inf")  # monotonic time by which this prompt should finish
    lora_async_steps: int = 0  # LoRAs must be applied from this step on (0 = from the start)
    preview_method: str = "auto"
    preview_interval_s: float = 0.2
    wants_preview: Callable[[str], bool] = field(default=lambda client_id: True)
    node_id: str = ""
    family: str = "sd15"
    scratch: set[TensorHandle] = field(default_factory=set)
    node_states: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    _last_preview: float = 0.0

    # --- what nodes see -------------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return self.paths.output_dir

    @property
    def input_dir(self) -> Path:
        return self.paths.input_dir

    @property
    def max_pixels(self) -> int:
        return self.paths.max_pixels

    @property
    def temp_dir(self) -> Path:
        return self.paths.temp_dir

    @property
    def models(self) -> Any:
        return self.paths.models

    def call(self, spec: Any, op: str, **args: Any) -> Any:
        self.check_interrupt()
        result = self.services.call(spec, op, deadline=self.deadline, **args)
        self.scratch.update(iter_handles(result))
        return result

    def prefetch_adapters(self, spec: Any, refs: tuple[Any, ...]) -> list[Any]:
        """Start loading LoRAs on the service that will apply them; returns futures."""
        return self.services.prefetch_adapters(spec, refs)

    def stream(self, spec: Any, adapters: tuple[Any, ...] = ()) -> Any:
        """Context manager around a sampling loop that calls `spec` at every step."""
        return self.services.stream(spec, adapters)

    def put(self, tensor: torch.Tensor) -> TensorHandle:
        handle = self.store.put(tensor)
        self.scratch.add(handle)
        return handle

    def tensor(self, handle: TensorHandle) -> torch.Tensor:
        return self.store.get(handle)

    def release(self, handle: TensorHandle) -> None:
        if handle in self.scratch:
            self.scratch.discard(handle)
            self.store.release(handle)

    def release_scratch(self) -> None:
        for handle in self.scratch:
            self.store.release(handle)
        self.scratch.clear()

    def check_interrupt(self) -> None:
        if self.cancel.is_set():
            raise PromptCancelled(self.node_id)

    def progress(self, value: int, total: int, preview: torch.Tensor | None = None) -> None:
        if self.client_id is None:
            return
        self.emit(ev.Progress(self.prompt_id, self.client_id, node=self.node_id, value=value,
                              max=total))
        self.set_state(self.node_id, "running", value, total)
        if (preview is None or self.preview_method == "none"
                or not self.wants_preview(self.client_id)):
            return
        now = time.monotonic()
        if value < total and now - self._last_preview < self.preview_interval_s:
            return  # rate limit: previews are for eyes, not for every step
        self._last_preview = now
        self.emit(ev.Preview(self.prompt_id, self.client_id, node=self.node_id,
                             image_format="jpeg", data=self._preview_jpeg(preview)))

    def set_state(self, node_id: str, state: str, value: int, total: int) -> None:
        """Update one node's state and send the whole map (ComfyUI's progress_state)."""
        self.node_states[node_id] = (state, value, total)
        if self.client_id is not None:
            self.emit(ev.NodeStateChange(self.prompt_id, self.client_id, nodes=tuple(
                (nid, st, v, m) for nid, (st, v, m) in self.node_states.items())))

    def _preview_jpeg(self, latent: torch.Tensor) -> bytes:
        rgb = latent_format(self.family).preview_rgb(latent[0].float())
        img = Image.fromarray(rgb.numpy())
        scale = MAX_PREVIEW_SIDE / max(img.size)
        # Latents are 1/8 of the image: show them at a useful size.
        side = min(8.0, scale) if scale > 1 else scale
        img = img.resize((max(1, round(img.width * side)), max(1, round(img.height * side))),
                         Image.Resampling.NEAREST if side > 1 else Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        return buf.getvalue()
