"""Bounded everything, against a real server in front of the real Backend with a small pixel
budget: steps, batch size, width x height x batch and node count refused at validation; sizes
that only exist at run time (scale-by chains, padding) fail the prompt before allocating; images
over the budget are refused on upload and by LoadImage, and /view does not decode them; the
queue limits answer 429 with Retry-After; a websocket client that stops reading is dropped while
another client receives every message of its prompt."""
from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from websockets.sync.client import connect

from comfy_compat.app import build_app
from comfy_compat.security import Security
from tests.integration.server.conftest import make_config
from tests.integration.server.live import LiveServer, json_types, txt2img

pytestmark = pytest.mark.slow
BUDGET = 256 * 256  # --max-pixels of these servers


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 30, 200)).save(buf, "PNG")
    return buf.getvalue()


def _serve(tmp_path: Path, demo_models: Path, **limits: Any) -> LiveServer:
    from lego_backend.backend import Backend

    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "small.png").write_bytes(_png(16, 16))
    (tmp_path / "input" / "mid.png").write_bytes(_png(100, 100))
    (tmp_path / "input" / "big.png").write_bytes(_png(300, 300))  # 90000 px > BUDGET
    config = make_config(tmp_path, demo_models, max_concurrent_prompts=1, **limits)
    return LiveServer(build_app(Backend(config), security=Security.for_bind("127.0.0.1", None)))


@pytest.fixture()
def small(tmp_path: Path, demo_models: Path) -> Iterator[LiveServer]:
    with _serve(tmp_path, demo_models, max_pixels=BUDGET, max_queue=3,
                max_queue_per_client=2) as srv:
        yield srv


@pytest.fixture()
def serial(tmp_path: Path, demo_models: Path) -> Iterator[LiveServer]:
    with _serve(tmp_path, demo_models) as srv:
        yield srv


def _reasons(r: Any) -> list[tuple[str, str]]:
    assert r.status_code == 400, r.text
    body = r.json()
    return [(e["type"], e.get("extra_info", {}).get("input_name", ""))
            for ne in body["node_errors"].values() for e in ne["errors"]] or [
        (body["error"]["type"], "")]


def test_validation_limits(small: LiveServer):
    post = small.http.post
    p = txt2img()
    p["3"]["inputs"]["steps"] = 10001
    assert _reasons(post("/api/prompt", json={"prompt": p})) == [
        ("value_bigger_than_max", "steps")]
    p = txt2img()
    p["5"]["inputs"]["batch_size"] = 4097
    assert _reasons(post("/api/prompt", json={"prompt": p})) == [
        ("value_bigger_than_max", "batch_size")]
    p = txt2img(size=128)
    p["5"]["inputs"]["batch_size"] = 5  # 128 x 128 x 5 = 81920 > BUDGET
    r = post("/api/prompt", json={"prompt": p})
    assert _reasons(r) == [("custom_validation_failed", "width")]
    assert "--max-pixels" in r.json()["node_errors"]["5"]["errors"][0]["details"]
    many = {str(i): {"class_type": "PreviewImage", "inputs": {}} for i in range(5001)}
    assert _reasons(post("/api/prompt", json={"prompt": many})) == [("prompt_too_large", "")]


def _run_error(srv: LiveServer, prompt: dict[str, Any], client: str) -> dict[str, Any]:
    with srv.ws(client) as ws:
        r = srv.http.post("/api/prompt", json={"prompt": prompt, "client_id": client})
        assert r.status_code == 200, r.text
        frames = ws.until(lambda m: isinstance(m, dict) and m["type"] in (
            "execution_error", "execution_success"), timeout=120)
    assert frames[-1]["type"] == "execution_error", json_types(frames)
    return frames[-1]["data"]  # type: ignore[no-any-return]


