"""Every error kind's HTTP shape, against a real server: ComfyUI's {error, node_errors} for
prompts, 409 for duplicate ids, 429 + Retry-After for back pressure, {"error"} for the newer
routes, 403 for cross-site requests, and never a 500 for a client mistake."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.server.live import CKPT, LiveServer, txt2img

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[2] / "data" / "workflows"


def _error(r, status: int, type_: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}
    assert body["error"]["type"] == type_
    return body


def test_prompt_errors(server: LiveServer):
    http = server.http
    body = _error(http.post("/api/prompt", json={"client_id": "x"}), 400, "no_prompt")
    assert body["node_errors"] == {} and body["error"]["message"] == "No prompt provided"
    _error(http.post("/prompt", content=b"{not json"), 400, "invalid_json")
    for bad in ("abc", str(uuid.uuid4()).upper(), uuid.uuid4().hex):
        _error(http.post("/api/prompt", json={"prompt": txt2img(), "prompt_id": bad}),
               400, "invalid_prompt_id")

    pid = str(uuid.uuid4())
    assert http.post("/api/prompt", json={"prompt": txt2img(), "prompt_id": pid}).json()[
        "prompt_id"] == pid
    r = http.post("/api/prompt", json={"prompt": txt2img(), "prompt_id": pid})
    assert r.status_code == 409 and r.json() == {"error": "prompt_id already exists"}

    p = txt2img()
    p["3"]["inputs"]["steps"] = 0
    body = _error(http.post("/api/prompt", json={"prompt": p}), 400,
                  "prompt_outputs_failed_validation")
    ne = body["node_errors"]["3"]
    assert ne["class_type"] == "KSampler" and ne["dependent_outputs"] == ["9"]
    assert ne["errors"][0]["type"] == "value_smaller_than_min"
    assert ne["errors"][0]["extra_info"]["input_name"] == "steps"

    p = txt2img()
    p["4"]["inputs"]["ckpt_name"] = "nope.safetensors"
    body = _error(http.post("/api/prompt", json={"prompt": p}), 400,
                  "prompt_outputs_failed_validation")
    assert body["node_errors"]["4"]["errors"][0]["type"] == "value_not_in_list"

    p = txt2img()
    p["3"]["class_type"] = "NoSuchNode"
    assert _error(http.post("/api/prompt", json={"prompt": p}), 400,
                  "invalid_prompt")["node_errors"] == {}
    p = txt2img()
    del p["9"]
    _error(http.post("/api/prompt", json={"prompt": p}), 400, "prompt_no_outputs")


def test_partially_invalid_prompt_is_accepted_with_node_errors(server: LiveServer):
    p = txt2img()
    p["11"] = {"class_type": "VAEDecode", "inputs": {"vae": ["4", 2]}}  # samples missing
    p["10"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "x",
                                                     "images": ["11", 0]}}
    r = server.http.post("/api/prompt", json={"prompt": p})
    assert r.status_code == 200, r.text
    ne = r.json()["node_errors"]["11"]
    assert ne["class_type"] == "VAEDecode" and ne["dependent_outputs"] == ["10"]
    assert ne["errors"][0]["type"] == "required_input_missing"


def test_ui_workflow_is_converted_by_the_real_backend(server: LiveServer):
    workflow = json.loads((DATA / "default_graph_v04.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"] = [CKPT]
        if node["type"] == "EmptyLatentImage":
            node["widgets_values"] = [64, 64, 1]
        if node["type"] == "KSampler":
            node["widgets_values"][2] = 2  # steps
    r = server.http.post("/api/prompt", json={"prompt": workflow})
    assert r.status_code == 200, r.text
    pid = r.json()["prompt_id"]
    queued = server.http.get(f"/api/jobs/{pid}").json()["workflow"]["prompt"]
    assert queued["3"]["class_type"] == "KSampler" and queued["4"]["inputs"]["ckpt_name"] == CKPT


def test_ui_workflow_without_converter_and_back_pressure(fake_server: LiveServer, fake):
    workflow = {"nodes": [], "links": [], "version": 0.4}
    body = _error(fake_server.http.post("/api/prompt", json={"prompt": workflow}), 400,
                  "invalid_prompt")
    assert "UI-format" in body["error"]["message"]

    fake.max_pending = 0
    r = fake_server.http.post("/api/prompt", json={"prompt": {
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0],
                                                    "filename_prefix": "x"}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}}})
    body = _error(r, 429, "back_pressure")
    assert r.headers["retry-after"] == "2"
    assert body["node_errors"] == {}


def test_jobs_and_request_errors_are_4xx(server: LiveServer):
    http = server.http
    for params in ({"status": "bogus"}, {"limit": "0"}, {"offset": "-1"}, {"limit": "x"},
                   {"sort_by": "name"}, {"sort_order": "up"}):
        r = http.get("/api/jobs", params=params)
        assert r.status_code == 400 and isinstance(r.json()["error"], str), params
    r = http.get(f"/api/jobs/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json() == {"error": "Job not found"}
    r = http.post("/api/jobs/cancel", json={"job_ids": ["not-a-uuid", 3]})
    assert r.status_code == 400 and r.json()["invalid_ids"] == ["not-a-uuid", "3"]
    assert http.post("/api/jobs/cancel", json={"job_ids": "x"}).status_code == 400
    assert http.post("/api/jobs/cancel", json={}).status_code == 400

    for bad in ([1, 2], "prompt", {"prompt": [1]}, {"prompt": "x"}, {"prompt": {"1": 5}},
                {"prompt": txt2img(), "extra_data": "x"}, {"prompt": txt2img(), "number": "a"},
                {"prompt": txt2img(), "partial_execution_targets": "9"},
                {"prompt": {"1": {"class_type": "KSampler", "inputs": "x"}}}):
        r = http.post("/api/prompt", json=bad)
        assert 400 <= r.status_code < 500, (bad, r.status_code, r.text)
        assert "error" in r.json()
    for path, body in (("/api/queue", b"[1"), ("/api/history", b"{"), ("/api/free", b"x"),
                       ("/api/interrupt", b"]"), ("/api/settings", b"{")):
        assert http.post(path, content=body).status_code == 400, path
    assert http.post("/api/queue", json={"delete": "x"}).status_code == 400
    assert http.post("/api/interrupt").status_code == 200  # empty body: global interrupt
    assert http.post("/api/free", json={"unload_models": True}).status_code == 200


def test_cross_site_requests_are_refused(server: LiveServer):
    r = server.http.post("/api/prompt", json={"prompt": txt2img()},
                         headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = server.http.get("/api/settings", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    ok = server.http.get("/api/settings", headers={"Origin": server.url})
    assert ok.status_code == 200
    with pytest.raises(InvalidStatus) as refused:
        connect(server.ws_url, additional_headers={"Origin": "http://evil.example"},
                open_timeout=10)
    assert refused.value.response.status_code == 403


def test_oversized_json_body_is_413(small_upload_server: LiveServer):
    r = small_upload_server.http.post("/api/prompt", json={"prompt": txt2img(text="x" * 5000)})
    assert r.status_code == 413 and "too large" in r.json()["error"]
