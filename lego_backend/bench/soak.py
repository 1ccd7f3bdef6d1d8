"""Soak test: many concurrent clients on loopback submit a long stream of mixed workflows while
some of them interrupt their prompts and drop their websockets mid-run. What it holds the server
to: every accepted prompt ends in /history (none lost), no HTTP 5xx, and the server's resident
memory stays flat once warm. Reported, never asserted here (the CI test asserts on the report).

    python benchmarks/soak.py --out DIR [--clients 20] [--prompts 500] [--steps 4]
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from lego_backend.bench.mix import KINDS, MixConfig, RequestFactory, input_images, load_prompts
from lego_backend.bench.server import ServerProcess, ServerSpec
from lego_backend.bench.stats import percentile

DONE_TYPES = ("execution_success", "execution_error", "execution_interrupted")


@dataclass(frozen=True)
class SoakConfig:
    clients: int = 20
    prompts: int = 500  # in all, spread over the clients
    steps: int = 4
    interrupt_p: float = 0.1  # chance a prompt is interrupted at a random moment
    disconnect_p: float = 0.1  # chance its client drops the websocket mid-run and reconnects
    seed: int = 7
    rss_interval_s: float = 0.5
    drain_timeout_s: float = 300.0  # after the last submit, wait at most this for the rest


@dataclass
class SoakReport:
    config: dict[str, Any]
    submitted: int = 0  # accepted by POST /prompt (200)
    rejected_429: int = 0
    http_5xx: int = 0
    http_other_errors: list[str] = field(default_factory=list)
    finished: dict[str, int] = field(default_factory=dict)  # history status -> count
    lost: list[str] = field(default_factory=list)  # accepted, never in /history
    interrupts_sent: int = 0
    disconnects: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (t s, MB)
    rss_warm_mb: float = 0.0  # peak over the first half of the soak (models already loaded)
    rss_peak_after_warm_mb: float = 0.0  # peak over the second half
    wall_s: float = 0.0

    @property
    def rss_growth(self) -> float:
        """Second half's peak relative to the first half's (1.0 = flat: nothing accumulates)."""
        return self.rss_peak_after_warm_mb / self.rss_warm_mb if self.rss_warm_mb else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rss_growth": round(self.rss_growth, 4)}


def rss_mb(pid: int) -> float:
    """Resident set size of a process (Linux /proc), in MiB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class _Soak:
    def __init__(self, base_url: str, cfg: SoakConfig, report: SoakReport):
        self.base = base_url
        self.ws_base = base_url.replace("http://", "ws://") + "/ws"
        self.cfg = cfg
        self.report = report
        self.accepted: list[str] = []
        self.deleted: set[str] = set()  # removed from the queue by us before they ran
        self.latencies_ms: list[float] = []
        self.rng = random.Random(cfg.seed)
        self.factory = RequestFactory(MixConfig(steps=cfg.steps, hires_steps=cfg.steps),
                                      load_prompts(), cfg.seed)

    def _status(self, resp: httpx.Response, what: str) -> None:
        if resp.status_code >= 500:
            self.report.http_5xx += 1
            self.report.http_other_errors.append(f"{what}: {resp.status_code} {resp.text[:200]}")

    async def client(self, http: httpx.AsyncClient, n: int) -> None:
        client_id = uuid.uuid4().hex
        for _ in range(n):
            req = self.factory.draw(1)[0]
            interrupt = self.rng.random() < self.cfg.interrupt_p
            disconnect = self.rng.random() < self.cfg.disconnect_p
            await self.one(http, client_id, req.prompt, interrupt, disconnect)

    async def one(self, http: httpx.AsyncClient, client_id: str, prompt: dict[str, Any],
                  interrupt: bool, disconnect: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with connect(f"{self.ws_base}?clientId={client_id}", max_size=None,
                               ping_interval=None, close_timeout=1.0) as ws:
                sent = loop.time()
                resp = await http.post("/prompt", json={"prompt": prompt,
                                                        "client_id": client_id})
                self._status(resp, "POST /prompt")
                if resp.status_code == 429:
                    self.report.rejected_429 += 1
                    await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
                    return
                if resp.status_code != 200:
                    self.report.http_other_errors.append(f"POST /prompt {resp.status_code}")
                    return
                pid = resp.json()["prompt_id"]
                self.accepted.append(pid)
                self.report.submitted += 1
                if interrupt:
                    asyncio.get_running_loop().call_later(
                        self.rng.uniform(0.0, 1.0),
                        lambda: asyncio.ensure_future(self._interrupt(http, pid)))
                if disconnect:
                    await asyncio.sleep(self.rng.uniform(0.0, 0.5))
                    self.report.disconnects += 1
                    return  # the websocket closes here with the prompt still in flight
                give_up = loop.time() + self.cfg.drain_timeout_s
                while loop.time() < give_up:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        if pid in self.deleted:
                            return  # deleted while queued: no execution message will come
                        continue
                    if isinstance(raw, bytes):
                        continue
                    msg = json.loads(raw)
                    data = msg.get("data") or {}
                    if data.get("prompt_id") == pid and msg.get("type") in DONE_TYPES:
                        if msg["type"] == "execution_success":
                            self.latencies_ms.append((loop.time() - sent) * 1000.0)
                        return
                self.report.http_other_errors.append(f"no end message for {pid}")
        except (WebSocketException, OSError, httpx.HTTPError) as exc:
            self.report.http_other_errors.append(f"{type(exc).__name__}: {exc}"[:200])

    async def warm_up(self, http: httpx.AsyncClient) -> None:
        """One prompt of each workflow kind, one at a time: every model is loaded before the
        memory series starts (model loading is growth by design, not a leak)."""
        client_id = uuid.uuid4().hex
        for kind in KINDS:
            await self.one(http, client_id, self.factory.make(kind).prompt, False, False)
        self.accepted.clear()
        self.latencies_ms.clear()
        self.report.submitted = 0

    async def _interrupt(self, http: httpx.AsyncClient, pid: str) -> None:
        """What the editor does: a queued prompt is deleted, a running one interrupted."""
        self.report.interrupts_sent += 1
        try:
            queue = await http.get("/queue")
            self._status(queue, "GET /queue")
            pending = {item[1] for item in queue.json().get("queue_pending", [])}
            if pid in pending:
                self.deleted.add(pid)  # if it starts meanwhile, it still ends in /history
                self._status(await http.post("/queue", json={"delete": [pid]}), "POST /queue")
            else:
                self._status(await http.post("/interrupt", json={"prompt_id": pid}),
                             "POST /interrupt")
        except httpx.HTTPError as exc:
            self.report.http_other_errors.append(f"interrupt: {exc}"[:200])

    async def settle(self, http: httpx.AsyncClient) -> None:
        """Wait until every accepted prompt is in /history or was deleted from the queue, then
        count what is missing as lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.drain_timeout_s
        while loop.time() < deadline:
            q = (await http.get("/queue")).json()
            if not q.get("queue_running") and not q.get("queue_pending"):
                break
            await asyncio.sleep(0.5)
        history = (await http.get("/history", params={"max_items": 100000})).json()
        counts: dict[str, int] = {}
        for pid in self.accepted:
            entry = history.get(pid)
            if entry is None:
                if pid not in self.deleted:  # a deleted prompt never runs: not a loss
                    self.report.lost.append(pid)
                    continue
                status = "deleted_from_queue"
            else:
                status = _history_status(entry)
            counts[status] = counts.get(status, 0) + 1
        self.report.finished = counts


def _history_status(entry: dict[str, Any]) -> str:
    """success | interrupted | error (ComfyUI records an interrupt as status_str "error" with an
    execution_interrupted message; told apart here so real errors stand out)."""
    status = entry.get("status") or {}
    kinds = {m[0] for m in status.get("messages", []) if isinstance(m, list) and m}
    if "execution_interrupted" in kinds:
        return "interrupted"
    return str(status.get("status_str", "unknown"))


async def _sample_rss(pid: int, report: SoakReport, t0: float, interval: float,
                      stop: asyncio.Event) -> None:
    while not stop.is_set():
        report.rss_mb.append((round(time.monotonic() - t0, 2), round(rss_mb(pid), 1)))
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass


async def soak(base_url: str, server_pid: int, cfg: SoakConfig) -> SoakReport:
    report = SoakReport(config=asdict(cfg))
    run = _Soak(base_url, cfg, report)
    limits = httpx.Limits(max_connections=cfg.clients * 4 + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0, limits=limits) as http:
        for name, data in input_images(MixConfig()).items():
            resp = await http.post("/upload/image", files={"image": (name, data, "image/png")},
                                   data={"overwrite": "true"})
            resp.raise_for_status()
        await run.warm_up(http)
        t0 = time.monotonic()
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(server_pid, report, t0, cfg.rss_interval_s,
                                                  stop))
        share = [cfg.prompts // cfg.clients + (i < cfg.prompts % cfg.clients)
                 for i in range(cfg.clients)]
        await asyncio.gather(*(run.client(http, n) for n in share))
        await run.settle(http)
        stop.set()
        await sampler
        report.wall_s = round(time.monotonic() - t0, 2)
    _summarise(report, run.latencies_ms)
    return report


def _summarise(report: SoakReport, latencies: list[float]) -> None:
    if latencies:
        report.p50_ms = round(percentile(latencies, 50), 1)
        report.p99_ms = round(percentile(latencies, 99), 1)
    series = [mb for _, mb in report.rss_mb if mb > 0]
    if series:
        cut = max(1, len(series) // 2)
        report.rss_warm_mb = max(series[:cut])
        report.rss_peak_after_warm_mb = max(series[cut:] or series[:cut])


def run_soak(models: Path, workdir: Path, cfg: SoakConfig, mode: str = "micro") -> SoakReport:
    """Start a `lego serve` on a free loopback port, soak it, stop it; the report."""
    spec = ServerSpec(mode=mode, models=models, workdir=workdir)
    with ServerProcess(spec) as server:
        assert server.pid is not None
        report = asyncio.run(soak(server.base_url, server.pid, cfg))
        alive = httpx.get(f"{server.base_url}/system_stats", timeout=10.0).status_code == 200
    if not alive:
        report.http_other_errors.append("server did not answer /system_stats after the soak")
    return report
