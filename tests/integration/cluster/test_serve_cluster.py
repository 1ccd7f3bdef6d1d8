"""What a user runs: `lego serve --cluster HOST:PORT` as a real process joined to the local Ray
cluster, a prompt through the ComfyUI API, then `lego cluster status` against that server."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.engine.helpers import txt2img

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lego_serve_on_the_cluster_and_cluster_status(ray_cluster, demo_models, tmp_path):
    port = _port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "lego_backend.cli", "serve", "--port", str(port),
           "--models", str(demo_models), "--output", str(tmp_path / "out"),
           "--input", str(tmp_path / "in"), "--data", str(tmp_path / "data"), "--threads", "1",
           "--cluster", ray_cluster, "--replica-resources", "denoiser=node_b=0.01",
           "--replica-resources", "text_encoder=node_a=0.01,num_cpus=0"]
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "LEGO_HOME": str(tmp_path / "home")})
    try:
        http = httpx.Client(base_url=url, timeout=20)
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "lego serve did not answer"
            try:
                if http.get("/queue").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        reply = http.post("/prompt", json={"prompt": txt2img(seed=3, steps=3),
                                           "client_id": "cluster-test"})
        assert reply.status_code == 200, reply.text
        prompt_id = reply.json()["prompt_id"]
        deadline = time.monotonic() + 150
        while True:
            history = http.get(f"/history/{prompt_id}").json()
            if prompt_id in history and history[prompt_id]["status"].get("completed"):
                break
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.3)
        assert history[prompt_id]["status"]["status_str"] == "success"
        assert history[prompt_id]["outputs"]["9"]["images"]

        services = {s["kind"]: s for s in http.get("/lego/services").json()["services"]}
        den = services["denoiser"]["replica_detail"][0]
        assert den["runtime"] == "ray" and den["node_ip"] == "127.0.0.3"
        assert den["pid"] != server.pid

        status = subprocess.run([sys.executable, "-m", "lego_backend.cli", "cluster", "status",
                                 "--url", url], capture_output=True, text=True, timeout=60,
                                check=False)
        assert status.returncode == 0, status.stderr
        out = status.stdout
        assert "2 node(s) alive" in out and "127.0.0.2" in out and "127.0.0.3" in out
        assert "node_b=1" in out  # the nodes' resources
        assert f"ray pid {den['pid']}" in out and "queue 0" in out
        assert "(this server)" in out
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()
