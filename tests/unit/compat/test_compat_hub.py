"""The websocket fan-out: events from backend threads reach the right client, broadcasts reach
all, preview frames follow each client's flags, and a client that stops reading is dropped
without stalling the others."""
from __future__ import annotations

import asyncio
import json
import struct
import threading
import time
from typing import Any

from comfy_compat.ws import Hub, Session
from lego_backend.runtime import events as ev


class FakeSocket:
    def __init__(self, stuck: bool = False):
        self.sent: list[Any] = []
        self.stuck = stuck
        self.closed: int | None = None

    async def send_text(self, text: str) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(json.loads(text))

    async def send_bytes(self, data: bytes) -> None:
        if self.stuck:
            await asyncio.Event().wait()
        self.sent.append(data)

    async def close(self, code: int = 1000) -> None:
        self.closed = code


class StubBackend:
    def add_listener(self, listener: Any) -> Any:
        return lambda: None

    def set_preview_audience(self, audience: Any) -> None:
        self.audience = audience


def _from_thread(hub: Hub, events: list[ev.Event], gap_s: float = 0.0) -> threading.Thread:
    """Emit `events` from another thread, like the backend's workers do."""
    def emit() -> None:
        for event in events:
            hub.on_event(event)
            time.sleep(gap_s)
    thread = threading.Thread(target=emit)
    thread.start()
    return thread


def test_routing_broadcast_and_preview_formats():
    async def main() -> None:
        hub = Hub(StubBackend(), {}, queue_size=64)  # type: ignore[arg-type]
        hub.attach(asyncio.get_running_loop())
        a, b = FakeSocket(), FakeSocket()
        sa, sb = Session("a", a, 64), Session("b", b, 64)  # type: ignore[arg-type]
        sa.flags = {"supports_preview_metadata": True}
        hub.sessions.update(a=sa, b=sb)
        pumps = [asyncio.create_task(s.pump()) for s in (sa, sb)]
        _from_thread(hub, [
            ev.ExecutionStart("p1", "a"), ev.Progress("p1", "a", node="3", value=1, max=2),
            ev.Preview("p1", "a", node="3", data=b"\xff\xd8A"),
            ev.Preview("p2", "b", node="3", data=b"\xff\xd8B"),
            ev.Progress("p3", None, node="3", value=1, max=2),  # nobody asked: dropped
            ev.Progress("p4", "gone", node="3", value=1, max=2),  # client not connected
            ev.ExecutionInterrupted("p2", "b"), ev.QueueStatus("", None, queue_remaining=1)])
        await asyncio.sleep(0.2)
        for s in (sa, sb):
            s.close()
        await asyncio.gather(*pumps)
        json_a = [m["type"] for m in a.sent if isinstance(m, dict)]
        json_b = [m["type"] for m in b.sent if isinstance(m, dict)]
        assert json_a == ["execution_start", "progress", "execution_interrupted", "status"]
        assert json_b == ["execution_interrupted", "status"]
        (frame_a,) = [m for m in a.sent if isinstance(m, bytes)]
        (frame_b,) = [m for m in b.sent if isinstance(m, bytes)]
        assert struct.unpack(">I", frame_a[:4])[0] == 4 and frame_a.endswith(b"A")
        assert frame_b == struct.pack(">II", 1, 1) + b"\xff\xd8B"

    asyncio.run(main())


def test_stalled_client_is_dropped_without_stalling_others():
    async def main() -> None:
        hub = Hub(StubBackend(), {}, queue_size=64)  # type: ignore[arg-type]
        hub.attach(asyncio.get_running_loop())
        fast, stuck = FakeSocket(), FakeSocket(stuck=True)
        sf, ss = Session("fast", fast, 64), Session("stuck", stuck, 64)  # type: ignore[arg-type]
        hub.sessions.update(fast=sf, stuck=ss)
        pumps = [asyncio.create_task(s.pump()) for s in (sf, ss)]
        emitter = _from_thread(hub, [ev.QueueStatus("", None, queue_remaining=i)
                                     for i in range(300)], gap_s=0.001)
        while emitter.is_alive():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert [m["data"]["status"]["exec_info"]["queue_remaining"] for m in fast.sent] \
            == list(range(300))
        assert "stuck" not in hub.sessions and stuck.closed == 1013
        assert "fast" in hub.sessions
        sf.close()
        await pumps[0]
        pumps[1].cancel()

    asyncio.run(main())


def test_progress_and_previews_are_shed_before_the_queue_fills():
    async def main() -> None:
        hub = Hub(StubBackend(), {}, queue_size=10)  # type: ignore[arg-type]
        hub.attach(asyncio.get_running_loop())
        sock = FakeSocket()
        session = Session("a", sock, 10)  # type: ignore[arg-type]
        hub.sessions["a"] = session
        # no pump yet: the queue only fills
        for i in range(5):
            hub.dispatch(ev.Progress("p", "a", node="3", value=i, max=9))
        hub.dispatch(ev.Progress("p", "a", node="3", value=5, max=9))  # past half: shed
        hub.dispatch(ev.Preview("p", "a", node="3", data=b"x"))  # shed
        hub.dispatch(ev.ExecutionSuccess("p", "a"))  # kept
        assert session.queue.qsize() == 6 and session.dropped == 2
        assert "a" in hub.sessions

    asyncio.run(main())
