"""The direct driver-to-actor channel (cluster/direct.py) without Ray: payloads arrive equal and
writable, errors raised by the actor's handler reach the caller, a peer without the token is
never answered, a dead peer is reported, and a slow reply keeps asking `waiting()`."""
from __future__ import annotations

import pickle
import socket
import threading
import time

import numpy as np
import pytest
import torch

from lego_backend.cluster.direct import (
    ChannelClosed,
    DirectAddress,
    DirectChannel,
    DirectServer,
    recv_message,
    send_message,
)
from lego_backend.cluster.wire import from_payload, to_payload


@pytest.fixture
def server():
    calls: list = []

    def handle(message):
        calls.append(message)
        op = message[0]
        if op == "echo":
            return message[1]
        if op == "double":
            return [from_payload(a) * 2 for a in message[1]]
        if op == "fail":
            raise ValueError("bad input shape (2, 3)")
        if op == "unpicklable":
            err = RuntimeError("x")
            err.lock = threading.Lock()  # type: ignore[attr-defined]
            raise err
        if op == "sleep":
            time.sleep(message[1])
            return "woke"
        raise KeyError(op)

    srv = DirectServer("127.0.0.1", handle)
    srv.calls = calls  # type: ignore[attr-defined]
    yield srv
    srv.close()


@pytest.fixture
def channel(server):
    ch = DirectChannel(server.address, poll_s=0.05)
    yield ch
    ch.close()


def test_payloads_arrive_equal_and_writable(channel):
    x = torch.randn(2, 4, 8, 8)
    ctx = torch.randn(2, 77, 32)
    reply, sent = channel.call(("echo", {"x": to_payload(x), "ctx": to_payload(ctx),
                                         "label": "unet", "n": 3}))
    assert reply["label"] == "unet" and reply["n"] == 3
    back = from_payload(reply["x"])
    assert torch.equal(back, x) and torch.equal(from_payload(reply["ctx"]), ctx)
    assert reply["x"].flags.writeable  # arrives in fresh memory: a tensor over it, no copy
    back += 1  # and modifying it cannot touch the sender's tensor
    assert not torch.equal(back, x)
    assert sent >= x.numel() * 4 + ctx.numel() * 4  # the arrays travelled out of band


def test_a_large_payload_and_a_tensor_without_numpy_dtype(channel):
    big = np.arange(3_000_000, dtype=np.float32)  # 12 MB: many socket reads
    bf = torch.arange(10).to(torch.bfloat16)
    reply, _ = channel.call(("double", [big, to_payload(bf)]))
    assert torch.equal(reply[0], torch.from_numpy(big) * 2)
    assert torch.equal(reply[1], bf * 2)


def test_an_error_in_the_actor_reaches_the_caller_and_the_channel_lives_on(channel):
    with pytest.raises(ValueError, match=r"bad input shape \(2, 3\)"):
        channel.call(("fail",))
    with pytest.raises(RuntimeError, match="RuntimeError: x"):  # sent as text
        channel.call(("unpicklable",))
    assert channel.call(("echo", 5))[0] == 5


def test_a_peer_without_the_token_is_never_answered(server):
    wrong = DirectAddress(server.address.host, server.address.port, b"\x00" * 16)
    intruder = DirectChannel(wrong, poll_s=0.05)
    try:
        with pytest.raises(ChannelClosed):
            intruder.call(("echo", 1))
    finally:
        intruder.close()
    assert server.calls == []  # nothing from it was unpickled, let alone run
    ok = DirectChannel(server.address)  # the real driver still gets in afterwards
    try:
        assert ok.call(("echo", 2))[0] == 2
    finally:
        ok.close()


def test_a_reconnect_replaces_the_old_connection(server):
    first = DirectChannel(server.address)
    assert first.call(("echo", 1))[0] == 1
    first.close()  # e.g. the replica dropped it after an error
    second = DirectChannel(server.address)
    try:
        assert second.call(("echo", 2))[0] == 2
    finally:
        second.close()


def test_waiting_is_asked_while_the_reply_is_late_and_can_give_up(channel):
    asked: list[float] = []
    reply, _ = channel.call(("sleep", 0.3), lambda: asked.append(time.monotonic()))
    assert reply == "woke" and len(asked) >= 2

    class ActorDead(Exception):
        pass

    def dead() -> None:
        raise ActorDead("the actor's node was declared dead")

    with pytest.raises(ActorDead):
        channel.call(("sleep", 0.5), dead)
    with pytest.raises(ChannelClosed):  # abandoned mid-reply: never reused out of step
        channel.call(("echo", 1))


def test_a_peer_that_dies_mid_call_is_reported():
    listener = socket.create_server(("127.0.0.1", 0))

    def accept_and_die() -> None:
        conn, _ = listener.accept()
        conn.recv(16)  # the token
        recv_message(conn)  # the call arrives; then the process "dies"
        conn.close()

    peer = threading.Thread(target=accept_and_die)
    peer.start()
    ch = DirectChannel(DirectAddress("127.0.0.1", listener.getsockname()[1], b"t" * 16))
    try:
        with pytest.raises(ChannelClosed):
            ch.call(("unet", [np.zeros(10, np.float32)]))
    finally:
        ch.close()
        peer.join()
        listener.close()


def test_framing_round_trip_over_a_socket_pair():
    a, b = socket.socketpair()
    try:
        value = {"arrays": [np.ones((3, 3), np.float16), np.zeros(0, np.float32)], "s": "x"}
        n = send_message(a, value)
        got = recv_message(b)
        assert n >= 9 * 2  # the array's bytes went out (out of band, not inside the pickle)
        assert len(pickle.dumps(value, protocol=5, buffer_callback=lambda b: None)) < 9 * 2 + 200
        assert got["s"] == "x" and np.array_equal(got["arrays"][0], value["arrays"][0])
        assert got["arrays"][1].shape == (0,)
    finally:
        a.close()
        b.close()
