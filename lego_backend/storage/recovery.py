"""What happens, at start, to prompts a previous server process left queued or running (it was
killed, crashed or lost power): re-queue them in their queue order, or record them as failed with
the reason. Pure policy; the Backend does the queueing."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRecord
from lego_backend.storage.prompt_db import Unfinished

ON_RESTART = ("requeue", "fail")
RESTART_ERROR = "ServerRestarted"  # exception_type of the execution_error such prompts get


@dataclass
class Recovery:
    requeue: list[PromptRecord] = field(default_factory=list)  # queue order, reset to pending
    failed: list[tuple[PromptRecord, str]] = field(default_factory=list)  # (record, reason)


def plan_recovery(left: list[Unfinished], on_restart: str, max_retries: int) -> Recovery:
    """`left` in queue order (PromptStore.unfinished). A prompt whose execution was cut short more
    than `max_retries` times fails even under requeue: a prompt that takes the server down
    every time must not take it down forever."""
    if on_restart not in ON_RESTART:
        raise ValueError(f"on_restart must be one of {ON_RESTART}, got {on_restart!r}")
    out = Recovery()
    for item in left:
        record = item.record
        was = "running" if record.status == "running" else "queued"
        if on_restart == "fail":
            out.failed.append((record, f"server restarted while the prompt was {was}"))
        elif item.attempts > max_retries:
            reason = (f"server restarted while the prompt was running, {item.attempts} "
                      f"times; not retried again (max retries {max_retries})")
            out.failed.append((record, reason))
        else:
            record.status = "pending"
            record.start_time = None
            out.requeue.append(record)
    return out


def mark_failed(record: PromptRecord, reason: str) -> PromptRecord:
    """Record a prompt that will not run as failed, with `reason` as its execution_error."""
    record.status = "error"
    record.end_time = int(time.time() * 1000)
    record.messages.append(ev.ExecutionError(record.prompt_id, record.client_id,
                                             exception_message=reason,
                                             exception_type=RESTART_ERROR))
    return record
