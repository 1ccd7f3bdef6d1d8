"""Issue 9.1: a `lego serve` killed with SIGKILL mid-run and started again with the same folders
keeps its finished history, runs the prompts that were queued or running (same prompt ids), and
never overwrites or truncates an output file."""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.integration.server.live import txt2img
from tests.integration.server.serve_process import ServeProcess, wait_for

pytestmark = pytest.mark.slow

STEPS = 30  # long enough (at 64 px) that prompts are still queued/running at the kill


def _history(http: httpx.Client) -> dict[str, dict]:
    return http.get("/history").json()


def _files(output: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in output.glob("*.png")}


def _valid_png(path: Path) -> None:
    with Image.open(path) as im:
        im.verify()  # checks every chunk's CRC: a truncated file fails here
    with Image.open(path) as im:
        im.load()
        assert im.size == (64, 64)


def _files_of(entry: dict) -> list[str]:
    return [img["filename"] for ui in entry["outputs"].values() for img in ui["images"]]


def test_kill_9_mid_run_then_restart_keeps_history_and_finishes_the_rest(tmp_path, demo_models):
    server = ServeProcess(tmp_path, demo_models, "--max-concurrent", "2")
    http = httpx.Client()
    try:
        http = server.start()
        ids = [str(uuid.uuid4()) for _ in range(5)]
        numbers = {}
        for i, pid in enumerate(ids):
            body = {"prompt": txt2img(seed=100 + i, steps=STEPS, prefix="dur"),
                    "prompt_id": pid, "client_id": "durability"}
            reply = http.post("/prompt", json=body)
            assert reply.status_code == 200, reply.text
            numbers[pid] = reply.json()["number"]

        # Let some finish, then kill while others are running and queued.
        wait_for(lambda: len(_history(http)) >= 1, 120, "a finished prompt")
        before = _history(http)
        queue = http.get("/queue").json()
        files_before = _files(server.output)
        server.kill9()
        http.close()
        left = {item[1] for item in queue["queue_running"] + queue["queue_pending"]}
        assert left, "nothing was left to recover: the kill came too late"
        assert all(before[pid]["status"]["status_str"] == "success" for pid in before)
        assert files_before and all(_files_of(before[pid])[0] in files_before for pid in before)

        http = server.start()
        after_start = http.get("/queue").json()
        waiting = {item[1] for item in after_start["queue_running"] + after_start["queue_pending"]}
        history_now = _history(http)
        assert set(before) <= set(history_now)  # finished history survived the kill
        assert waiting | set(history_now) == set(ids)  # nothing lost, nothing invented
        assert not set(before) & waiting

        def all_done() -> dict | None:
            history = _history(http)
            return history if len(history) == len(ids) else None

        final = wait_for(all_done, 180, "every prompt to finish after the restart")
        for pid in ids:
            entry = final[pid]
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert entry["prompt"][0] == numbers[pid]  # its queue number is kept
            [name] = _files_of(entry)
            _valid_png(server.output / name)
        for pid in before:  # entries from before the kill: unchanged
            assert final[pid]["outputs"] == before[pid]["outputs"]
            assert final[pid]["status"] == before[pid]["status"]
        files_after = _files(server.output)
        for name, digest in files_before.items():  # never overwritten nor truncated
            assert files_after[name] == digest, name
        names = [_files_of(final[pid])[0] for pid in ids]
        assert len(set(names)) == len(ids)  # one file per prompt, no two share a name
    finally:
        http.close()
        server.stop()
