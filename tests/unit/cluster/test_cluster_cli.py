"""`lego cluster status` against a server (a stand-in answering /lego/services on loopback),
its human format, and the `lego serve` cluster flags' refusals."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lego_backend.cli import build_parser, main
from lego_backend.cluster.cli import connect_from_args, format_status

REPORT = {
    "mode": "micro",
    "services": [{
        "service": "denoiser:lego-demo-sd15.safetensors@0123456789", "kind": "denoiser",
        "replicas": 2, "queue_depth": 3, "batches_run": 40, "calls_run": 70, "mean_batch": 1.75,
        "resident_bytes": 3 << 20,
        "replica_detail": [
            {"runtime": "ray", "pid": 4242, "node": "aaaabbbbccccdddd", "node_ip": "10.1.2.3",
             "loaded": True, "queue_depth": 3, "restarts": 1, "step_channel": "direct"},
            {"runtime": "ray", "pid": 4343, "node": "eeeeffff00001111", "node_ip": "10.1.2.4",
             "loaded": False, "queue_depth": 0, "restarts": 4,
             "error": "denoiser:x: replica actor died 4 times in a row; taken out of service"}],
    }],
    "scaling_decisions": [{"service": "denoiser:x", "from": 1, "to": 2, "why": "load 12"}],
    "cluster": {
        "address": "10.1.2.3:6379", "transports": ["inproc", "shm", "ray"], "actors_started": 6,
        "nvshmem": {"available": False, "reason": "package missing", "detail": ""},
        "nodes": [{"node": "aaaabbbbccccdddd", "alive": True, "address": "10.1.2.3",
                   "resources": {"CPU": 8.0, "GPU": 1.0, "memory": 32.0 * (1 << 30),
                                 "node:10.1.2.3": 1.0}, "driver": True},
                  {"node": "eeeeffff00001111", "alive": False, "address": "10.1.2.4",
                   "resources": {"CPU": 8.0}, "driver": False}],
        "available_resources": {"CPU": 7.0},
        "hops": {"ray:cross-node": {"hops": 10, "bytes": 20480, "seconds": 0.02,
                                    "mean_ms": 2.0}},
    },
}


def test_format_shows_nodes_replicas_queues_errors_and_hops():
    text = format_status(REPORT)
    assert "Ray at 10.1.2.3:6379, 1 node(s) alive" in text
    assert "aaaabbbbcccc  10.1.2.3" in text and "GPU=1" in text and "(this server)" in text
    assert "eeeeffff0000" in text and "DEAD" in text
    assert "replicas 2  queue 3" in text
    assert "ray pid 4242  node aaaabbbbcccc 10.1.2.3" in text
    assert "restarts 1  steps via direct" in text
    assert "OUT OF SERVICE: denoiser:x: replica actor died 4 times" in text
    assert "1 -> 2 (load 12)" in text and "ray:cross-node" in text
    assert "nvshmem: package missing" in text


def test_format_without_a_cluster():
    text = format_status({"services": [], "cluster": None})
    assert "cluster: none" in text and "none yet" in text


@pytest.fixture
def fake_server():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Authorization")))
            body = json.dumps(REPORT).encode()
            self.send_response(200 if self.path == "/lego/services" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_cluster_status_reads_the_server(fake_server, capsys):
    url, seen = fake_server
    assert main(["cluster", "status", "--url", url, "--token", "s3cret"]) == 0
    out = capsys.readouterr().out
    assert "ray pid 4242" in out and "OUT OF SERVICE" in out
    assert seen == [("/lego/services", "Bearer s3cret")]
    assert main(["cluster", "status", "--url", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cluster"]["actors_started"] == 6


def test_cluster_status_without_a_server_says_so(capsys):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["cluster", "status", "--url", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_serve_flags_parse_and_refuse():
    args = build_parser().parse_args(["serve", "--cluster", "ray", "--replica-resources",
                                      "denoiser=num_gpus=1,memory=6GiB"])
    assert args.cluster == "ray"
    kind, res = args.replica_resources[0]
    assert kind == "denoiser" and res.num_gpus == 1 and res.memory == 6 << 30
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--replica-resources", "denoiser=gpus"])
    alone = build_parser().parse_args(["serve", "--nvshmem"])
    assert "need --cluster" in connect_from_args(alone)
    mixed = build_parser().parse_args(["serve", "--cluster", "ray", "--replica-runtime",
                                       "process"])
    assert "drop --replica-runtime process" in connect_from_args(mixed)
    assert connect_from_args(build_parser().parse_args(["serve"])) is None
