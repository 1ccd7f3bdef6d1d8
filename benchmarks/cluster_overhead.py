"""Cluster overhead: the same trace of demo txt2img prompts (20 steps) run by the embedded engine
(replicas as threads in this process) and by the same engine with `--cluster ray` (a local Ray
started on this machine; text encoder, denoiser and VAE each in a Ray actor), in one run. The
arms take turns request by request (the order rotates) so all see the same machine state:
- embedded;
- ray: per-step denoiser calls over the direct channel to the actor (the default);
- ray-calls: the same actors with every call a Ray actor call (LEGO_RAY_DIRECT=0), i.e. what
  the direct channel saves.
Reports per-request latency (p50, p95) of each arm, the latency each Ray arm adds per request
(p50, p95 of the paired differences with the embedded request of the same round), the ratio,
and the tensor hops by transport (count, bytes, mean time) of the default Ray arm.
Goal: Ray mode adds <= 50 ms p50 per request.

    .venv/bin/python benchmarks/cluster_overhead.py [--requests 20] [--steps 20] [--size 64]
        [--models DIR] [--out results.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lego_backend import process_env

process_env.configure()
# A loopback-only Ray for this run: no token file written into ~/.ray.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch

from lego_backend.backend import Backend
from lego_backend.cluster.runtime import connect, disconnect
from lego_backend.dataplane.transport import HOPS
from lego_backend.models.demo import build_demo_models
from lego_backend.runtime.records import PromptRequest
from tests.integration.engine.helpers import make_backend, txt2img


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def run_one(backend: Backend, seed: int, steps: int, size: int) -> float:
    backend.cache.clear()  # a full run each time (models stay loaded)
    prompt = txt2img("a red circle on a blue background", seed=seed, size=size, steps=steps)
    start = time.perf_counter()
    backend.submit(PromptRequest(prompt, client_id=None))
    record = backend.run_next()
    elapsed = time.perf_counter() - start
    assert record is not None and record.status == "success", record and record.messages
    return elapsed


def bare_round_trips(n: int, nbytes: int = 20 * 1024) -> dict[str, float]:
    """Mean round trip (ms) of an echo of `nbytes` to one actor: as a Ray actor call and over
    the direct channel (cluster/direct.py), alternating, so both see the same machine."""
    import numpy as np
    import ray

    from lego_backend.cluster.direct import DirectChannel, DirectServer

    @ray.remote(num_cpus=0)
    class Echo:
        def __init__(self) -> None:
            self.server: DirectServer | None = None

        def open(self):
            self.server = DirectServer(ray.util.get_node_ip_address(), lambda m: m)
            return self.server.address

        def echo(self, message):
            return message

    actor = Echo.remote()
    channel = DirectChannel(ray.get(actor.open.remote()))
    payload = [np.zeros(nbytes // 4, np.float32)]
    times: dict[str, float] = {"ray_call_ms": 0.0, "direct_ms": 0.0}
    try:
        for i in range(n + 20):  # the first 20 warm up
            start = time.perf_counter()
            ray.get(actor.echo.remote(payload))
            mid = time.perf_counter()
            channel.call(payload)
            end = time.perf_counter()
            if i >= 20:
                times["ray_call_ms"] += 1000 * (mid - start) / n
                times["direct_ms"] += 1000 * (end - mid) / n
    finally:
        channel.close()
        ray.kill(actor)
    return times


def _add_hops(total: dict[str, dict[str, float]], snap: dict[str, dict[str, float]]) -> None:
    for label, h in snap.items():
        row = total.setdefault(label, {"hops": 0, "bytes": 0, "seconds": 0.0})
        for k in row:
            row[k] += h[k]


def _finish_hops(total: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {label: {**h, "mean_ms": 1000.0 * h["seconds"] / h["hops"] if h["hops"] else 0.0}
            for label, h in sorted(total.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--round-trips", type=int, default=200,
                        help="bare 20 KB echoes to one actor, Ray call vs direct channel")
    args = parser.parse_args()
    torch.set_num_threads(1)  # Ray actors run one torch thread each: same for the embedded side
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        models = args.models or tmp / "models"
        if args.models is None:
            build_demo_models(models)
        start = time.perf_counter()
        cluster = connect("ray", init_kwargs={"num_cpus": os.cpu_count() or 2,
                                    "object_store_memory": 200 * 1000 * 1000})
        ray_start_s = time.perf_counter() - start
        embedded = make_backend(tmp / "embedded", models)
        base = make_backend(tmp / "ray", models)
        on_ray = Backend(dataclasses.replace(base.config, replica_runtime="ray"))
        try:
            for i in range(args.warmup):  # model loads, actor starts, direct channel opens
                run_one(embedded, 1000 + i, args.steps, args.size)
                for direct in (True, False):
                    cluster.direct = direct
                    run_one(on_ray, 1000 + i, args.steps, args.size)
            load_before = os.getloadavg()
            emb, ray_s, calls_s = [], [], []
            hops: dict[str, dict[str, float]] = {}
            arms = [(embedded, emb, True), (on_ray, ray_s, True), (on_ray, calls_s, False)]
            for i in range(args.requests):  # rotate who goes first
                k = i % len(arms)
                for backend, times, direct in arms[k:] + arms[:k]:
                    cluster.direct = direct
                    HOPS.reset()
                    times.append(run_one(backend, i, args.steps, args.size))
                    if times is ray_s:
                        _add_hops(hops, HOPS.snapshot())
            cluster.direct = True
            hops = _finish_hops(hops)
            load_after = os.getloadavg()
            services = on_ray.services_report()["services"]
            bare = bare_round_trips(args.round_trips) if args.round_trips else {}
        finally:
            on_ray.stop()
            embedded.stop()
            disconnect()
    added = [r - e for r, e in zip(ray_s, emb)]
    added_calls = [r - e for r, e in zip(calls_s, emb)]
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "torch_threads": 1},
        "config": {"requests": args.requests, "warmup": args.warmup, "steps": args.steps,
                   "size": args.size, "graph": "demo txt2img (CFG: 2 rows per step)"},
        "ray_start_s": ray_start_s,
        "load_average_1m": {"before": load_before[0], "after": load_after[0]},
        "embedded_ms": {"p50": 1000 * percentile(emb, 50), "p95": 1000 * percentile(emb, 95)},
        "ray_ms": {"p50": 1000 * percentile(ray_s, 50), "p95": 1000 * percentile(ray_s, 95)},
        "added_ms": {"p50": 1000 * percentile(added, 50), "p95": 1000 * percentile(added, 95)},
        "ray_calls_ms": {"p50": 1000 * percentile(calls_s, 50),
                         "p95": 1000 * percentile(calls_s, 95)},
        "added_calls_ms": {"p50": 1000 * percentile(added_calls, 50),
                           "p95": 1000 * percentile(added_calls, 95)},
        "ratio_p50": statistics.median(ray_s) / statistics.median(emb),
        "hops": hops,
        "bare_round_trip_20kb": bare,
        "hops_per_request": {k: v["hops"] / args.requests for k, v in hops.items()},
        "replicas": {s["kind"]: s["replica_detail"] for s in services},
        "goal": "added p50 <= 50 ms",
    }
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"embedded   p50 {result['embedded_ms']['p50']:8.1f} ms  "
          f"p95 {result['embedded_ms']['p95']:8.1f} ms")
    print(f"ray        p50 {result['ray_ms']['p50']:8.1f} ms  p95 {result['ray_ms']['p95']:8.1f} ms")
    print(f"added      p50 {result['added_ms']['p50']:8.1f} ms  "
          f"p95 {result['added_ms']['p95']:8.1f} ms  (ray/embedded p50 {result['ratio_p50']:.2f}, "
          f"goal: added p50 <= 50 ms)")
    print(f"ray-calls  p50 {result['ray_calls_ms']['p50']:8.1f} ms  "
          f"p95 {result['ray_calls_ms']['p95']:8.1f} ms  added p50 "
          f"{result['added_calls_ms']['p50']:.1f} ms  p95 {result['added_calls_ms']['p95']:.1f} ms"
          "  (every call a Ray actor call)")
    if bare:
        print(f"bare 20 KB round trip: ray call {bare['ray_call_ms']:.2f} ms, "
              f"direct channel {bare['direct_ms']:.2f} ms")
    for label, h in hops.items():
        print(f"hop {label:<20} {h['hops'] / args.requests:6.1f}/request  "
              f"{h['bytes'] / max(1, h['hops']):9.0f} B/hop  mean {h['mean_ms']:.2f} ms")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
