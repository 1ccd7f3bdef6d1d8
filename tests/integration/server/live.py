"""A real uvicorn server on 127.0.0.1 (free port) in a thread, and small protocol clients."""
from __future__ import annotations

import copy
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import httpx
import uvicorn
from starlette.applications import Starlette
from websockets.sync.client import ClientConnection, connect

CKPT = "lego-demo-sd15.safetensors"  # the demo checkpoint (tests/conftest.py demo_models)


class LiveServer:
    def __init__(self, app: Starlette):
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        config = uvicorn.Config(app, log_level="warning", lifespan="on", ws_ping_interval=None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]},
                                        name="live-server", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.http = httpx.Client(base_url=self.url, timeout=20)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

    def ws(self, client_id: str | None = None, *, preview_metadata: bool | None = None
           ) -> WSClient:
        url = self.ws_url + (f"?clientId={client_id}" if client_id else "")
        return WSClient(connect(url, open_timeout=10, max_size=None), preview_metadata)


class WSClient:
    """Collects frames; JSON ones as dicts, binary ones as bytes."""

    def __init__(self, conn: ClientConnection, preview_metadata: bool | None):
        self.conn = conn
        self.frames: list[Any] = []
        first = self.recv()
        assert first["type"] == "status", first
        self.sid: str = first["data"]["sid"]
        self.first = first
        if preview_metadata is not None:
            self.conn.send(json.dumps({"type": "feature_flags", "data": {
                "supports_preview_metadata": preview_metadata}}))
            self.server_flags = self.until(lambda m: _type(m) == "feature_flags")[-1]["data"]

    def recv(self, timeout: float = 20) -> Any:
        raw = self.conn.recv(timeout=timeout)
        frame = raw if isinstance(raw, bytes) else json.loads(raw)
        self.frames.append(frame)
        return frame

    def until(self, pred: Callable[[Any], bool], timeout: float = 30) -> list[Any]:
        """Frames received (this call) up to and including the first matching one."""
        start, deadline = len(self.frames), time.monotonic() + timeout
        while True:
            frame = self.recv(timeout=max(0.05, deadline - time.monotonic()))
            if pred(frame):
                return self.frames[start:]

    def until_done(self, prompt_id: str, timeout: float = 60) -> list[Any]:
        return self.until(lambda m: _type(m) == "executing" and m["data"]["node"] is None
                          and m["data"].get("prompt_id") == prompt_id, timeout)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _type(frame: Any) -> str | None:
    return frame.get("type") if isinstance(frame, dict) else None


def json_types(frames: list[Any], prompt_id: str | None = None) -> list[str]:
    """Types of the JSON frames, without queue `status` broadcasts; optionally only those of
    one prompt."""
    out = []
    for f in frames:
        if not isinstance(f, dict) or f["type"] in ("status", "feature_flags"):
            continue
        if prompt_id is not None and f["data"].get("prompt_id") != prompt_id:
            continue
        out.append(f["type"])
    return out


def binary_type(frame: bytes) -> int:
    return int(struct.unpack(">I", frame[:4])[0])


def txt2img(seed: int = 42, steps: int = 3, size: int = 64, text: str = "a red circle",
            prefix: str = "ComfyUI") -> dict[str, Any]:
    return copy.deepcopy({
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": size, "height": size, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix,
                                                    "images": ["8", 0]}},
    })
