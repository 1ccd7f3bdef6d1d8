"""The prompt database on its own: what a restarted server reads back is what was written, the
history stays bounded oldest-first on disk, and the file is refused when it cannot be trusted."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lego_backend.runtime import events as ev
from lego_backend.runtime.history import PromptHistory
from lego_backend.runtime.records import PromptRecord
from lego_backend.storage.prompt_db import PromptStore, PromptStoreError
from lego_backend.storage.recovery import RESTART_ERROR, mark_failed, plan_recovery

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}


def record(pid: str, number: float, **extra: object) -> PromptRecord:
    return PromptRecord(pid, number, GRAPH, {"client_id": "c1", **extra}, ["9"],
                        create_time=1000 + int(number))


def finish(store: PromptStore, rec: PromptRecord, status: str = "success", keep: int = 100):
    rec.status = status  # type: ignore[assignment]
    rec.start_time, rec.end_time = 2000, 3000
    rec.outputs = {"9": {"images": [{"filename": f"{rec.prompt_id}_00001_.png",
                                     "subfolder": "", "type": "output"}]}}
    rec.messages = [ev.ExecutionStart(rec.prompt_id, "c1", timestamp=5),
                    ev.ExecutionCached(rec.prompt_id, "c1", nodes=("4", "6"), timestamp=6),
                    ev.ExecutionError(rec.prompt_id, "c1", node_id="3", node_type="KSampler",
                                      executed=("4",), exception_message="boom",
                                      exception_type="RuntimeError", traceback=("a", "b"),
                                      current_inputs={"seed": [1]}, timestamp=7)]
    store.finish(rec, keep)


def test_a_finished_record_reads_back_equal_after_reopening(tmp_path: Path) -> None:
    store = PromptStore.in_dir(tmp_path)
    assert store.journal_mode == "wal"
    rec = record("a", 1, extra_pnginfo={"workflow": {"id": "w"}}, api_key_comfy_org="secret")
    store.add(rec)
    finish(store, rec, "error")
    store.close()

    again = PromptStore.in_dir(tmp_path)
    [back] = again.finished(10)
    assert back.prompt_id == "a" and back.status == "error" and back.number == 1.0
    assert back.prompt == GRAPH and back.outputs == rec.outputs
    assert back.outputs_to_execute == ["9"] and back.client_id == "c1"
    assert (back.create_time, back.start_time, back.end_time) == (1001, 2000, 3000)
    assert back.messages == rec.messages  # typed events, tuples and all
    assert back.extra_data["extra_pnginfo"] == {"workflow": {"id": "w"}}
    assert "api_key_comfy_org" not in back.extra_data  # credentials never reach the disk
    assert b"secret" not in (tmp_path / "lego.db").read_bytes()
    assert again.unfinished() == []


def test_unfinished_prompts_come_back_in_queue_order_with_their_attempts(tmp_path: Path) -> None:
    store = PromptStore.in_dir(tmp_path)
    for pid, number in (("q1", 1), ("r", 2), ("q3", 3), ("front", -4), ("tie", 3)):
        store.add(record(pid, number))
    store.started("r", 1234)
    done = record("d", 0)
    store.add(done)
    finish(store, done)
    store.delete(["q3"], finished=True)  # a history delete does not touch a queued prompt
    store.delete(["q1"], finished=False)  # a queue delete removes it
    store.close()

    left = PromptStore.in_dir(tmp_path).unfinished()
    assert [u.record.prompt_id for u in left] == ["front", "r", "q3", "tie"]
    assert [u.attempts for u in left] == [0, 1, 0, 0]
    assert left[1].record.status == "running" and left[1].record.start_time == 1234


def test_requeue_after_a_clean_shutdown_does_not_count_as_an_attempt(tmp_path: Path) -> None:
    store = PromptStore.in_dir(tmp_path)
    store.add(record("a", 1))
    store.started("a", 1)
    store.requeue("a")
    [left] = store.unfinished()
    assert (left.record.status, left.attempts, left.record.start_time) == ("pending", 0, None)


def test_history_is_bounded_oldest_first_in_memory_and_on_disk(tmp_path: Path) -> None:
    store = PromptStore.in_dir(tmp_path)
    history = PromptHistory(3, store)
    for i in range(5):
        rec = record(f"p{i}", i)
        store.add(rec)
        rec.status = "success"
        history.add(rec)
    assert [r.prompt_id for r in history.all()] == ["p2", "p3", "p4"]
    store.close()

    reopened = PromptStore.in_dir(tmp_path)
    assert reopened.count() == {"success": 3}
    assert [r.prompt_id for r in PromptHistory(3, reopened).all()] == ["p2", "p3", "p4"]
    assert [r.prompt_id for r in PromptHistory(2, reopened).all()] == ["p3", "p4"]
    history = PromptHistory(3, reopened)
    history.delete(["p3"])
    assert [r.prompt_id for r in PromptStore.in_dir(tmp_path).finished(10)] == ["p2", "p4"]
    history.clear()
    assert PromptStore.in_dir(tmp_path).count() == {}


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    PromptStore.in_dir(tmp_path).close()
    with sqlite3.connect(tmp_path / "lego.db") as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(PromptStoreError, match="newer"):
        PromptStore.in_dir(tmp_path)


def test_only_one_live_process_may_claim_a_data_dir(tmp_path: Path) -> None:
    store = PromptStore.in_dir(tmp_path)
    store.claim()
    code = ("import sys; from pathlib import Path\n"
            "from lego_backend.storage.prompt_db import PromptStore, PromptStoreError\n"
            "s = PromptStore.in_dir(Path(sys.argv[1]))\n"
            "try:\n    s.claim()\nexcept PromptStoreError as e:\n    print(e); sys.exit(3)\n")
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                           text=True, timeout=60, check=False)
    assert other.returncode == 3, other.stderr
    assert "another lego server" in other.stdout
    store.close()  # released: the next server may take it
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                          timeout=60, check=False).returncode == 0


def test_recovery_requeues_or_fails_with_the_reason(tmp_path: Path) -> None:
    store = PromptStore.in_dir(tmp_path)
    for pid, number in (("run", 1), ("wait", 2), ("crashy", 3)):
        store.add(record(pid, number))
    store.started("run", 1)
    for _ in range(3):
        store.started("crashy", 1)  # the server died three times while running it
    left = store.unfinished()

    plan = plan_recovery(left, "requeue", max_retries=2)
    assert [r.prompt_id for r in plan.requeue] == ["run", "wait"]
    assert all(r.status == "pending" and r.start_time is None for r in plan.requeue)
    [(crashy, why)] = plan.failed
    assert crashy.prompt_id == "crashy" and "3 times" in why and "max retries 2" in why

    failed = plan_recovery(store.unfinished(), "fail", max_retries=2).failed
    reasons = {r.prompt_id: why for r, why in failed}
    assert reasons["run"] == "server restarted while the prompt was running"
    assert reasons["wait"] == "server restarted while the prompt was queued"
    rec = mark_failed(failed[0][0], failed[0][1])
    [err] = [m for m in rec.messages if isinstance(m, ev.ExecutionError)]
    assert rec.status == "error" and err.exception_type == RESTART_ERROR
    with pytest.raises(ValueError):
        plan_recovery(left, "retry-forever", 2)
