"""A direct socket from the driver to one replica actor, for the calls a sampler makes at every
step (a denoiser forward, a ControlNet's residuals).

Why not a Ray actor call: each one costs 1-4 ms of Ray's own work (task submission, gRPC, the
core worker's threads) however small the call; a 20-step CFG prompt makes 20 of them in a row,
and that alone was most of what Ray mode added per request. Ray's compiled graphs cut the cost
to ~0.2 ms but their actors busy-poll a CPU core while idle (measured: 78% of a core), which a
small machine cannot give away. A blocking socket costs a loopback round trip (~0.1 ms) and no
CPU while idle. Ray still does everything else: it places and starts the actor, tells us its
address and the token (over Ray's own channel), reports its death, and carries every other call
and every large one-shot result through its object store.

Wire format, per message: a header (`!QI` = pickle length, number of out-of-band buffers, then
one `!Q` length per buffer), the pickle (protocol 5), then the buffers. Arrays travel as
out-of-band buffers: no copy into the pickle on the way out, and they arrive in fresh
writable memory (a tensor can be made over them without a copy). A connection starts with the
actor's token; nothing is unpickled from a peer that did not send it.
"""
from __future__ import annotations

import contextlib
import hmac
import logging
import pickle
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("lego.cluster")
TOKEN_BYTES = 16
_HEAD = struct.Struct("!QI")
_LEN = struct.Struct("!Q")


class ChannelClosed(ConnectionError):
    """The other end went away (its process died, or the connection broke)."""


@dataclass(frozen=True)
class DirectAddress:
    """Where an actor's direct channel listens, and the token a connection must start with."""

    host: str
    port: int
    token: bytes


@dataclass(frozen=True)
class RemoteFailure:
    """A reply saying the call raised in the actor: the exception itself if it pickles."""

    error: BaseException


# --- framing -------------------------------------------------------------------------------------
def send_message(sock: socket.socket, value: Any) -> int:
    """Send one message; returns the bytes sent."""
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    head = _HEAD.pack(len(body), len(views)) + b"".join(_LEN.pack(v.nbytes) for v in views)
    sock.sendall(head + body if len(body) < 65536 else head)
    if len(body) >= 65536:
        sock.sendall(body)
    for view in views:
        sock.sendall(view)
    return len(head) + len(body) + sum(v.nbytes for v in views)


def recv_message(sock: socket.socket, waiting: Callable[[], None] | None = None) -> Any:
    """Receive one message. With `waiting`, the socket has a timeout and `waiting()` is called
    each time it passes without data (it raises to give up, e.g. when the peer is known dead)."""
    body_len, count = _HEAD.unpack(_recv_exact(sock, _HEAD.size, waiting))
    lens = [_LEN.unpack(_recv_exact(sock, _LEN.size, waiting))[0] for _ in range(count)]
    body = _recv_exact(sock, body_len, waiting)
    buffers = [_recv_exact(sock, n, waiting) for n in lens]
    return pickle.loads(body, buffers=buffers)


def _recv_exact(sock: socket.socket, n: int, waiting: Callable[[], None] | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:], n - got)
        except TimeoutError:
            if waiting is None:
                raise
            waiting()
            continue
        except OSError as exc:
            raise ChannelClosed(f"direct channel broke: {exc}") from None
        if k == 0:
            raise ChannelClosed("direct channel closed by the other end")
        got += k
    return buf


def _fast(sock: socket.socket) -> None:
    """Small messages leave at once (no Nagle delay waiting for the peer's ACK)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


# --- the actor's end -----------------------------------------------------------------------------
class DirectServer:
    """Listens on `host` (the actor's node address) and answers each message with
    `handle(message)`, one at a time, on its own thread. A new connection with the right token
    replaces the previous one (the driver reconnected); `on_connect()` runs before its first
    message (state shared with the previous connection starts over)."""

    def __init__(self, host: str, handle: Callable[[Any], Any],
                 on_connect: Callable[[], None] | None = None):
        self._handle = handle
        self._on_connect = on_connect
        self._token = secrets.token_bytes(TOKEN_BYTES)
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.5)  # the accept loop checks for close() this often
        self.address = DirectAddress(host, self._listener.getsockname()[1], self._token)
        self._closed = False
        self._conn: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="lego-direct", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # listener closed
                return
            conn.settimeout(None)
            self._conn = conn
            with conn:
                _fast(conn)
                try:
                    token = bytes(_recv_exact(conn, TOKEN_BYTES, None))
                except ChannelClosed:
                    continue
                if not hmac.compare_digest(token, self._token):
                    log.warning("direct channel: refused a connection without the token")
                    continue
                if self._on_connect is not None:
                    self._on_connect()
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        while not self._closed:
            try:
                message = recv_message(conn)
            except ChannelClosed:
                return
            try:
                reply: Any = self._handle(message)
            except Exception as exc:  # noqa: BLE001 - the caller gets it, the channel lives on
                reply = RemoteFailure(_picklable(exc))
            try:
                send_message(conn, reply)
            except OSError:
                return

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept (Linux)
        with contextlib.suppress(OSError):
            self._listener.close()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any failure to round-trip: send its text instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")


# --- the driver's end ----------------------------------------------------------------------------
class DirectChannel:
    """One connection to an actor's DirectServer. Not thread-safe: the replica calls it under
    its actor lock, one batch at a time."""

    def __init__(self, address: DirectAddress, connect_timeout_s: float = 10.0,
                 poll_s: float = 2.0):
        self.address = address
        self.poll_s = poll_s
        self._sock = socket.create_connection((address.host, address.port),
                                              timeout=connect_timeout_s)
        _fast(self._sock)
        self._sock.sendall(address.token)
        self._sock.settimeout(poll_s)

    def call(self, message: Any, waiting: Callable[[], None] | None = None) -> tuple[Any, int]:
        """Send `message`, return (reply, bytes sent). While no reply has come, `waiting()` is
        called every `poll_s` (it raises if the actor is known dead: a silent node never
        closes the socket). A call that raised in the actor raises here."""
        try:
            sent = send_message(self._sock, message)
            reply = recv_message(self._sock, waiting or _keep_waiting)
        except TimeoutError:
            self.close()
            raise ChannelClosed("direct channel: the actor stopped reading") from None
        except OSError as exc:
            self.close()
            raise ChannelClosed(f"direct channel broke: {exc}") from None
        except BaseException:  # given up mid-message: the stream is out of step for good
            self.close()
            raise
        if isinstance(reply, RemoteFailure):
            raise reply.error
        return reply, sent

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def _keep_waiting() -> None:
    return None
