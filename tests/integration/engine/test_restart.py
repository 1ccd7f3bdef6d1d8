"""A Backend started on the data dir of one that went away (crashed, or stopped cleanly) picks
up its history and its unfinished prompts: re-queued and run, or failed with the reason
(`on_restart="fail"`, too many cut-short attempts, a model file that is gone). The real kill -9
of a `lego serve` is tests/integration/server/test_durability.py."""
from __future__ import annotations

import copy
import dataclasses
import shutil
import threading
from pathlib import Path

import pytest

from comfy_compat.routes.history import history_entry
from lego_backend.backend import Backend
from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRecord, PromptRequest
from lego_backend.storage.recovery import RESTART_ERROR
from tests.integration.engine.helpers import make_backend, output_files, run, txt2img

pytestmark = pytest.mark.slow


def _again(old: Backend, **changes: object) -> Backend:
    """A new server process on the same folders (the old one is simply abandoned: crashed)."""
    return Backend(dataclasses.replace(old.config, **changes))


def _submit(backend: Backend, prompt: dict, pid: str | None = None) -> str:
    return backend.submit(PromptRequest(copy.deepcopy(prompt), client_id="c",
                                        prompt_id=pid)).prompt_id


def _wait_all(backend: Backend, ids: list[str], timeout_s: float = 120) -> list[PromptRecord]:
    done = threading.Event()

    def check(event: ev.Event) -> None:
        if isinstance(event, ev.PromptDone) and all(backend._history.get(p) for p in ids):
            done.set()
    remove = backend.add_listener(check)
    try:
        if not all(backend._history.get(p) for p in ids):
            assert done.wait(timeout_s), "prompts did not finish"
    finally:
        remove()
    return [backend.record(p) for p in ids]  # type: ignore[misc]


def _error(record: PromptRecord) -> ev.ExecutionError:
    [err] = [m for m in record.messages if isinstance(m, ev.ExecutionError)]
    return err


def test_prompts_left_queued_and_running_are_requeued_and_run(tmp_path, demo_models):
    first = make_backend(tmp_path, demo_models)
    finished, _ = run(first, txt2img(seed=1, steps=2))
    queued = [_submit(first, txt2img(seed=s, steps=2)) for s in (2, 3, 4)]
    first._store.started(queued[1], 1)  # as a runner would, then the crash
    numbers = [first.record(p).number for p in queued]

    second = _again(first, max_concurrent_prompts=1)  # one at a time: the run order shows
    try:
        assert [r.prompt_id for r in second.history()] == [finished.prompt_id]
        second.start()
        records = _wait_all(second, queued)
        assert [r.status for r in records] == ["success"] * 3
        assert [r.number for r in records] == numbers  # same ids, same queue numbers
        assert all(output_files(second, r)[0].is_file() for r in records)
        order = [r.prompt_id for r in sorted(records, key=lambda r: r.start_time or 0)]
        assert order == queued  # queue order, the one that was running included
        later = second.submit(PromptRequest(txt2img(seed=9, steps=2), client_id="c"))
        assert later.number > max(numbers)  # numbering continues past the old prompts
    finally:
        second.stop()


def test_on_restart_fail_records_the_reason(tmp_path, demo_models):
    first = make_backend(tmp_path, demo_models)
    waiting, running = (_submit(first, txt2img(seed=s, steps=2)) for s in (1, 2))
    first._store.started(running, 1)

    second = _again(first, on_restart="fail")
    try:
        second.start()
        assert second.queue_remaining() == 0
        by_id = {r.prompt_id: r for r in second.history()}
        assert _error(by_id[waiting]).exception_message == \
            "server restarted while the prompt was queued"
        assert _error(by_id[running]).exception_message == \
            "server restarted while the prompt was running"
        assert _error(by_id[running]).exception_type == RESTART_ERROR
        entry = history_entry(by_id[running])  # what GET /history shows
        assert entry["status"]["status_str"] == "error"
        [[kind, data]] = entry["status"]["messages"]
        assert kind == "execution_error" and "running" in data["exception_message"]
    finally:
        second.stop()
    third = _again(second)  # and the failures are history now, not re-run again
    assert {r.prompt_id for r in third.history()} == {waiting, running}
    assert third._store.unfinished() == []


def test_a_prompt_that_keeps_taking_the_server_down_is_not_retried_forever(tmp_path,
                                                                              demo_models):
    first = make_backend(tmp_path, demo_models)
    pid = _submit(first, txt2img(seed=1, steps=2))
    for _ in range(2):  # started twice, each time the server died under it
        first._store.started(pid, 1)
    second = _again(first, max_retries=1)
    try:
        second.start()
        record = second.record(pid)
        assert record is not None and record.status == "error"
        message = _error(record).exception_message
        assert "2 times" in message and "max retries 1" in message
    finally:
        second.stop()


def test_a_requeued_prompt_whose_model_is_gone_fails_with_the_reason(tmp_path, demo_models):
    models = tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    ckpt = "lego-demo-sd15.safetensors"
    shutil.copyfile(demo_models / "checkpoints" / ckpt, models / "checkpoints" / ckpt)
    first = make_backend(tmp_path, models)
    pid = _submit(first, txt2img(seed=1, steps=2))
    (models / "checkpoints" / ckpt).unlink()
    second = _again(first)
    try:
        second.start()
        record = second.record(pid)
        assert record is not None and record.status == "error"
        message = _error(record).exception_message
        assert message.startswith("cannot run after the restart") and ckpt in message
    finally:
        second.stop()


def test_a_clean_stop_keeps_the_queue_for_the_next_start(tmp_path, demo_models):
    first = make_backend(tmp_path, demo_models)
    first.start()
    started = threading.Event()
    first.add_listener(lambda e: started.set()
                       if isinstance(e, ev.Progress) and e.prompt_id == slow else None)
    slow = _submit(first, txt2img(seed=1, steps=60))  # interrupted by the stop
    rest = [_submit(first, txt2img(seed=s, steps=2)) for s in (2, 3, 4, 5, 6)]
    assert started.wait(60)
    first.stop()
    assert first.record(slow) is None  # not in the history: back in the queue

    second = _again(first)
    try:
        left = second._store.unfinished()
        ids = [u.record.prompt_id for u in left]
        assert slow in ids and set(ids) <= {slow, *rest}
        assert all(u.attempts == 0 for u in left)  # a clean stop is not a failed attempt
        second.start()
        assert all(r.status == "success" for r in _wait_all(second, ids))
    finally:
        second.stop()


def test_lego_run_config_keeps_nothing_on_disk(tmp_path: Path, demo_models):
    from lego_backend.cli import _config, build_parser

    args = build_parser().parse_args(["run", "wf.json", "--models", str(demo_models)])
    assert _config(args).durable is False
    args = build_parser().parse_args(["serve", "--history-max", "7", "--on-restart", "fail",
                                      "--max-retries", "5"])
    config = _config(args)
    assert (config.durable, config.history_max, config.on_restart, config.max_retries) == \
        (True, 7, "fail", 5)
