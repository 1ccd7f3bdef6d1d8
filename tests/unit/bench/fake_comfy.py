"""A fake ComfyUI server on 127.0.0.1 for the bench client's tests: the HTTP + websocket
surface the client uses, with scripted outcomes per workflow kind (found in SaveImage's prefix)."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@dataclass
class Script:
    delay_s: float = 0.05  # submit -> `executing null`
    reject_kinds: set[str] = field(default_factory=set)  # answered 429
    error_kinds: set[str] = field(default_factory=set)  # execution_error
    hang_kinds: set[str] = field(default_factory=set)  # never finish
    invalid_kinds: set[str] = field(default_factory=set)  # HTTP 400
    services: dict[str, Any] | None = None  # GET /lego/services; None = 404


class FakeComfy:
    def __init__(self, script: Script):
        self.script = script
        self.prompts: list[dict[str, Any]] = []  # POST /prompt bodies, in order
        self.uploads: dict[str, bytes] = {}
        self.calls: list[str] = []  # "METHOD /path" of control requests
        self._sockets: dict[str, WebSocket] = {}
        self.app = Starlette(routes=[
            Route("/prompt", self.post_prompt, methods=["POST"]),
            Route("/upload/image", self.upload, methods=["POST"]),
            Route("/queue", self.queue, methods=["GET", "POST"]),
            Route("/interrupt", self.interrupt, methods=["POST"]),
            Route("/lego/services", self.services, methods=["GET"]),
            Route("/system_stats", self.stats, methods=["GET"]),
            WebSocketRoute("/ws", self.ws),
        ])

    async def ws(self, websocket: WebSocket) -> None:
        await websocket.accept()
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        self._sockets[sid] = websocket
        await websocket.send_text(json.dumps({"type": "status", "data": {
            "status": {"exec_info": {"queue_remaining": 0}}, "sid": sid}}))
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            self._sockets.pop(sid, None)

    async def post_prompt(self, request: Request) -> Response:
        body = await request.json()
        self.prompts.append(body)
        kind = next(n["inputs"]["filename_prefix"] for n in body["prompt"].values()
                    if n["class_type"] == "SaveImage").split("/")[-1]
        if kind in self.script.reject_kinds:
            return JSONResponse({"error": "slo"}, status_code=429, headers={"Retry-After": "2"})
        if kind in self.script.invalid_kinds:
            return JSONResponse({"error": {"type": "invalid_prompt"}}, status_code=400)
        pid = str(uuid.uuid4())
        asyncio.get_running_loop().create_task(self._execute(body["client_id"], pid, kind))
        return JSONResponse({"prompt_id": pid, "number": len(self.prompts), "node_errors": {}})

    async def _execute(self, client_id: str, pid: str, kind: str) -> None:
        ws = self._sockets[client_id]
        await ws.send_text(json.dumps({"type": "executing",
                                       "data": {"node": "sample", "prompt_id": pid}}))
        await ws.send_bytes(b"\x00\x00\x00\x01\x00\x00\x00\x01preview")
        # another prompt's frame on the same socket must be ignored
        await ws.send_text(json.dumps({"type": "executing",
                                       "data": {"node": None, "prompt_id": "other"}}))
        if kind in self.script.hang_kinds:
            return
        await asyncio.sleep(self.script.delay_s)
        if kind in self.script.error_kinds:
            await ws.send_text(json.dumps({"type": "execution_error", "data": {
                "prompt_id": pid, "exception_message": "boom"}}))
            return
        await ws.send_text(json.dumps({"type": "executing",
                                       "data": {"node": None, "prompt_id": pid}}))

    async def upload(self, request: Request) -> Response:
        form = await request.form()
        image = form["image"]
        assert not isinstance(image, str)
        self.uploads[str(image.filename)] = await image.read()
        return JSONResponse({"name": image.filename, "subfolder": "", "type": "input"})

    async def queue(self, request: Request) -> Response:
        self.calls.append(f"{request.method} /queue")
        if request.method == "POST":
            return Response(status_code=200)
        return JSONResponse({"queue_running": [], "queue_pending": []})

    async def interrupt(self, request: Request) -> Response:
        self.calls.append("POST /interrupt")
        return Response(status_code=200)

    async def services(self, request: Request) -> Response:
        if self.script.services is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(self.script.services)

    async def stats(self, request: Request) -> Response:
        return JSONResponse({"system": {}})


class Running:
    """`with Running(FakeComfy(...)) as url:` serves it on a free loopback port."""

    def __init__(self, fake: FakeComfy):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(fake.app, log_level="warning", lifespan="off",
                                ws_ping_interval=None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
