"""Closed-loop throughput: N prompts of the benchmark mix submitted at once to an in-process
backend, timed until the last one finishes. Measures the serving core at saturation, without
HTTP or websockets: makespan, requests/s, process CPU per request and the mean denoiser batch.

    python -m lego_backend.bench.closed_loop --mode micro --models DIR [-n 36] [--steps 20]

The machine's other load changes these numbers a lot: compare builds by interleaving runs
(docs/serving-performance.md)."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lego_backend import process_env


@dataclass(frozen=True)
class LoopResult:
    mode: str
    requests: int
    steps: int
    makespan_s: float
    requests_per_s: float
    cpu_s_per_request: float  # process CPU (every thread) while the N prompts ran
    cpu_per_wall: float  # how many cores the process kept busy
    mean_denoiser_batch: float  # calls per denoiser forward
    denoiser_batches: int
    errors: int
    load_avg_1m: float  # the machine's load when the run started (other jobs included)


def run(mode: str, models: Path, n: int = 36, steps: int = 20, concurrency: int = 16,
        torch_threads: int | None = None, seed: int = 1, timeout_s: float = 900.0,
        replicas: tuple[tuple[str, int, int], ...] = (), replica_runtime: str = "thread"
        ) -> LoopResult:
    process_env.configure()  # before torch is imported (by the backend)
    from lego_backend.backend import Backend
    from lego_backend.bench.mix import KINDS, MixConfig, RequestFactory, input_images, load_prompts
    from lego_backend.config import BackendConfig
    from lego_backend.runtime import events as ev
    from lego_backend.runtime.records import PromptRequest

    with tempfile.TemporaryDirectory(prefix="lego-closed-loop-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = BackendConfig(models_dir=models, output_dir=tmp / "out", input_dir=tmp / "in",
                            temp_dir=tmp / "temp", data_dir=tmp / "data", mode=mode,
                            max_concurrent_prompts=concurrency, torch_threads=torch_threads,
                            replicas=replicas, replica_runtime=replica_runtime)
        for d in (cfg.output_dir, cfg.input_dir, cfg.temp_dir):
            d.mkdir(parents=True, exist_ok=True)
        mix = MixConfig(steps=steps, hires_steps=steps)
        for name, data in input_images(mix).items():
            (cfg.input_dir / name).write_bytes(data)
        backend = Backend(cfg)
        backend.start()
        try:
            factory = RequestFactory(mix, load_prompts(), seed)
            done = threading.Event()
            expected = [len(KINDS)]
            finished: list[float] = []

            def on_event(event: ev.Event) -> None:
                if isinstance(event, ev.PromptDone):
                    finished.append(time.monotonic())
                    if len(finished) >= expected[0]:
                        done.set()

            backend.add_listener(on_event)
            # Warm-up: one prompt of each kind loads every model and LoRA.
            for kind in KINDS:
                backend.submit(PromptRequest(factory.make(kind).prompt, client_id="warm"))
            done.wait(timeout_s)
            done.clear()
            finished.clear()
            expected[0] = n
            before = {s["service"]: s["batches_run"] for s in _denoisers(backend)}
            calls_before = {s["service"]: s["calls_run"] for s in _denoisers(backend)}
            requests = factory.draw(n)
            load = os.getloadavg()[0]
            cpu0, t0 = time.process_time(), time.monotonic()
            for r in requests:
                backend.submit(PromptRequest(r.prompt, client_id="bench"))
            done.wait(timeout_s)
            span = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            batches = sum(s["batches_run"] - before.get(s["service"], 0)
                          for s in _denoisers(backend))
            calls = sum(s["calls_run"] - calls_before.get(s["service"], 0)
                        for s in _denoisers(backend))
            errors = sum(1 for r in backend.history()
                         if r.status != "success" and r.client_id == "bench")
        finally:
            backend.stop()
    return LoopResult(mode, n, steps, round(span, 3), round(n / span, 3), round(cpu / n, 4),
                      round(cpu / span, 3), round(calls / batches, 3) if batches else 0.0,
                      batches, errors, round(load, 2))


def _denoisers(backend: Any) -> list[dict[str, Any]]:
    return [s for s in backend.services_report()["services"] if s["kind"] == "denoiser"]


def _replicas(text: str) -> tuple[str, int, int]:
    from lego_backend.cli import _replicas as parse

    return parse(text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("micro", "monolithic"), default="micro")
    p.add_argument("--models", type=Path, required=True,
                   help="models root with the demo models (lego demo models DIR builds them)")
    p.add_argument("-n", type=int, default=36, help="prompts submitted at once")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--concurrency", type=int, default=16, help="--max-concurrent")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--replicas", type=_replicas, action="append", default=[],
                   metavar="KIND=N|MIN:MAX", help="as `lego serve --replicas`")
    p.add_argument("--replica-runtime", choices=("thread", "process"), default="thread",
                   help="as `lego serve --replica-runtime`")
    args = p.parse_args(argv)
    result = run(args.mode, args.models, args.n, args.steps, args.concurrency,
                 args.torch_threads, replicas=tuple(args.replicas),
                 replica_runtime=args.replica_runtime)
    print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
