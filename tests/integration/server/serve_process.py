"""`lego serve` as a real subprocess with its own folders, for tests that kill it for real: a
free loopback port per start, readiness by polling, SIGKILL, and a stop that always reaps."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


class ServeProcess:
    def __init__(self, workdir: Path, models: Path, *flags: str):
        self.workdir = workdir
        self.models = models
        self.flags = flags
        self.output = workdir / "output"
        self.data = workdir / "data"
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_s: float = 120.0) -> httpx.Client:
        """Start (again) with the same folders on a new port; returns a client once it answers."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "lego_backend.cli", "serve", "--port", str(port),
               "--models", str(self.models), "--output", str(self.output),
               "--input", str(self.workdir / "input"), "--data", str(self.data),
               "--threads", "1", *self.flags]
        env = {**os.environ, "LEGO_HOME": str(self.workdir / "home")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        http = httpx.Client(base_url=self.url, timeout=20)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lego serve exited ({self.proc.returncode}):\n{self.log()}")
            try:
                if http.get("/queue").status_code == 200:
                    return http
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"lego serve did not answer in {timeout_s}s:\n{self.log()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")[-3000:]


def wait_for(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
