"""The app in-process (Starlette TestClient) over the FakeBackend: lifespan, /api twins, queue
number semantics, jobs/history paging and filters, the websocket handshake."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from comfy_compat.app import build_app
from lego_backend.config import BackendConfig
from tests.unit.compat.fake_backend import FakeBackend, api_prompt


@pytest.fixture()
def fake(tmp_path: Path) -> FakeBackend:
    return FakeBackend(BackendConfig(
        models_dir=tmp_path / "models", output_dir=tmp_path / "output",
        input_dir=tmp_path / "input", temp_dir=tmp_path / "temp", data_dir=tmp_path / "data"))


@pytest.fixture()
def client(fake: FakeBackend) -> Iterator[TestClient]:
    with TestClient(build_app(fake)) as c:
        (fake.config.models_dir / "checkpoints" / "fake.safetensors").write_bytes(b"x")
        yield c


def _wait(pred, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_lifespan_starts_and_stops_the_backend(fake: FakeBackend):
    app = build_app(fake)
    assert not fake.started
    with TestClient(app):
        assert fake.started and len(fake._listeners) == 1
    assert fake.stopped and fake._listeners == []


def test_every_route_has_an_api_twin(fake: FakeBackend):
    app = build_app(fake)
    routes = {(r.path, tuple(sorted(r.methods or ()))) for r in app.routes if isinstance(r, Route)}
    # static files (templates, editor extensions) have no /api twin, as in ComfyUI
    bare = [(p, m) for p, m in routes
            if not p.startswith(("/api/", "/internal/", "/templates/", "/extensions/lego/"))
            and p != "/"]
    assert len(bare) > 30
    for path, methods in bare:
        assert ("/api" + path, methods) in routes, path


def test_queue_numbers_and_order(client: TestClient, fake: FakeBackend):
    fake.hold.clear()  # keep everything pending
    a = client.post("/prompt", json={"prompt": api_prompt(seed=1)}).json()
    b = client.post("/prompt", json={"prompt": api_prompt(seed=2)}).json()
    front = client.post("/prompt", json={"prompt": api_prompt(seed=3), "front": True}).json()
    explicit = client.post("/prompt", json={"prompt": api_prompt(seed=4), "number": 1.5}).json()
    assert (a["number"], b["number"], front["number"], explicit["number"]) == (1, 2, -3, 1.5)
    pending = client.get("/api/queue").json()["queue_pending"]
    assert [p[1] for p in pending] == [front["prompt_id"], a["prompt_id"], explicit["prompt_id"],
                                       b["prompt_id"]]
    assert client.get("/api/prompt").json() == {"exec_info": {"queue_remaining": 4}}
    client.post("/api/queue", json={"clear": True})
    assert client.get("/api/queue").json()["queue_pending"] == []
    fake.hold.set()


def test_jobs_paging_sorting_and_filters(client: TestClient, fake: FakeBackend):
    ids = []
    for seed in range(5):
        workflow = {"id": "wf-even" if seed % 2 == 0 else "wf-odd"}
        r = client.post("/api/prompt", json={"prompt": api_prompt(seed=seed),
                                             "extra_data": {"extra_pnginfo": {"workflow": workflow},
                                                            "auth_token_comfy_org": "secret"}})
        ids.append(r.json()["prompt_id"])
        time.sleep(0.005)  # distinct create_time
    _wait(lambda: len(fake.history()) == 5)
    page = client.get("/api/jobs", params={"limit": 2, "offset": 1}).json()
    assert [j["id"] for j in page["jobs"]] == ids[::-1][1:3]
    assert page["pagination"] == {"offset": 1, "limit": 2, "total": 5, "has_more": True}
    asc = client.get("/api/jobs", params={"sort_order": "asc"}).json()["jobs"]
    assert [j["id"] for j in asc] == ids
    assert len(client.get("/api/jobs", params={"sort_by": "execution_duration"}).json()["jobs"]) \
        == 5
    even = client.get("/api/jobs", params={"workflow_id": "wf-even"}).json()["jobs"]
    assert sorted(j["id"] for j in even) == sorted(ids[0::2])
    detail = client.get(f"/api/jobs/{ids[0]}").json()
    assert "auth_token_comfy_org" not in detail["workflow"]["extra_data"]
    assert "auth_token_comfy_org" not in client.get("/history").json()[ids[0]]["prompt"][3]

    hist = client.get("/history", params={"max_items": 2, "offset": 1}).json()
    assert list(hist) == ids[1:3]
    assert list(client.get("/history", params={"max_items": 2}).json()) == ids[3:]
    assert list(client.get("/history", params={"offset": 3}).json()) == ids[3:]


def test_free_interrupt_and_ui_workflow(client: TestClient, fake: FakeBackend):
    assert client.post("/api/free", json={"unload_models": True, "free_memory": True}
                       ).status_code == 200
    assert fake.freed == [(True, True)]
    assert client.post("/api/interrupt", json={"prompt_id": "not-running"}).status_code == 200
    r = client.post("/api/prompt", json={"prompt": {"nodes": [], "links": []}})
    assert r.status_code == 400 and "UI-format" in r.json()["error"]["message"]


def test_websocket_handshake_and_run(client: TestClient, fake: FakeBackend):
    with client.websocket_connect("/ws?clientId=abc") as ws:
        first = ws.receive_json()
        assert first == {"type": "status", "data": {"status": {"exec_info": {
            "queue_remaining": 0}}, "sid": "abc"}}
        ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": False}})
        flags = ws.receive_json()
        assert flags["type"] == "feature_flags" and flags["data"]["supports_preview_metadata"]
        pid = client.post("/api/prompt", json={"prompt": api_prompt(steps=2),
                                               "client_id": "abc"}).json()["prompt_id"]
        seen = []
        while True:
            msg = ws.receive()
            if "bytes" in msg and msg["bytes"] is not None:
                seen.append(("binary", msg["bytes"][:4]))
                continue
            data = json.loads(msg["text"])
            seen.append((data["type"], data["data"].get("node")))
            if data["type"] == "executing" and data["data"]["node"] is None:
                break
        types = [t for t, _ in seen if t != "status"]
        assert types[:2] == ["execution_start", "execution_cached"]
        assert ("binary", b"\x00\x00\x00\x01") in seen
        assert types[-3:] == ["executed", "execution_success", "executing"]
        assert fake.record(pid).status == "success"
    with client.websocket_connect("/api/ws") as ws:  # no clientId: one is minted
        assert len(ws.receive_json()["data"]["sid"]) == 32
