"""Typed backend events -> ComfyUI websocket messages.

JSON messages are `{"type": T, "data": {...}}`. Previews are binary frames (big-endian):
type 1 `[u32 1][u32 format][image]` (format 1 = JPEG, 2 = PNG) for clients that did not announce
`supports_preview_metadata`, type 4 `[u32 4][u32 json_len][json][image]` for those that did.
The same rendering feeds /history `status.messages` (`[[type, data], ...]`)."""
from __future__ import annotations

import struct
from typing import Any

from comfy_compat.jsonresp import dumps
from lego_backend.runtime import events as ev

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_FORMATS = {"jpeg": 1, "png": 2}
_MIME = {"jpeg": "image/jpeg", "png": "image/png"}

Message = dict[str, Any]


def status_message(queue_remaining: int, sid: str | None = None) -> Message:
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return {"type": "status", "data": data}


def executing_message(prompt_id: str, node: str | None, display_node: str | None = None) -> Message:
    data: dict[str, Any] = {"node": node}
    if node is not None:
        data["display_node"] = display_node or node
    data["prompt_id"] = prompt_id
    return {"type": "executing", "data": data}


def _node_state(prompt_id: str, node_id: str, state: str, value: int, max_: int) -> dict[str, Any]:
    return {"value": value, "max": max_, "state": state, "node_id": node_id,
            "prompt_id": prompt_id, "display_node_id": node_id, "parent_node_id": None,
            "real_node_id": node_id}


def render(event: ev.Event) -> Message | None:
    """The JSON message for `event`, or None for events that are not JSON (previews)."""
    pid = event.prompt_id
    if isinstance(event, ev.QueueStatus):
        return status_message(event.queue_remaining)
    if isinstance(event, ev.ExecutionStart):
        return {"type": "execution_start", "data": {"prompt_id": pid, "timestamp": event.timestamp}}
    if isinstance(event, ev.ExecutionCached):
        return {"type": "execution_cached",
                "data": {"nodes": list(event.nodes), "prompt_id": pid,
                         "timestamp": event.timestamp}}
    if isinstance(event, ev.NodeStateChange):
        nodes = {nid: _node_state(pid, nid, state, value, max_)
                 for nid, state, value, max_ in event.nodes}
        return {"type": "progress_state", "data": {"prompt_id": pid, "nodes": nodes}}
    if isinstance(event, ev.Executing):
        return executing_message(pid, event.node, event.display_node)
    if isinstance(event, ev.Progress):
        return {"type": "progress", "data": {"value": event.value, "max": event.max,
                                             "prompt_id": pid, "node": event.node}}
    if isinstance(event, ev.Executed):
        return {"type": "executed",
                "data": {"node": event.node, "display_node": event.display_node or event.node,
                         "output": event.output, "prompt_id": pid}}
    if isinstance(event, ev.ExecutionSuccess):
        return {"type": "execution_success", "data": {"prompt_id": pid,
                                                      "timestamp": event.timestamp}}
    if isinstance(event, ev.ExecutionError):
        return {"type": "execution_error", "data": {
            "prompt_id": pid, "node_id": event.node_id, "node_type": event.node_type,
            "executed": list(event.executed), "exception_message": event.exception_message,
            "exception_type": event.exception_type, "traceback": list(event.traceback),
            "current_inputs": event.current_inputs,
            "current_outputs": list(event.current_outputs), "timestamp": event.timestamp}}
    if isinstance(event, ev.ExecutionInterrupted):
        return {"type": "execution_interrupted", "data": {
            "prompt_id": pid, "node_id": event.node_id, "node_type": event.node_type,
            "executed": list(event.executed), "timestamp": event.timestamp}}
    if isinstance(event, ev.PromptDone):
        return executing_message(pid, None)
    return None


def is_broadcast(event: ev.Event) -> bool:
    """Sent to every socket (ComfyUI broadcasts these); everything else only to its client."""
    return isinstance(event, (ev.QueueStatus, ev.ExecutionInterrupted))


def preview_frame(event: ev.Preview, with_metadata: bool) -> bytes:
    fmt = event.image_format if event.image_format in _FORMATS else "jpeg"
    if not with_metadata:
        return struct.pack(">II", PREVIEW_IMAGE, _FORMATS[fmt]) + event.data
    meta = dumps({"node_id": event.node, "prompt_id": event.prompt_id,
                  "display_node_id": event.node, "parent_node_id": None,
                  "real_node_id": event.node, "image_type": _MIME[fmt]})
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + event.data


def history_messages(events: list[ev.Event]) -> list[list[Any]]:
    """A record's status messages as /history renders them: [[type, data], ...]."""
    out: list[list[Any]] = []
    for event in events:
        msg = render(event)
        if msg is not None:
            out.append([msg["type"], msg["data"]])
    return out
