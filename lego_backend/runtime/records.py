"""Boundary structs between the protocol edge and the backend's queue/history. No logic."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lego_backend.errors import NodeValidationErrors
from lego_backend.runtime.events import Event

PromptStatus = Literal["pending", "running", "success", "error", "interrupted"]


@dataclass
class PromptRequest:
    """A prompt as a client submitted it (API format; UI format is converted before)."""

    prompt: dict[str, Any]  # API-format graph: {node_id: {class_type, inputs, _meta}}
    client_id: str | None = None  # websocket sid that receives this prompt's events
    extra_data: dict[str, Any] = field(default_factory=dict)  # extra_pnginfo, preview_method...
    prompt_id: str | None = None  # client-chosen id; None = server mints a uuid4
    number: float | None = None  # explicit priority (lower runs first)
    front: bool = False  # queue at the front (negative number)
    partial_execution_targets: list[str] | None = None  # only these output nodes


@dataclass
class SubmitResult:
    prompt_id: str
    number: float
    # Problems of outputs that were dropped while others stayed valid (ComfyUI replies 200 with them).
    node_errors: dict[str, NodeValidationErrors] = field(default_factory=dict)


@dataclass
class PromptRecord:
    """Everything known about one prompt: queue item, status, outputs and status messages."""

    prompt_id: str
    number: float
    prompt: dict[str, Any]  # the validated API prompt (widget values coerced)
    extra_data: dict[str, Any]  # includes client_id and create_time (ms)
    outputs_to_execute: list[str]  # output node ids that run
    status: PromptStatus = "pending"
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # node_id -> ui dict
    messages: list[Event] = field(default_factory=list)  # start, cached, success|error|interrupted
    create_time: int = 0  # ms epoch
    start_time: int | None = None  # ms epoch, set when execution starts
    end_time: int | None = None  # ms epoch, set when it ends

    @property
    def client_id(self) -> str | None:
        return self.extra_data.get("client_id")
