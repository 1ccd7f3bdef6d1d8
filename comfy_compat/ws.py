"""/ws: one session per client id, fan-out of backend events to the right socket.

Events arrive on backend threads; `Hub.on_event` only hops onto the event loop
(`loop.call_soon_threadsafe`). On the loop, each event is rendered once and put on the bounded
send queue of its client (or of every client for broadcasts); one sender task per socket drains
its queue, so a slow client never stalls the others. When a queue is past half full, progress and
preview frames for that client are dropped; when it is full, the client is disconnected (the
editor reconnects in 300 ms and resynchronises from the `status` it gets on connect)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from comfy_compat import messages
from comfy_compat.jsonresp import dumps_str
from lego_backend.backend_api import BackendAPI
from lego_backend.runtime import events as ev

log = logging.getLogger(__name__)

SEND_QUEUE_SIZE = 512  # frames buffered per client before it counts as stalled
MAX_CLIENT_ID_LEN = 128
_DROPPABLE = (ev.Progress, ev.NodeStateChange, ev.Preview)


class Session:
    def __init__(self, sid: str, websocket: WebSocket, queue_size: int):
        self.sid = sid
        self.websocket = websocket
        self.flags: dict[str, Any] = {}  # what the client announced (supports_preview_metadata...)
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0  # frames skipped because the client was slow
        self.stalled = False

    @property
    def wants_preview_metadata(self) -> bool:
        return bool(self.flags.get("supports_preview_metadata"))

    def send(self, frame: str | bytes, droppable: bool = False) -> bool:
        """Queue a frame; False if it was dropped or the client is stalled."""
        if self.stalled:
            return False
        if droppable and self.queue.qsize() >= self.queue.maxsize // 2:
            self.dropped += 1
            return False
        try:
            self.queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            self.stalled = True
            return False

    async def pump(self) -> None:
        """Send queued frames until the sentinel or a closed socket."""
        while True:
            frame = await self.queue.get()
            if frame is None:
                return
            try:
                if isinstance(frame, bytes):
                    await self.websocket.send_bytes(frame)
                else:
                    await self.websocket.send_text(frame)
            except (WebSocketDisconnect, RuntimeError, OSError):
                return

    def close(self) -> None:
        """Stop the sender (drop what is queued) and let the receive loop end."""
        while True:
            try:
                self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
        self.queue.put_nowait(None)


class Hub:
    def __init__(self, backend: BackendAPI, server_flags: dict[str, Any],
                 queue_size: int = SEND_QUEUE_SIZE):
        self.backend = backend
        self.server_flags = server_flags
        self.queue_size = queue_size
        self.sessions: dict[str, Session] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Any = None

    # --- lifecycle (called from the app's lifespan) -----------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._unsubscribe = self.backend.add_listener(self.on_event)
        # Previews go only to the prompt's own client (dispatch below): with no socket for it,
        # the backend need not render them.
        self.backend.set_preview_audience(self.sessions.__contains__)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            self.backend.set_preview_audience(None)
        for session in list(self.sessions.values()):
            session.close()
        self._loop = None

    # --- backend threads -> loop ------------------------------------------------------------------
    def on_event(self, event: ev.Event) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closing under us at shutdown
            loop.call_soon_threadsafe(self.dispatch, event)

    def dispatch(self, event: ev.Event) -> None:
        """On the loop: render `event` and queue it for the socket(s) that should see it."""
        if isinstance(event, ev.Preview):
            session = self.sessions.get(event.client_id or "")
            if session is not None:
                frame = messages.preview_frame(event, session.wants_preview_metadata)
                self._send(session, frame, droppable=True)
            return
        msg = messages.render(event)
        if msg is None:
            return
        text = dumps_str(msg)
        if messages.is_broadcast(event):
            for session in list(self.sessions.values()):
                self._send(session, text, droppable=False)
        elif event.client_id:
            session = self.sessions.get(event.client_id)
            if session is not None:
                self._send(session, text, droppable=isinstance(event, _DROPPABLE))

    def _send(self, session: Session, frame: str | bytes, droppable: bool) -> None:
        if not session.send(frame, droppable) and session.stalled:
            log.warning("websocket client %s is not reading; disconnecting it", session.sid)
            self._kick(session)

    def _kick(self, session: Session) -> None:
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]
        session.close()
        asyncio.ensure_future(self._close_socket(session))

    @staticmethod
    async def _close_socket(session: Session) -> None:
        with contextlib.suppress(Exception):
            await session.websocket.close(code=1013)

    # --- one websocket ----------------------------------------------------------------------------
    async def handle(self, websocket: WebSocket) -> None:
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        if len(sid) > MAX_CLIENT_ID_LEN:
            sid = uuid.uuid4().hex
        await websocket.accept()
        old = self.sessions.get(sid)
        if old is not None:  # the same client reconnected: the newest socket wins
            self._kick(old)
        session = Session(sid, websocket, self.queue_size)
        self.sessions[sid] = session
        session.send(dumps_str(messages.status_message(self.backend.queue_remaining(), sid)))
        running = self.backend.running_node(sid)
        if running is not None:
            prompt_id, node = running
            session.send(dumps_str(messages.executing_message(prompt_id, node)))
        sender = asyncio.create_task(session.pump())
        try:
            await self._receive(session)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            if self.sessions.get(sid) is session:
                del self.sessions[sid]
            session.close()
            with contextlib.suppress(Exception):
                await sender

    async def _receive(self, session: Session) -> None:
        while True:
            message = await session.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text:
                self._on_client_message(session, text)

    def _on_client_message(self, session: Session, text: str) -> None:
        try:
            msg = orjson.loads(text)  # bounded nesting (orjson refuses > 1024 levels)
        except orjson.JSONDecodeError:
            return
        if not isinstance(msg, dict):
            return
        if msg.get("type") == "feature_flags" and isinstance(msg.get("data"), dict):
            session.flags = msg["data"]
            session.send(dumps_str({"type": "feature_flags", "data": self.server_flags}))
