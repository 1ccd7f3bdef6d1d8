"""Replays a trace against a live server the way ComfyUI clients talk to it: each request opens
its own websocket (`/ws?clientId=X`), POSTs /prompt with that client id, and is done at
`executing {node: null}` for its prompt id. Latency is submit -> that frame. Every wait is
bounded, and only loopback servers are accepted: this tool generates load on purpose."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from lego_backend.bench.mix import BenchRequest
from lego_backend.bench.stats import ERROR, OK, REJECTED, TIMEOUT, RequestResult

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
NO_SERVICES: dict[str, Any] = {"mode": None, "services": [], "resident_weight_bytes": 0,
                               "mean_denoiser_batch": 0.0}


@dataclass(frozen=True)
class ClientLimits:
    connect_timeout_s: float = 10.0  # websocket open / HTTP connect
    http_timeout_s: float = 30.0  # one HTTP exchange
    # a request still running at this multiple of its SLO is abandoned as a timeout: it has
    # missed already, and waiting longer only stretches overloaded sweep points
    timeout_slo_factor: float = 3.0
    min_timeout_s: float = 5.0  # ... but never give up sooner than this
    no_slo_timeout_s: float = 120.0  # bound for requests without an SLO (warm-up, standalone)

    def request_timeout_s(self, slo_ms: float | None) -> float:
        if slo_ms is None:
            return self.no_slo_timeout_s
        return max(self.min_timeout_s, self.timeout_slo_factor * slo_ms / 1000.0)


def check_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"the benchmark client only talks to loopback servers, not {host!r}")


def prompt_body(req: BenchRequest, client_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": req.prompt, "client_id": client_id}
    if req.slo_ms is not None:
        body["extra_data"] = {"lego": {"slo_ms": round(req.slo_ms, 3)}}
    return body


class BenchClient:
    """Async client of one server. Use as `async with BenchClient(url) as c: ...`."""

    def __init__(self, base_url: str, limits: ClientLimits | None = None):
        check_loopback(base_url)
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.ws_url = f"ws://{parts.netloc}/ws"
        self.limits = limits or ClientLimits()
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        timeout = httpx.Timeout(self.limits.http_timeout_s,
                                connect=self.limits.connect_timeout_s)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                       limits=httpx.Limits(max_connections=256,
                                                           max_keepalive_connections=32))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("BenchClient used outside `async with`")
        return self._http

    async def upload_image(self, name: str, data: bytes) -> str:
        """POST /upload/image (multipart field `image`, overwriting); the stored name."""
        resp = await self.http.post("/upload/image", files={"image": (name, data, "image/png")},
                                    data={"overwrite": "true"})
        resp.raise_for_status()
        return str(resp.json()["name"])

    async def services(self) -> dict[str, Any]:
        """GET /lego/services; servers without it (stock ComfyUI, older lego) count as zeros."""
        try:
            resp = await self.http.get("/lego/services")
            if resp.status_code != 200:
                return dict(NO_SERVICES)
            data = resp.json()
        except (httpx.HTTPError, ValueError):
            return dict(NO_SERVICES)
        if not isinstance(data, dict):
            return dict(NO_SERVICES)
        return {**NO_SERVICES, **data}

    async def drain(self, timeout_s: float = 60.0) -> bool:
        """Clear the queue, interrupt what runs, wait until idle: what one sweep point left
        behind must not slow down the next. False if the server is still busy at the bound."""
        await self.http.post("/queue", json={"clear": True})
        await self.http.post("/interrupt", json={})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            resp = await self.http.get("/queue")
            q = resp.json()
            if not q.get("queue_running") and not q.get("queue_pending"):
                return True
            await asyncio.sleep(0.1)
        return False

    async def run_one(self, req: BenchRequest, *, index: int = 0, scheduled_s: float = 0.0,
                      t0: float | None = None) -> RequestResult:
        """Submit one request and wait for it, as one ComfyUI client would."""
        loop = asyncio.get_running_loop()
        t0 = loop.time() if t0 is None else t0
        client_id = uuid.uuid4().hex
        sent = loop.time()

        def result(status: str, latency_ms: float | None = None, detail: str = ""
                   ) -> RequestResult:
            return RequestResult(index, req.kind, round(scheduled_s, 6), round(sent - t0, 6),
                                 status, latency_ms, req.slo_ms, detail)

        try:
            async with connect(f"{self.ws_url}?clientId={client_id}", max_size=None,
                               open_timeout=self.limits.connect_timeout_s, ping_interval=None,
                               close_timeout=1.0) as ws:
                sent = loop.time()
                resp = await self.http.post("/prompt", json=prompt_body(req, client_id))
                if resp.status_code == 429:
                    return result(REJECTED, detail=f"Retry-After: "
                                                   f"{resp.headers.get('retry-after', '')}")
                if resp.status_code != 200:
                    return result(ERROR, detail=f"HTTP {resp.status_code}: {resp.text[:300]}")
                prompt_id = str(resp.json()["prompt_id"])
                status, detail = await self._wait_done(
                    ws, prompt_id, sent + self.limits.request_timeout_s(req.slo_ms))
                if status != OK:
                    return result(status, detail=detail)
                return result(OK, round((loop.time() - sent) * 1000.0, 3))
        except (TimeoutError, httpx.HTTPError, WebSocketException, OSError) as exc:
            return result(ERROR, detail=f"{type(exc).__name__}: {exc}"[:300])

    async def _wait_done(self, ws: ClientConnection, prompt_id: str, deadline: float
                         ) -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return TIMEOUT, ""
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=remaining)
            except TimeoutError:
                return TIMEOUT, ""
            if isinstance(raw, bytes):
                continue  # preview frames
            msg = json.loads(raw)
            data = msg.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            kind = msg.get("type")
            if kind == "executing" and data.get("node") is None:
                return OK, ""
            if kind in ("execution_error", "execution_interrupted"):
                return ERROR, f"{kind}: {data.get('exception_message', '')}"[:300]

    async def replay(self, arrivals: Sequence[float], requests: Sequence[BenchRequest]
                     ) -> tuple[list[RequestResult], float]:
        """Send request i at arrivals[i] seconds from now; all results and the wall time from
        the start to the last completion."""
        if len(arrivals) != len(requests):
            raise ValueError(f"{len(arrivals)} arrivals for {len(requests)} requests")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        last_end = t0

        async def one(i: int) -> RequestResult:
            nonlocal last_end
            await asyncio.sleep(max(0.0, t0 + arrivals[i] - loop.time()))
            res = await self.run_one(requests[i], index=i, scheduled_s=arrivals[i], t0=t0)
            last_end = max(last_end, loop.time())
            return res

        results = await asyncio.gather(*(one(i) for i in range(len(requests))))
        return list(results), last_end - t0
