"""Typed progress events, produced by the runtime and consumed by whoever listens (the websocket
fan-out in comfy_compat/ws.py, the CLI's progress bars). They know nothing about ComfyUI JSON:
comfy_compat/messages.py renders them. Every event names its prompt and the client that asked."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Event:
    prompt_id: str  # the prompt this event belongs to ("" for queue-wide events)
    client_id: str | None  # the websocket sid that submitted it; None = nobody listens


@dataclass(frozen=True)
class ExecutionStart(Event):
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionCached(Event):
    nodes: tuple[str, ...] = ()  # node ids whose outputs came from the cache
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class Executing(Event):
    node: str = ""  # node id now running (not sent for cache hits)
    display_node: str = ""  # node the editor highlights (parent for expanded nodes)


@dataclass(frozen=True)
class Progress(Event):
    node: str = ""
    value: int = 0  # steps done
    max: int = 0  # steps in all


@dataclass(frozen=True)
class NodeStateChange(Event):
    """Snapshot of every started node's state, sent on each node start/update/finish."""

    nodes: tuple[tuple[str, str, int, int], ...] = ()  # (node_id, state, value, max)


@dataclass(frozen=True)
class Preview(Event):
    node: str = ""
    image_format: str = "jpeg"  # "jpeg" | "png"
    data: bytes = b""  # encoded image bytes


@dataclass(frozen=True)
class Executed(Event):
    node: str = ""
    display_node: str = ""
    output: dict[str, Any] | None = None  # the node's ui dict, e.g. {"images": [...]}


@dataclass(frozen=True)
class ExecutionSuccess(Event):
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionError(Event):
    node_id: str = ""
    node_type: str = ""
    executed: tuple[str, ...] = ()
    exception_message: str = ""
    exception_type: str = ""
    traceback: tuple[str, ...] = ()
    current_inputs: dict[str, Any] = field(default_factory=dict)
    current_outputs: tuple[str, ...] = ()
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class ExecutionInterrupted(Event):
    """Broadcast to every client, as ComfyUI does."""

    node_id: str | None = None
    node_type: str | None = None
    executed: tuple[str, ...] = ()
    timestamp: int = field(default_factory=now_ms)


@dataclass(frozen=True)
class PromptDone(Event):
    """The history entry is written: ComfyUI's `executing {node: null}`."""


@dataclass(frozen=True)
class QueueStatus(Event):
    """Broadcast after every queue put/get/done/delete."""

    queue_remaining: int = 0