def test_sizes_known_only_at_run_time_are_bounded(small: LiveServer):
    p = txt2img()  # 64 px latent, then x8 -> 512 x 512 = 262144 px > BUDGET
    p["10"] = {"class_type": "LatentUpscaleBy", "inputs": {
        "samples": ["3", 0], "upscale_method": "nearest-exact", "scale_by": 8.0}}
    p["8"]["inputs"]["samples"] = ["10", 0]
    err = _run_error(small, p, "lat")
    assert err["node_id"] == "10" and "--max-pixels" in err["exception_message"]

    load = {"1": {"class_type": "LoadImage", "inputs": {"image": "small.png"}}}
    scaled = {**load,
              "2": {"class_type": "ImageScaleBy", "inputs": {
                  "image": ["1", 0], "upscale_method": "nearest-exact", "scale_by": 8.0}},
              "3": {"class_type": "ImageScaleBy", "inputs": {  # 128 -> 1024 px square
                  "image": ["2", 0], "upscale_method": "nearest-exact", "scale_by": 8.0}},
              "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    err = _run_error(small, scaled, "img")
    assert err["node_id"] == "3" and "--max-pixels" in err["exception_message"]
    padded = {**load,
              "2": {"class_type": "ImagePadForOutpaint", "inputs": {
                  "image": ["1", 0], "left": 256, "top": 256, "right": 256, "bottom": 256,
                  "feathering": 0}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    err = _run_error(small, padded, "pad")
    assert err["node_id"] == "2" and "--max-pixels" in err["exception_message"]
    model = {"1": {"class_type": "LoadImage", "inputs": {"image": "mid.png"}},
             "2": {"class_type": "UpscaleModelLoader",
                   "inputs": {"model_name": "lego-demo-esrgan-x4.safetensors"}},
             "3": {"class_type": "ImageUpscaleWithModel",  # 100 -> 400 px square
                   "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
             "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    err = _run_error(small, model, "esrgan")
    assert err["node_id"] == "3" and "--max-pixels" in err["exception_message"]
    with small.ws("ok") as ws:  # the server is unharmed
        r = small.http.post("/api/prompt", json={"prompt": txt2img(steps=2), "client_id": "ok"})
        ws.until_done(r.json()["prompt_id"], timeout=120)


def test_images_over_the_budget(small: LiveServer, tmp_path: Path):
    big = _png(300, 300)
    r = small.http.post("/api/upload/image", files={"image": ("up.png", big, "image/png")})
    assert r.status_code == 400 and "300x300" in r.json()["error"]
    assert not (tmp_path / "input" / "up.png").exists()
    ok = small.http.post("/api/upload/image", files={"image": ("ok.png", _png(200, 200),
                                                                "image/png")})
    assert ok.status_code == 200
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "big.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    r = small.http.post("/api/prompt", json={"prompt": prompt})
    assert _reasons(r) == [("custom_validation_failed", "image")]
    assert "300x300" in r.json()["node_errors"]["1"]["errors"][0]["details"]
    view = small.http.get("/api/view", params={"filename": "big.png", "type": "input",
                                               "preview": "webp;50"})
    assert view.status_code == 200 and view.content == big  # sent as is, never decoded


def test_queue_limits_answer_429_with_retry_after(small: LiveServer):
    http = small.http
    long = txt2img(steps=5000)  # keeps the single executor busy
    assert http.post("/api/prompt", json={"prompt": long, "client_id": "x"}).status_code == 200
    deadline = time.monotonic() + 60
    while not http.get("/api/queue").json()["queue_running"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        codes = [http.post("/api/prompt", json={"prompt": txt2img(seed=s), "client_id": c}
                           ) for s, c in ((1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "c"))]
        assert [r.status_code for r in codes] == [200, 200, 429, 200, 429]
        for r in (codes[2], codes[4]):
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["type"] == "back_pressure" and r.json()["node_errors"] == {}
        assert "already has 2" in codes[2].json()["error"]["message"]
        assert "full" in codes[4].json()["error"]["message"]
    finally:
        http.post("/api/queue", json={"clear": True})
        http.post("/api/interrupt")


def test_a_client_that_stops_reading_is_dropped_without_stalling_others(serial: LiveServer):
    hub = serial.app.state.hub
    hub.queue_size = 16  # frames buffered per client before it counts as stalled
    # Small kernel buffers on both ends (accepted sockets inherit the listening socket's), so
    # the server notices within a few frames that this client does not read.
    serial._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock = socket.create_connection(("127.0.0.1", serial.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel buffers little
    slow = connect(f"ws://127.0.0.1:{serial.port}/ws?clientId=slow", sock=sock, open_timeout=10,
                   max_size=None)  # never read from again
    with serial.ws("fast") as fast:
        pids = []
        for seed in range(6):  # many previews and progress frames addressed to "slow"
            r = serial.http.post("/api/prompt", json={"prompt": txt2img(seed=seed, steps=40,
                                                                       size=128),
                                                     "client_id": "slow"})
            pids.append(r.json()["prompt_id"])
        r = serial.http.post("/api/prompt", json={"prompt": txt2img(seed=99, steps=3),
                                                 "client_id": "fast"})
        frames = fast.until_done(r.json()["prompt_id"], timeout=300)
        mine = json_types(frames, r.json()["prompt_id"])
        assert mine[0] == "execution_start" and mine[-2:] == ["execution_success", "executing"]
        assert mine.count("progress") == 3 and "executed" in mine
        deadline = time.monotonic() + 120
        while "slow" in hub.sessions:  # dropped once its 16 frames were not taken
            assert time.monotonic() < deadline, "the stalled client was never dropped"
            time.sleep(0.1)
        assert "fast" in hub.sessions
        serial.http.post("/api/queue", json={"clear": True})
        serial.http.post("/api/interrupt")
    slow.close()
