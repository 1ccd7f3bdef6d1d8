"""`lego profile --out FILE`: measure a simulator profile on this machine with the demo models
and the real services (lego_backend/services/), so the simulator can be checked against
`lego bench` on the same machine. A CPU profile (`device_type: cpu`) in three parts:

1. **Forwards**, per image size and batch size (requests; the median of `--reps` after two
   warm-up runs, the faster of `--passes` rounds over all of them): b denoiser calls of 2 rows each (cond and uncond, CFG in one batch)
   concatenated into one UNet forward, the same with a LoRA on every row, a ControlNet forward
   likewise, b text encodes (one per request: the server's output cache answers the fixed
   negative prompt), b VAE decodes and b VAE encodes (img2img).
2. **Host sharing**: k threads running batch-1 denoiser forwards at once (as the server's
   replica threads do); the total throughput at k over that of one thread is
   `host.concurrency_speedup` (each count's median of `--speedup-rounds` interleaved rounds).
3. **Per-request overheads**, through a real `lego serve --mode micro` on the demo models, one
   request at a time: the `lego bench` txt2img graph at two step counts (S1 < S2). The latency
   grows by (one step's forward + the per-step overhead) per step, so
   step overhead = slope - step forward, the forward being the server's own denoiser busy
   time per step in those requests (`/lego/services` `busy_s`). Of that, `step_cpu` is CPU
   work: the server process's CPU time (/proc) grows per step by (the forward's CPU time +
   step_cpu); the rest of the step overhead is waiting (thread hand-offs, scheduling behind
   other processes) that does not occupy the cores. The POST /prompt round trip is `request_pre` (HTTP, compile,
   admission); what remains after the forwards, the steps and `request_pre` is
   `request_post` (image saving, events, the reply). A lone ControlNet request spends more
   time outside its forwards (denoiser and ControlNet busy time) than a plain txt2img; that
   excess per step is `controlnet_call` (the hand-off to the ControlNet service and back).
   Every bench workflow kind alone is timed too and stored under `checks` (the simulator does
   not read them: `lego_backend.sim.fidelity` compares its own predictions with them)."""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lego_backend.sim.profile import SCHEMA, validate_profile

DEFAULT_SIZES = "64,128"  # the bench mix: 64 px, hires fix second pass at 128 px
DEFAULT_BATCHES = "1,2,4,8"  # up to the server's 16-row batch limit (8 CFG requests)
# Concurrent forwards timed for host sharing. Every count a monolithic server reaches with its
# six workflow workers, not just powers of two: on 2 cores the curve peaks at 2 and falls
# (1.11 at 2 jobs, 0.88 at 3, 0.80 at 4 measured together), so a straight line from 2 to 4
# put 3 jobs at 1.0, 13% fast where monolithic spends much of a loaded run.
DEFAULT_SPEEDUP_JOBS = "1,2,3,4,6,8"


def _median_cpu_ms(fn: Callable[[], Any], reps: int) -> float:
    """CPU time of this process (every thread) per call, median."""
    fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return round(1000 * statistics.median(times), 3)


