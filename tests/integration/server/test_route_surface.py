"""Every route the editor and headless clients call exists at /x and /api/x, with the shapes
ComfyUI returns; static editor files, templates and /internal on a real server."""
from __future__ import annotations

import importlib.util

import pytest

from tests.integration.server.live import CKPT, LiveServer

pytestmark = pytest.mark.slow

GET_ROUTES = ["/prompt", "/queue", "/history", "/jobs", "/object_info", "/object_info/KSampler",
              "/models", "/models/checkpoints", "/experiment/models",
              "/experiment/models/checkpoints", "/embeddings", "/system_stats", "/features",
              "/extensions", "/i18n", "/node_replacements", "/global_subgraphs",
              "/global_subgraphs/none", "/workflow_templates", "/users", "/settings",
              "/settings/x", "/userdata?dir=workflows", "/v2/userdata", "/lego/services",
              "/lego/default_workflow"]


def test_every_json_route_has_an_api_twin(server: LiveServer):
    for route in GET_ROUTES:
        bare, api = server.http.get(route), server.http.get("/api" + route)
        assert bare.status_code == api.status_code == 200, route
        assert bare.headers["content-type"] == "application/json", route
        assert bare.json() == api.json() or route in ("/system_stats",), route


def test_route_shapes(server: LiveServer):
    get = server.http.get
    info = get("/api/object_info").json()
    assert {"CheckpointLoaderSimple", "KSampler", "SaveImage", "LoadImage"} <= set(info)
    assert info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0] == [CKPT]
    assert get("/api/object_info/NoSuchNode").json() == {}
    assert "checkpoints" in get("/api/models").json()
    assert get("/api/models/checkpoints").json() == [CKPT]
    assert get("/api/models/nope").status_code == 404
    assert get("/api/experiment/models/nope").status_code == 404
    folders = get("/api/experiment/models").json()
    assert any(f["name"] == "checkpoints" and f["folders"] for f in folders)
    assert all(f["name"] not in ("configs", "custom_nodes") for f in folders)
    entry = get("/api/experiment/models/checkpoints").json()[0]
    assert entry["name"] == CKPT and entry["pathIndex"] == 0 and entry["size"] > 0
    meta = get("/api/view_metadata/checkpoints", params={"filename": CKPT})
    assert meta.status_code == 200 and isinstance(meta.json(), dict)
    assert get("/api/view_metadata/checkpoints", params={"filename": "x.safetensors"}
               ).status_code == 404
    assert get("/api/embeddings").json() == ["lego-demo-embedding"]  # names without extension

    stats = get("/api/system_stats").json()
    assert stats["system"]["required_frontend_version"] == "1.58.1"
    assert stats["system"]["comfyui_version"] and stats["system"]["ram_total"] > 0
    assert stats["devices"][0]["type"] == "cpu"
    flags = get("/api/features").json()
    assert flags["supports_preview_metadata"] is True
    assert flags["max_upload_size"] == 100 * 1024 * 1024
    assert get("/api/prompt").json() == {"exec_info": {"queue_remaining": 0}}
    assert get("/api/queue").json() == {"queue_running": [], "queue_pending": []}
    assert get("/api/jobs").json() == {"jobs": [], "pagination": {
        "offset": 0, "limit": None, "total": 0, "has_more": False}}


def test_frontend_templates_and_internal(server: LiveServer):
    get = server.http.get
    index = get("/")
    assert index.status_code == 200 and b'<div id="vue-app">' in index.content
    assert "no-cache" in index.headers["cache-control"]
    assert get("/assets/favicon.ico").status_code == 200
    assert get("/user.css").status_code == 200
    assert get("/nonexistent.js").status_code == 404

    r = get("/templates/index.json")
    if importlib.util.find_spec("comfyui_workflow_templates_core") is None:
        assert r.status_code == 404
    else:
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert isinstance(r.json(), list)
        first = r.json()[0]["templates"][0]["name"]
        workflow = get(f"/templates/{first}.json")
        assert workflow.status_code == 200 and "nodes" in workflow.json()
    assert get("/templates/..%2F..%2Fsetup.py").status_code == 404
    assert get("/templates/nope.json").status_code == 404

    assert get("/internal/logs").json() == ""
    assert get("/internal/folder_paths").json()["checkpoints"]
    assert get("/internal/files/output").json() == []
    assert get("/internal/files/bogus").status_code == 400
    assert get("/api/internal/logs").status_code == 404  # /internal has no /api twin


def test_lego_routes_services_extension_and_runnable_default(server: LiveServer):
    get = server.http.get
    report = get("/api/lego/services").json()
    assert report["mode"] == "micro" and "resident_weight_bytes" in report
    assert get("/api/extensions").json() == ["/extensions/lego/lego-defaults.js"]
    js = get("/extensions/lego/lego-defaults.js")
    assert js.status_code == 200 and "registerExtension" in js.text
    assert js.headers["content-type"].startswith("application/javascript")
    assert get("/extensions/lego/..%2Fdefault_workflow.json").status_code == 404
    workflow = get("/api/lego/default_workflow").json()
    ckpt = next(n for n in workflow["nodes"] if n["type"] == "CheckpointLoaderSimple")
    assert ckpt["widgets_values"] == [CKPT]
    # the UI workflow converts and validates on this server as it is
    reply = server.http.post("/api/prompt", json={"prompt": workflow})
    assert reply.status_code == 200, reply.text
