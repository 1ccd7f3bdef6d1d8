"""`lego serve --listen A,B` (ComfyUI's comma-separated form): one server answering on every
address, the token rule applied to the whole list."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comfy_compat.security import Security, bind_error

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ok(url: str, proc: subprocess.Popen, log: Path,
             seconds: float = 120.0) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
        try:
            return httpx.get(url, timeout=2.0)
        except httpx.TransportError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {seconds}s: {log.read_text()}")


def test_one_server_answers_on_each_listed_address(tmp_path: Path, demo_models: Path) -> None:
    port = _free_port()
    env = {**os.environ, "LEGO_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("LEGO_AUTH_TOKEN", None)
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lego_backend.cli", "serve", "--listen",
             "127.0.0.1,127.0.0.2", "--port", str(port), "--models", str(demo_models)],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        first = _wait_ok(f"http://127.0.0.1:{port}/api/system_stats", proc, log)
        second = _wait_ok(f"http://127.0.0.2:{port}/api/system_stats", proc, log)
        assert first.status_code == second.status_code == 200
        assert first.json()["system"]["lego_version"] == second.json()["system"]["lego_version"]
        assert proc.poll() is None  # one process answered on both
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_list_with_any_outside_address_needs_the_token() -> None:
    assert bind_error("127.0.0.1,127.0.0.2", None) is None
    assert "needs an API token" in (bind_error("127.0.0.1,192.0.2.1", None) or "")
    assert bind_error("127.0.0.1,192.0.2.1", "t" * 32) is None
    # a loopback-only list accepts its own names in Host (and no DNS-rebound ones)
    hosts = Security.for_bind("127.0.0.1,127.0.0.2", None).allowed_hosts
    assert hosts is not None and {"127.0.0.1", "127.0.0.2"} <= hosts and "evil.example" not in hosts
    assert Security.for_bind("127.0.0.1,192.0.2.1", "t" * 32).allowed_hosts is None