def _process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None elsewhere."""
    try:
        import os
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# Torch thread counts a forward is timed with. The server's replicas each keep the faster of
# torch's default and 1 (services/intraop.py), so a forward is timed with both and the faster
# is its service time; `--threads N` fixes it, as it does for `lego serve`.
THREAD_CHOICES: list[int] = []


def _median_ms_at(fn: Callable[[], Any], reps: int) -> float:
    for _ in range(2):  # warm-up: first-call allocations and lazy init are not service time
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 3)


def _fastest_threads(fn: Callable[[], Any], reps: int) -> tuple[int, float]:
    """(thread count, median ms) of the faster count; leaves that count set."""
    import torch

    from lego_backend.services.intraop import apply

    timed = []
    for n in THREAD_CHOICES or [torch.get_num_threads()]:  # set by main(); else as it is
        apply(n)
        timed.append((_median_ms_at(fn, reps), n))
    ms, n = min(timed)
    apply(n)
    return n, ms


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    return _fastest_threads(fn, reps)[1]


class _Calls:
    """Service calls shaped as the server makes them for one image size."""

    def __init__(self, put: Callable[[Any], Any], size: int, lora: Any):
        self.put, self.size, self.lora = put, size, lora
        self.lat = size // 8

    def unet(self, b: int, cn: bool = False, lora: bool = False) -> list[Any]:
        import torch

        from lego_backend.services.protocol import ServiceCall

        ctx_dim = 32  # the demo CLIP's hidden size (lego_backend/models/demo.py)
        calls = []
        for _ in range(b):
            args: dict[str, Any] = {
                "x": self.put(torch.randn(2, 4, self.lat, self.lat)),
                "t": self.put(torch.full((2,), 500.0)),
                "context": self.put(torch.randn(2, 77, ctx_dim))}
            if cn:
                args["hint"] = self.put(torch.rand(2, 3, self.size, self.size))
                args["strength"] = 1.0
            if lora:
                args["adapters"] = (self.lora,)
            calls.append(ServiceCall("residuals" if cn else "unet", args))
        return calls

    def text(self, b: int) -> list[Any]:
        from lego_backend.services.protocol import ServiceCall
        return [ServiceCall("encode", {"text": "a photo of a cat"}) for _ in range(b)]

    def decode(self, b: int) -> list[Any]:
        import torch

        from lego_backend.services.protocol import ServiceCall
        return [ServiceCall("decode", {"latent": self.put(torch.randn(1, 4, self.lat, self.lat))})
                for _ in range(b)]

    def encode_image(self, b: int) -> list[Any]:
        import torch

        from lego_backend.services.protocol import ServiceCall
        return [ServiceCall("encode", {"image": self.put(torch.rand(1, self.size, self.size, 3))})
                for _ in range(b)]


def _row(services: dict[str, Any], calls: _Calls, b: int, reps: int) -> dict[str, Any]:
    """One batch size: each service timed on b requests' worth of calls."""
    unet, vae = services["unet"], services["vae"]
    row = {"batch": b,
           "step_ms": _median_ms(lambda: unet.run_batch(calls.unet(b)), reps),
           "controlnet_step_ms": _median_ms(
               lambda: services["controlnet"].run_batch(calls.unet(b, cn=True)), reps),
           "encode_ms": _median_ms(lambda: services["text_encoder"].run_batch(calls.text(b)),
                                   reps),
           "decode_ms": _median_ms(lambda: vae.run_batch(calls.decode(b)), reps),
           "lora_step_ms": _median_ms(lambda: unet.run_batch(calls.unet(b, lora=True)), reps),
           "vae_encode_ms": _median_ms(lambda: vae.run_batch(calls.encode_image(b)), reps)}
    print(f"[profile] {calls.size}px batch {b}: " + ", ".join(
        f"{k} {v}" for k, v in row.items() if k != "batch"), file=sys.stderr, flush=True)
    return row


