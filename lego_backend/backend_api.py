"""What the protocol edge (comfy_compat) may ask of the backend. `Backend` implements it;
tests of the edge may use a fake. Methods are thread-safe and never block on model work.
Events are delivered to listeners from backend threads: a listener must hand them to its own
event loop (loop.call_soon_threadsafe) and return at once."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lego_backend.config import BackendConfig
from lego_backend.runtime.events import Event
from lego_backend.runtime.records import PromptRecord, PromptRequest, SubmitResult

Listener = Callable[[Event], None]


class BackendAPI(Protocol):
    config: BackendConfig

    def start(self) -> None:
        """Start worker threads. Called once from the app's lifespan."""

    def stop(self) -> None:
        """Interrupt running work, stop threads. Called once at shutdown."""

    # --- graph surface -------------------------------------------------------------------------
    def object_info(self) -> dict[str, Any]:
        """ComfyUI /object_info for every node; combos list the store's current files."""

    def list_models(self, folder: str) -> list[str] | None:
        """Relative file names in a model folder key (None = unknown folder)."""

    def model_folders(self) -> dict[str, list[str]]:
        """folder key -> absolute directories searched for it."""

    def convert_workflow(self, workflow: dict[str, Any]) -> dict[str, Any]:
        """UI-format workflow -> API-format prompt (raises GraphValidationError)."""

    # --- queue -----------------------------------------------------------------------------------
    def submit(self, request: PromptRequest) -> SubmitResult:
        """Validate and queue. Raises GraphValidationError (-> 400), DuplicatePromptError (-> 409),
        BackPressureError (-> 429)."""

    def queue_remaining(self) -> int:
        """Pending + running prompts."""

    def queue_items(self) -> tuple[list[PromptRecord], list[PromptRecord]]:
        """(running, pending), pending in run order."""

    def delete_queued(self, prompt_ids: list[str]) -> None: ...

    def clear_queue(self) -> None: ...

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it is `prompt_id` when given); True if one was."""

    def cancel(self, prompt_id: str) -> bool:
        """Interrupt if running, dequeue if pending; True if anything changed."""

    def free(self, unload_models: bool, free_memory: bool) -> None: ...

    # --- history ---------------------------------------------------------------------------------
    def history(self) -> list[PromptRecord]:
        """Finished prompts, oldest first."""

    def record(self, prompt_id: str) -> PromptRecord | None:
        """A pending, running or finished prompt."""

    def delete_history(self, prompt_ids: list[str]) -> None: ...

    def clear_history(self) -> None: ...

    # --- events ------------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Subscribe to every event; returns the unsubscribe function."""

    def set_preview_audience(self, audience: Callable[[str], bool] | None) -> None:
        """Who would see a live preview: client id -> True if a socket would receive it.
        Previews nobody receives are not rendered (a JPEG per preview, on the sampling thread).
        None (the default): always render, for in-process listeners."""

    def services_report(self) -> dict[str, Any]:
        """GET /lego/services: services, replicas, resident bytes, queue depths, batching."""

    def running_node(self, client_id: str) -> tuple[str, str] | None:
        """(prompt_id, node_id) currently executing for this client, for reconnects."""
