"""Websocket protocol against a real server and the real backend: message order for a fresh and
a cached run, per-client routing, binary preview formats, interrupt broadcast, reconnects,
execution errors, and the /history + /api/jobs records those runs leave."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from comfy_compat.app import build_app
from lego_backend.runtime import events as ev
from tests.integration.server.conftest import make_config
from tests.integration.server.live import LiveServer, binary_type, json_types, txt2img

pytestmark = pytest.mark.slow


def _submit(srv: LiveServer, prompt: dict[str, Any], client_id: str, **extra: Any) -> str:
    r = srv.http.post("/api/prompt", json={"prompt": prompt, "client_id": client_id, **extra})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["node_errors"] == {} and isinstance(body["number"], (int, float))
    return str(body["prompt_id"])


def _of(frames: list[Any], type_: str, prompt_id: str) -> list[dict[str, Any]]:
    return [f for f in frames if isinstance(f, dict) and f["type"] == type_
            and f["data"].get("prompt_id") == prompt_id]


def test_fresh_then_cached_run_message_sequence(server: LiveServer, tmp_path):
    with server.ws("cli-a", preview_metadata=True) as ws:
        assert ws.first["data"]["sid"] == "cli-a"
        assert ws.first["data"]["status"]["exec_info"]["queue_remaining"] == 0
        assert ws.server_flags["supports_preview_metadata"] is True
        pid = _submit(server, txt2img(steps=3), ws.sid)
        frames = ws.until_done(pid)

        types = json_types(frames, pid)
        assert types[:2] == ["execution_start", "execution_cached"]
        assert types[-2:] == ["execution_success", "executing"]
        executing = [f["data"]["node"] for f in _of(frames, "executing", pid)]
        assert executing[-1] is None
        assert sorted(executing[:-1]) == ["3", "4", "5", "6", "7", "8", "9"]
        assert [(f["data"]["value"], f["data"]["max"], f["data"]["node"])
                for f in _of(frames, "progress", pid)] == [(1, 3, "3"), (2, 3, "3"), (3, 3, "3")]
        states = _of(frames, "progress_state", pid)
        assert states and states[-1]["data"]["nodes"]["3"]["state"] == "finished"
        assert set(states[-1]["data"]["nodes"]["3"]) >= {"value", "max", "state", "node_id",
                                                         "prompt_id", "display_node_id"}
        executed = _of(frames, "executed", pid)
        assert [f["data"]["node"] for f in executed] == ["9"]
        image = executed[0]["data"]["output"]["images"][0]
        assert image["type"] == "output" and image["filename"].endswith(".png")
        assert types.index("executed") > max(i for i, t in enumerate(types[:-1])
                                             if t == "executing")
        # status broadcasts reached this client (queue put/get/done)
        assert any(isinstance(f, dict) and f["type"] == "status" for f in frames)

        # /view returns exactly the saved file
        r = server.http.get("/api/view", params={"filename": image["filename"], "type": "output",
                                                 "subfolder": image["subfolder"]})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content == (tmp_path / "output" / image["subfolder"] / image["filename"]
                             ).read_bytes()

        # same graph again: everything cached, no node executes, the image is still reported
        pid2 = _submit(server, txt2img(steps=3), ws.sid)
        frames2 = ws.until_done(pid2)
        assert json_types(frames2, pid2) == ["execution_start", "execution_cached", "executed",
                                             "execution_success", "executing"]
        cached = _of(frames2, "execution_cached", pid2)[0]["data"]["nodes"]
        assert sorted(cached) == ["3", "4", "5", "6", "7", "8", "9"]
        assert _of(frames2, "executed", pid2)[0]["data"]["output"]["images"][0] == image

    hist = server.http.get(f"/history/{pid}").json()[pid]
    assert hist["prompt"][1] == pid and hist["prompt"][4] == ["9"]
    assert hist["prompt"][3]["client_id"] == "cli-a"
    assert hist["outputs"]["9"]["images"][0] == image
    assert hist["status"]["status_str"] == "success" and hist["status"]["completed"] is True
    assert [m[0] for m in hist["status"]["messages"]] == ["execution_start", "execution_cached",
                                                          "execution_success"]
    assert hist["meta"]["9"]["node_id"] == "9"
    assert list(server.http.get("/api/history").json()) == [pid, pid2]
    assert list(server.http.get("/history", params={"max_items": 1}).json()) == [pid2]

    jobs = server.http.get("/api/jobs", params={"status": "completed", "limit": 10}).json()
    assert [j["id"] for j in jobs["jobs"]] == [pid2, pid]  # newest first
    assert jobs["pagination"] == {"offset": 0, "limit": 10, "total": 2, "has_more": False}
    job = jobs["jobs"][1]
    assert job["outputs_count"] == 1 and job["previewable_outputs_count"] == 1
    assert job["preview_output"] == {**image, "nodeId": "9", "mediaType": "images"}
    assert job["execution_end_time"] >= job["execution_start_time"] >= job["create_time"]
    detail = server.http.get(f"/api/jobs/{pid}").json()
    assert detail["outputs"]["9"]["images"][0] == image
    assert detail["execution_status"]["status_str"] == "success"
    assert detail["workflow"]["prompt"]["3"]["class_type"] == "KSampler"


def test_two_clients_see_only_their_own_progress_and_preview_formats(server: LiveServer):
    with server.ws("meta", preview_metadata=True) as a, server.ws("legacy") as b:
        pid_a = _submit(server, txt2img(seed=1, steps=4), a.sid)
        pid_b = _submit(server, txt2img(seed=2, steps=4), b.sid)
        frames_a, frames_b = a.until_done(pid_a), b.until_done(pid_b)
        for frames, mine, other in ((frames_a, pid_a, pid_b), (frames_b, pid_b, pid_a)):
            assert json_types(frames, mine)[0] == "execution_start"
            assert json_types(frames, other) == []
            assert _of(frames, "progress", mine)

        previews_a = [f for f in frames_a if isinstance(f, bytes)]
        previews_b = [f for f in frames_b if isinstance(f, bytes)]
        assert previews_a and previews_b
        for frame in previews_a:  # type 4: [u32 4][u32 json_len][json][image]
            assert binary_type(frame) == 4
            (length,) = struct.unpack(">I", frame[4:8])
            meta = json.loads(frame[8:8 + length])
            assert meta["prompt_id"] == pid_a and meta["node_id"] == "3"
            assert meta["image_type"] in ("image/jpeg", "image/png")
            assert frame[8 + length:8 + length + 2] in (b"\xff\xd8", b"\x89P")
        for frame in previews_b:  # type 1: [u32 1][u32 format][image]
            assert binary_type(frame) == 1
            (fmt,) = struct.unpack(">I", frame[4:8])
            assert (fmt, frame[8:10]) in ((1, b"\xff\xd8"), (2, b"\x89P"))


def test_previews_are_rendered_only_for_clients_with_a_socket(tmp_path: Path,
                                                              demo_models: Path):
    """A headless client (no websocket) costs no preview rendering; a watching one gets them."""
    from lego_backend.backend import Backend

    backend = Backend(make_config(tmp_path, demo_models))
    rendered: list[str | None] = []
    with LiveServer(build_app(backend)) as server:
        backend.add_listener(
            lambda e: rendered.append(e.client_id) if isinstance(e, ev.Preview) else None)
        headless = _submit(server, txt2img(seed=3, steps=6), "headless")
        deadline = time.monotonic() + 60
        while headless not in server.http.get(f"/history/{headless}").json():
            assert time.monotonic() < deadline, "headless prompt did not finish"
            time.sleep(0.05)
        with server.ws("watcher") as ws:
            frames = ws.until_done(_submit(server, txt2img(seed=4, steps=6), ws.sid))
    assert "headless" not in rendered
    assert rendered.count("watcher") == len([f for f in frames if isinstance(f, bytes)]) >= 1


def test_interrupt_is_broadcast_and_reconnect_resumes_executing(server: LiveServer):
    with server.ws("watcher") as other:
        runner = server.ws("runner")
        pid = _submit(server, txt2img(seed=7, steps=400), runner.sid)
        runner.until(lambda f: isinstance(f, dict) and f["type"] == "progress"
                     and f["data"]["value"] >= 2)
        runner.close()
        # a reconnect with the same clientId is told which node is running
        with server.ws("runner") as again:
            assert again.first["data"]["sid"] == "runner"
            nxt = again.until(lambda f: isinstance(f, dict) and f["type"] == "executing")[-1]
            assert nxt["data"] == {"node": "3", "display_node": "3", "prompt_id": pid}
            queue = server.http.get("/api/queue").json()
            assert queue["queue_running"][0][1] == pid
            r = server.http.post("/api/interrupt", json={"prompt_id": pid})
            assert r.status_code == 200
            frames = again.until_done(pid)
            assert json_types(frames, pid)[-2:] == ["execution_interrupted", "executing"]
            intr = _of(frames, "execution_interrupted", pid)[0]["data"]
            assert intr["node_id"] == "3" and intr["node_type"] == "KSampler"
        # broadcast: the other client saw the interruption of a prompt that is not its own
        seen = other.until(lambda f: isinstance(f, dict)
                           and f["type"] == "execution_interrupted")
        assert seen[-1]["data"]["prompt_id"] == pid
        assert _of(seen, "progress", pid) == []

    hist = server.http.get(f"/api/history/{pid}").json()[pid]
    assert hist["status"]["status_str"] == "error" and hist["status"]["completed"] is False
    assert "execution_interrupted" in [m[0] for m in hist["status"]["messages"]]
    job = server.http.get(f"/api/jobs/{pid}").json()
    assert job["status"] == "cancelled"


def test_execution_error_message_history_and_job(server: LiveServer):
    prompt = txt2img(steps=2)
    prompt["10"] = {"class_type": "EmptyImage",
                    "inputs": {"width": 1, "height": 8, "batch_size": 1, "color": 0}}
    prompt["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"]["latent_image"] = ["11", 0]
    with server.ws(preview_metadata=True) as ws:
        pid = _submit(server, prompt, ws.sid)
        frames = ws.until_done(pid)
    assert json_types(frames, pid)[-2:] == ["execution_error", "executing"]
    err = _of(frames, "execution_error", pid)[0]["data"]
    assert err["node_id"] == "11" and err["node_type"] == "VAEEncode"
    assert err["exception_message"] and isinstance(err["traceback"], list)
    assert "10" in err["executed"] and isinstance(err["current_inputs"], dict)
    hist = server.http.get(f"/history/{pid}").json()[pid]
    assert hist["status"]["status_str"] == "error"
    assert hist["status"]["messages"][-1][0] == "execution_error"
    job = server.http.get("/api/jobs", params={"status": "failed", "limit": 5}).json()["jobs"][0]
    assert job["id"] == pid and job["execution_error"]["node_id"] == "11"


def test_queue_numbers_front_explicit_delete_and_cancel(serial_server: LiveServer):
    server = serial_server
    with server.ws("q") as ws:
        running = _submit(server, txt2img(seed=11, steps=400), ws.sid)
        ws.until(lambda f: isinstance(f, dict) and f["type"] == "progress")
        r1 = server.http.post("/api/prompt", json={"prompt": txt2img(seed=12), "client_id": "q"})
        r2 = server.http.post("/prompt", json={"prompt": txt2img(seed=13), "front": True})
        r3 = server.http.post("/prompt", json={"prompt": txt2img(seed=14), "number": 1.5})
        normal, front, explicit = (r.json() for r in (r1, r2, r3))
        assert normal["number"] > 0 and front["number"] < 0 and explicit["number"] == 1.5
        queue = server.http.get("/queue").json()
        assert [item[1] for item in queue["queue_running"]] == [running]
        assert [item[1] for item in queue["queue_pending"]] == [
            front["prompt_id"], explicit["prompt_id"], normal["prompt_id"]]
        item = queue["queue_pending"][0]
        assert item[0] == front["number"] and item[4] == ["9"] and "3" in item[2]
        assert server.http.get("/prompt").json() == {"exec_info": {"queue_remaining": 4}}

        pending = server.http.get("/api/jobs", params={"status": "pending,in_progress"}).json()
        assert {j["status"] for j in pending["jobs"]} == {"pending", "in_progress"}
        assert pending["pagination"]["total"] == 4 and pending["pagination"]["limit"] is None

        assert server.http.post("/api/queue", json={"delete": [explicit["prompt_id"]]}
                                ).status_code == 200
        r = server.http.post(f"/api/jobs/{front['prompt_id']}/cancel")
        assert r.json() == {"cancelled": True}
        r = server.http.post("/api/jobs/cancel", json={"job_ids": [normal["prompt_id"]]})
        assert r.json() == {"cancelled": True}
        assert server.http.get("/queue").json()["queue_pending"] == []
        assert server.http.post(f"/api/jobs/{running}/cancel").json() == {"cancelled": True}
        ws.until_done(running)
    assert server.http.get(f"/api/jobs/{running}").json()["status"] == "cancelled"
    assert server.http.post("/api/history", json={"delete": [running]}).status_code == 200
    assert server.http.get(f"/history/{running}").json() == {}
    assert server.http.post("/api/history", json={"clear": True}).status_code == 200
    assert server.http.get("/history").json() == {}
