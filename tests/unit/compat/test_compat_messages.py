"""Event -> ComfyUI message rendering, binary preview frames, error shapes."""
from __future__ import annotations

import json
import struct

from comfy_compat import messages
from comfy_compat.errors import render_node_errors, render_validation_error
from lego_backend.errors import GraphValidationError, NodeValidationErrors, ValidationReason
from lego_backend.runtime import events as ev

P, C = "pid-1", "client-1"


def test_json_messages():
    assert messages.render(ev.ExecutionStart(P, C, timestamp=5)) == {
        "type": "execution_start", "data": {"prompt_id": P, "timestamp": 5}}
    assert messages.render(ev.ExecutionCached(P, C, nodes=("4", "5"), timestamp=6)) == {
        "type": "execution_cached", "data": {"nodes": ["4", "5"], "prompt_id": P, "timestamp": 6}}
    assert messages.render(ev.Executing(P, C, node="3", display_node="3")) == {
        "type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": P}}
    assert messages.render(ev.Progress(P, C, node="3", value=2, max=9)) == {
        "type": "progress", "data": {"value": 2, "max": 9, "prompt_id": P, "node": "3"}}
    state = messages.render(ev.NodeStateChange(P, C, nodes=(("3", "running", 2, 9),)))
    assert state == {"type": "progress_state", "data": {"prompt_id": P, "nodes": {"3": {
        "value": 2, "max": 9, "state": "running", "node_id": "3", "prompt_id": P,
        "display_node_id": "3", "parent_node_id": None, "real_node_id": "3"}}}}
    ui = {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}
    assert messages.render(ev.Executed(P, C, node="9", output=ui)) == {
        "type": "executed", "data": {"node": "9", "display_node": "9", "output": ui,
                                     "prompt_id": P}}
    assert messages.render(ev.ExecutionSuccess(P, C, timestamp=7)) == {
        "type": "execution_success", "data": {"prompt_id": P, "timestamp": 7}}
    err = messages.render(ev.ExecutionError(
        P, C, node_id="3", node_type="KSampler", executed=("4",), exception_message="boom",
        exception_type="ValueError", traceback=("tb",), current_inputs={"seed": [1]},
        current_outputs=("4",), timestamp=8))
    assert err == {"type": "execution_error", "data": {
        "prompt_id": P, "node_id": "3", "node_type": "KSampler", "executed": ["4"],
        "exception_message": "boom", "exception_type": "ValueError", "traceback": ["tb"],
        "current_inputs": {"seed": [1]}, "current_outputs": ["4"], "timestamp": 8}}
    assert messages.render(ev.ExecutionInterrupted(P, C, node_id="3", node_type="KSampler",
                                                   timestamp=9)) == {
        "type": "execution_interrupted", "data": {"prompt_id": P, "node_id": "3",
                                                  "node_type": "KSampler", "executed": [],
                                                  "timestamp": 9}}
    assert messages.render(ev.PromptDone(P, C)) == {
        "type": "executing", "data": {"node": None, "prompt_id": P}}
    assert messages.render(ev.QueueStatus("", None, queue_remaining=3)) == {
        "type": "status", "data": {"status": {"exec_info": {"queue_remaining": 3}}}}
    assert messages.render(ev.Preview(P, C, node="3", data=b"x")) is None


def test_broadcast_kinds():
    assert messages.is_broadcast(ev.QueueStatus("", None))
    assert messages.is_broadcast(ev.ExecutionInterrupted(P, C))
    assert not messages.is_broadcast(ev.Progress(P, C))
    assert not messages.is_broadcast(ev.ExecutionError(P, C))


def test_preview_frames():
    jpeg = b"\xff\xd8\xff\xe0fake"
    legacy = messages.preview_frame(ev.Preview(P, C, node="3", data=jpeg), with_metadata=False)
    assert legacy == struct.pack(">II", 1, 1) + jpeg
    png = messages.preview_frame(ev.Preview(P, C, node="3", image_format="png", data=b"P"), False)
    assert png[:8] == struct.pack(">II", 1, 2)
    framed = messages.preview_frame(ev.Preview(P, C, node="3", data=jpeg), with_metadata=True)
    kind, length = struct.unpack(">II", framed[:8])
    meta = json.loads(framed[8:8 + length])
    assert kind == 4 and framed[8 + length:] == jpeg
    assert meta == {"node_id": "3", "prompt_id": P, "display_node_id": "3",
                    "parent_node_id": None, "real_node_id": "3", "image_type": "image/jpeg"}


def test_history_messages():
    out = messages.history_messages([ev.ExecutionStart(P, C, timestamp=1),
                                     ev.ExecutionSuccess(P, C, timestamp=2)])
    assert out == [["execution_start", {"prompt_id": P, "timestamp": 1}],
                   ["execution_success", {"prompt_id": P, "timestamp": 2}]]


def test_validation_error_shape():
    reason = ValidationReason("value_smaller_than_min", "Value 0 smaller than min of 1", "steps",
                              {"input_name": "steps"})
    exc = GraphValidationError(
        ValidationReason("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                         "Value 0 smaller than min of 1: steps"),
        {"3": NodeValidationErrors("KSampler", [reason], ["9"])})
    assert render_validation_error(exc) == {
        "error": {"type": "prompt_outputs_failed_validation",
                  "message": "Prompt outputs failed validation",
                  "details": "Value 0 smaller than min of 1: steps", "extra_info": {}},
        "node_errors": {"3": {"errors": [reason.as_dict()], "dependent_outputs": ["9"],
                              "class_type": "KSampler"}}}
    assert render_node_errors({}) == {}
