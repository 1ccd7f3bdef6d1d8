"""PromptRecord and its status messages <-> JSON-safe values, for the prompt database. Only the
events a record keeps (execution start/cached/success/error/interrupted) are stored; an unknown
event type in an old or newer database is skipped, never an error."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRecord

# Credentials a client may put in extra_data: kept in memory for the run, never written to disk.
SECRET_EXTRA = ("auth_token_comfy_org", "api_key_comfy_org")

_EVENTS: dict[str, type[ev.Event]] = {cls.__name__: cls for cls in (
    ev.ExecutionStart, ev.ExecutionCached, ev.ExecutionSuccess, ev.ExecutionError,
    ev.ExecutionInterrupted)}


def dumps(value: Any) -> str:
    # default=str: a coerced widget value that is not plain JSON must not lose the whole record
    return json.dumps(value, separators=(",", ":"), default=str)


def event_to_json(event: ev.Event) -> dict[str, Any] | None:
    name = type(event).__name__
    if name not in _EVENTS:
        return None
    return {"type": name, **dataclasses.asdict(event)}


def event_from_json(data: dict[str, Any]) -> ev.Event | None:
    cls = _EVENTS.get(str(data.get("type")))
    if cls is None:
        return None
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        # JSON has no tuples; the dataclasses declare them (annotations are strings here).
        if isinstance(value, list) and str(f.type).startswith("tuple"):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def public_extra(extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if k not in SECRET_EXTRA}


def messages_to_json(messages: list[ev.Event]) -> str:
    return dumps([m for m in (event_to_json(e) for e in messages) if m is not None])


def messages_from_json(text: str) -> list[ev.Event]:
    out = []
    for item in json.loads(text or "[]"):
        event = event_from_json(item) if isinstance(item, dict) else None
        if event is not None:
            out.append(event)
    return out


def record_from_row(row: Any) -> PromptRecord:
    """A `prompts` table row (sqlite3.Row) -> PromptRecord."""
    return PromptRecord(
        prompt_id=row["prompt_id"], number=float(row["number"]),
        prompt=json.loads(row["prompt"]), extra_data=json.loads(row["extra_data"]),
        outputs_to_execute=json.loads(row["outputs_to_execute"]), status=row["status"],
        outputs=json.loads(row["outputs"]), messages=messages_from_json(row["messages"]),
        create_time=int(row["create_time"] or 0), start_time=row["start_time"],
        end_time=row["end_time"])
