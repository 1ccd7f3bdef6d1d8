"""A `lego serve` subprocess for one benchmark mode: a free loopback port, its own output, input
and home folders (a benchmark must not touch the user's), readiness by polling, and a stop that
always reaps the process. The server runs in its own interpreter so the benchmark client's CPU
use and the server's are accounted separately and a crashed server cannot take the bench down."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

import httpx


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; carries the tail of its log."""


@dataclass(frozen=True)
class ServerSpec:
    mode: str | None  # `--mode`; None runs `lego serve` without it (servers older than modes)
    models: Path  # models root (ComfyUI layout)
    workdir: Path  # per-mode scratch: output/, input/, home/, server.log
    admission: str | None = None  # `--admission` if set
    threads: int | None = None  # `--threads` if set
    ready_timeout_s: float = 120.0

    def command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "lego_backend.cli", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--models", str(self.models),
               "--output", str(self.workdir / "output"), "--input", str(self.workdir / "input"),
               "--data", str(self.workdir / "home" / "data")]
        if self.mode is not None:
            cmd += ["--mode", self.mode]
        if self.admission is not None:
            cmd += ["--admission", self.admission]
        if self.threads is not None:
            cmd += ["--threads", str(self.threads)]
        return cmd


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """`with ServerProcess(spec) as srv:` starts the server, waits until it answers and stops
    it on exit. `srv.base_url` is its address."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = spec.workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for sub in ("output", "input", "home/data"):
            (self.spec.workdir / sub).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["LEGO_HOME"] = str(self.spec.workdir / "home")  # temp files stay in the workdir
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(self.spec.command(self.port), stdout=self._log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def wait_ready(self) -> None:
        """Poll until the HTTP API answers; fail fast if the process exits (a bad flag, say)."""
        assert self._proc is not None, "start() first"
        deadline = time.monotonic() + self.spec.ready_timeout_s
        with httpx.Client(base_url=self.base_url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                code = self._proc.poll()
                if code is not None:
                    raise ServerStartError(f"`lego serve` (mode {self.spec.mode}) exited with "
                                           f"code {code}:\n{self.log_tail()}")
                try:
                    if http.get("/system_stats").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.2)
        raise ServerStartError(f"`lego serve` (mode {self.spec.mode}) not ready after "
                               f"{self.spec.ready_timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=timeout_s)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