def measure_speedup(fn: Callable[[], Any], counts: list[int], seconds: float,
                    torch_threads: int | None = None, rounds: int = 3) -> dict[str, float]:
    """Total throughput of k threads running `fn` in a loop at once, over one thread's; each
    thread with `torch_threads` torch threads (the replicas' choice) when given. Every count is
    timed in each of `rounds` interleaved rounds and keeps its median: one round of 2 s per
    count gave 0.95, 1.00, 1.08 and 1.14 at k=2 in four profiles of one quiet machine, and the
    simulator's latency under load moved by 7-11% per 0.1 of it."""
    from lego_backend.services.intraop import apply

    fn()
    rates: dict[int, list[float]] = {k: [] for k in counts}
    for _ in range(rounds):
        for k in counts:
            rates[k].append(_concurrent_rate(fn, k, seconds, torch_threads, apply))
            print(f"[profile] {k} concurrent forwards: {rates[k][-1]:.1f}/s", file=sys.stderr,
                  flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    return {str(k): round(med[k] / med[counts[0]], 4) for k in counts}


def _concurrent_rate(fn: Callable[[], Any], k: int, seconds: float, torch_threads: int | None,
                     apply: Callable[[int], Any]) -> float:
    """Calls of `fn` per second by k threads looping on it for `seconds`."""
    done = [0] * k
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        if torch_threads is not None:
            apply(torch_threads)
        while time.perf_counter() < stop:
            fn()
            done[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(k)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - began)


def measure_forwards(models: Path, sizes: list[int], batches: list[int], reps: int,
                     steps: int, speedup_counts: list[int], speedup_s: float, passes: int = 2,
                     speedup_rounds: int = 3
                     ) -> tuple[list[dict[str, Any]], dict[str, float]]:
    from lego_backend.dataplane.store import TensorStore
    from lego_backend.models.demo import DEMO_FILES
    from lego_backend.services.controlnet import ControlNetService
    from lego_backend.services.denoiser import DenoiserService
    from lego_backend.services.protocol import AdapterRef, ServiceSpec
    from lego_backend.services.text_encoder import TextEncoderService
    from lego_backend.services.vae import VaeService

    store = TensorStore()
    ckpt = models / DEMO_FILES["checkpoint"]
    cn_path = models / DEMO_FILES["controlnet"]
    services: dict[str, Any] = {}
    load_ms: dict[str, float] = {}
    weights: dict[str, int] = {}
    for name, cls, path in (("unet", DenoiserService, ckpt), ("text_encoder",
                            TextEncoderService, ckpt), ("vae", VaeService, ckpt),
                            ("controlnet", ControlNetService, cn_path)):
        kind = "denoiser" if name == "unet" else name
        svc = cls(ServiceSpec(kind, f"demo-{name}", path), store)
        t = time.perf_counter()
        svc.load()
        svc.loaded = True
        load_ms[name] = round(1000 * (time.perf_counter() - t), 3)
        weights[name] = svc.resident_bytes()
        services[name] = svc
    lora_path = models / DEMO_FILES["lora"]
    lora = AdapterRef("demo-lora", lora_path, 1.0)
    t = time.perf_counter()
    services["unet"].adapters.request(lora).result()  # loaded before any timed step
    load_ms["lora"] = round(1000 * (time.perf_counter() - t), 3)
    weights["lora"] = lora_path.stat().st_size
    out_models = []
    import torch
    torch.manual_seed(0)
    for size in sizes:
        calls = _Calls(store.put, size, lora)
        # every batch size in `passes` rounds, each entry the faster round's median: on a
        # shared 2-core box one round's first entries read up to 60% slow (three profiles of
        # one quiet machine measured the batch-1 step at 8.5, 9.7 and 13.8 ms)
        rounds = [[_row(services, calls, b, reps) for b in batches] for _ in range(passes)]
        rows = [{k: min(r[k] for r in same) for k in same[0]} for same in zip(*rounds)]
        out_models.append({"kind": "sd15" if len(sizes) == 1 else f"sd15-{size}",
                           "resolution": size, "default_steps": steps, "rows": rows,
                           "weights_bytes": weights, "load_ms": load_ms,
                           "activation_bytes_per_sample": 0})
    calls = _Calls(store.put, sizes[0], lora)
    def step() -> Any:
        return services["unet"].run_batch(calls.unet(1))

    threads, _ = _fastest_threads(step, reps)
    out_models[0]["step_threads"] = threads
    # CPU time of one batch-1 step (every torch thread), to split the per-step overhead
    out_models[0]["step_cpu_ms_batch1"] = _median_cpu_ms(step, reps)
    speedup = measure_speedup(step, speedup_counts, speedup_s, threads, speedup_rounds)
    for svc in services.values():
        svc.close()
    return out_models, speedup


def check_requests(kinds_steps: list[tuple[str, int]], rep: int) -> list[Any]:
    """The lone requests of one repetition, each with its own text and seed: like the bench's
    requests, none may be answered from the server's cross-prompt output cache (a hires fix
    whose first pass equals the txt2img just before it would skip that pass)."""
    from dataclasses import replace

    from lego_backend.bench.mix import BenchRequest, MixConfig, build_prompt

    out = []
    for j, (kind, steps) in enumerate(kinds_steps):
        cfg = replace(MixConfig(), steps=steps)
        text = f"a photo of a cat, take {rep}.{j}"
        out.append(BenchRequest(kind, build_prompt(kind, text, 1000 + 100 * rep + j, cfg)))
    return out


async def _time_alone(base_url: str, kinds_steps: list[tuple[str, int]], reps: int,
                      pid: int | None = None) -> dict[str, Any]:
    """Each (bench kind, steps) run alone `reps` times after one warm-up: end-to-end ms as
    the bench measures it (POST -> `executing node:null`), the server process's CPU ms and its
    denoiser replicas' busy ms (`/lego/services`) per lone request, and every POST's round
    trip."""
    from dataclasses import replace

    from lego_backend.bench.client import BenchClient, prompt_body
    from lego_backend.bench.mix import BenchRequest, MixConfig, build_prompt, input_images

    base_cfg = MixConfig()
    e2e: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # the server process's CPU ms per lone request
    busy: dict[str, list[float]] = {}  # its denoiser replicas' busy ms per lone request
    busy_cn: dict[str, list[float]] = {}  # its ControlNet replicas' likewise
    posts: list[float] = []
    async with BenchClient(base_url) as client:
        for name, data in input_images(base_cfg).items():
            await client.upload_image(name, data)
        loop = asyncio.get_running_loop()
        for rep in range(reps + 1):  # rep 0 warms up (loads, caches)
            for (kind, steps), req in zip(kinds_steps, check_requests(kinds_steps, rep)):
                cfg = replace(base_cfg, steps=steps)
                s0 = await client.services()
                c0 = _process_cpu_s(pid)
                res = await client.run_one(req)
                c1 = _process_cpu_s(pid)
                s1 = await client.services()
                if res.latency_ms is None:
                    raise RuntimeError(f"{kind} at {steps} steps failed: {res.detail}")
                if rep:
                    e2e.setdefault(f"{kind}@{steps}", []).append(res.latency_ms)
                    if c0 is not None and c1 is not None:
                        cpu.setdefault(f"{kind}@{steps}", []).append(1000 * (c1 - c0))
                    for into, service in ((busy, "denoiser"), (busy_cn, "controlnet")):
                        b0, b1 = _busy_s(s0, service), _busy_s(s1, service)
                        if b0 is not None and b1 is not None:
                            into.setdefault(f"{kind}@{steps}", []).append(1000 * (b1 - b0))
                # the POST alone (compile + admission): submit, time the reply, let it finish
                t = loop.time()
                resp = await client.http.post("/prompt", json=prompt_body(
                    BenchRequest(kind, build_prompt(kind, "a dog", 5000 + rep, cfg)),
                    uuid.uuid4().hex))
                resp.raise_for_status()
                if rep:
                    posts.append(1000 * (loop.time() - t))
                while True:
                    q = (await client.http.get("/queue")).json()
                    if not q.get("queue_running") and not q.get("queue_pending"):
                        break
                    await asyncio.sleep(0.05)
    return {"e2e": e2e, "posts": posts, "cpu": cpu, "busy": busy, "busy_controlnet": busy_cn}


def _busy_s(services: dict[str, Any], kind: str) -> float | None:
    """Seconds the server's replicas of one service kind have spent running batches (None:
    not shown)."""
    rows = [s for s in services.get("services", []) if s.get("kind") == kind]
    if not rows or any("busy_s" not in s for s in rows):
        return None
    return sum(float(s["busy_s"]) for s in rows)


def controlnet_call_ms(timed: dict[str, Any], steps: int) -> float | None:
    """Per ControlNet call, the time a lone ControlNet request spends outside the forwards
    beyond what a plain txt2img spends: the hand-off to the ControlNet service and back,
    once per step. None when the runs lack the ControlNet kind or busy times."""
    from lego_backend.bench.mix import CONTROLNET, TXT2IMG

    txt, cn = f"{TXT2IMG}@{steps}", f"{CONTROLNET}@{steps}"
    e2e, busy, busy_cn = timed["e2e"], timed["busy"], timed.get("busy_controlnet") or {}
    if not all(k in d for k in (txt, cn) for d in (e2e, busy)) or cn not in busy_cn:
        return None
    med = statistics.median
    outside_txt = med(e2e[txt]) - med(busy[txt])
    outside_cn = med(e2e[cn]) - med(busy[cn]) - med(busy_cn[cn])
    return max(0.0, (outside_cn - outside_txt) / steps)


def measure_overheads(models: Path, model: dict[str, Any], s1: int, s2: int, reps: int,
                      workdir: Path) -> tuple[dict[str, float], dict[str, Any]]:
    from lego_backend.bench.mix import KINDS, MixConfig
    from lego_backend.bench.server import ServerProcess, ServerSpec

    kinds_steps = [("txt2img", s1), ("txt2img", s2)]
    default_steps = MixConfig().steps
    kinds_steps += [(k, default_steps) for k in KINDS if (k, default_steps) not in kinds_steps]
    with ServerProcess(ServerSpec(mode="micro", models=models, workdir=workdir)) as server:
        timed = asyncio.run(_time_alone(server.base_url, kinds_steps, reps, server.pid))
    return overheads_from(timed, model, s1, s2, default_steps)


def overheads_from(timed: dict[str, Any], model: dict[str, Any], s1: int, s2: int,
                   default_steps: int) -> tuple[dict[str, float], dict[str, Any]]:
    """The per-request overheads (and the `checks`) from lone runs' timings (_time_alone)."""
    row = model["rows"][0]
    e2e, posts, cpu, busy = timed["e2e"], timed["posts"], timed["cpu"], timed["busy"]
    med = {k: statistics.median(v) for k, v in e2e.items()}
    slope = (med[f"txt2img@{s2}"] - med[f"txt2img@{s1}"]) / (s2 - s1)
    # One step's forward, as the server ran it in these same requests: its denoiser's busy
    # time per step. Subtracting the forward timed in this process instead (minutes apart, in
    # another process) made the per-step overhead swing between 0 and 6.7 ms across three
    # profiles of one machine; both sides of this difference now come from the same runs.
    forward = row["step_ms"]
    if f"txt2img@{s1}" in busy and f"txt2img@{s2}" in busy:
        forward = (statistics.median(busy[f"txt2img@{s2}"])
                   - statistics.median(busy[f"txt2img@{s1}"])) / (s2 - s1)
    step_over = max(0.0, slope - forward)
    pre = statistics.median(posts)
    post = max(0.0, med[f"txt2img@{s2}"] - pre - row["encode_ms"] - s2 * slope
               - row["decode_ms"])
    overhead = {"request_pre": round(pre, 3), "request_post": round(post, 3),
                "step": round(step_over, 3)}
    if f"txt2img@{s1}" in cpu and f"txt2img@{s2}" in cpu:
        c1, c2 = (statistics.median(cpu[f"txt2img@{s}"]) for s in (s1, s2))
        cpu_slope = (c2 - c1) / (s2 - s1)
        # the forward runs on the replica's threads (one, as the replicas choose here), so
        # its CPU per step is its busy time per step; else the profile's own CPU timing
        fwd_cpu = forward if busy else model.get("step_cpu_ms_batch1", row["step_ms"])
        overhead["step_cpu"] = round(min(step_over, max(0.0, cpu_slope - fwd_cpu)), 3)
    cn_call = controlnet_call_ms(timed, default_steps)
    if cn_call is not None:
        overhead["controlnet_call"] = round(cn_call, 3)
    print(f"[profile] overheads ms {overhead} (txt2img alone: {s1} steps "
          f"{med[f'txt2img@{s1}']:.1f}, {s2} steps {med[f'txt2img@{s2}']:.1f})",
          file=sys.stderr, flush=True)
    checks = {"standalone_ms": {k.split("@")[0]: round(v, 3) for k, v in med.items()
                                if k.endswith(f"@{default_steps}")},
              "server_step_forward_ms": round(forward, 3),
              "txt2img_ms_by_steps": {str(s1): round(med[f"txt2img@{s1}"], 3),
                                      str(s2): round(med[f"txt2img@{s2}"], 3)},
              "server_cpu_ms_by_steps": {k.split("@")[1]: round(statistics.median(v), 3)
                                         for k, v in cpu.items() if k.startswith("txt2img@")},
              "note": "end-to-end latency of each lego bench kind alone on `lego serve --mode "
                      "micro`; not read by the simulator"}
    return overhead, checks


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lego profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="profile JSON to write")
    p.add_argument("--models", type=Path, help="models root with the demo models "
                                               "(default: build them in a temporary folder)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated image sizes (px)")
    p.add_argument("--batches", default=DEFAULT_BATCHES, help="comma-separated batch sizes")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--passes", type=int, default=2,
                   help="rounds over every forward; each entry keeps its fastest round")
    p.add_argument("--steps", type=int, default=20, help="default denoiser steps of the kind")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--speedup-jobs", default=DEFAULT_SPEEDUP_JOBS,
                   help="concurrent forwards to time for host.concurrency_speedup")
    p.add_argument("--speedup-seconds", type=float, default=2.0)
    p.add_argument("--speedup-rounds", type=int, default=3,
                   help="interleaved rounds over the counts; each count keeps its median")
    p.add_argument("--overhead-steps", default="4,20",
                   help="S1,S2: txt2img step counts timed end to end through `lego serve`")
    p.add_argument("--no-server", action="store_true",
                   help="skip part 3 (no per-request overheads: forwards only)")
    args = p.parse_args(argv)
    from lego_backend import process_env

    process_env.configure()  # the server's process settings (OpenMP waiting, offline)
    import platform

    import torch

    from lego_backend.models.demo import build_demo_models, demo_models_present

    if args.threads:
        torch.set_num_threads(args.threads)
    THREAD_CHOICES[:] = [args.threads] if args.threads else sorted({torch.get_num_threads(), 1},
                                                                    reverse=True)
    sizes = [int(x) for x in args.sizes.split(",")]
    batches = sorted({int(x) for x in args.batches.split(",")})
    s1, s2 = (int(x) for x in args.overhead_steps.split(","))
    with tempfile.TemporaryDirectory(prefix="lego-profile-") as tmp:
        models = args.models or Path(tmp) / "models"
        if not demo_models_present(models):
            build_demo_models(models)
        began = time.time()
        model_docs, speedup = measure_forwards(
            models, sizes, batches, args.reps, args.steps,
            [int(x) for x in args.speedup_jobs.split(",")], args.speedup_seconds,
            max(1, args.passes), max(1, args.speedup_rounds))
        doc: dict[str, Any] = {
            "schema": SCHEMA, "name": args.out.stem, "device_type": "cpu",
            "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)",
            "derived_from_published": False,
            "sources": [("measured by `lego profile` with the demo models "
                         "(lego_backend/models/demo.py) and the real services")],
            "derivation": (__doc__ or "").strip(),
            "host": {"concurrency_speedup": speedup}, "models": model_docs}
        if not args.no_server:
            overhead, checks = measure_overheads(models, model_docs[0], s1, s2, args.reps,
                                                 Path(tmp) / "serve")
            doc["overhead_ms"] = overhead
            doc["checks"] = checks
        doc["measured"] = {"started_unix": round(began), "seconds": round(time.time() - began),
                           "loadavg_1m": _loadavg()}
    problems = validate_profile(doc)
    if problems:
        print(f"lego profile: malformed profile: {problems}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    print(f"wrote {args.out}")
    return 0


def _loadavg() -> float | None:
    """The host's 1-minute load average (others' work skews every timing on a shared box)."""
    try:
        import os
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

