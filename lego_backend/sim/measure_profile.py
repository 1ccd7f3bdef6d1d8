"""`lego profile --out FILE`: measure a simulator profile on this machine with the demo models
and the real services (lego_backend/services/), so the simulator can be checked against
`lego bench` on the same machine. Short by default (one size, batches 1-8, 5 repetitions).

A batch of b requests is timed as the server runs it: b denoiser calls of 2 rows each (cond and
uncond, CFG in one batch) concatenated into one UNet forward; ControlNet likewise; b text-encode
calls (positive and negative prompt: 2 encodes per request); b VAE decodes. The median of the
repetitions after two warm-up runs is kept."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lego_backend.sim.profile import SCHEMA, validate_profile


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    for _ in range(2):  # warm-up: first-call allocations and lazy init are not service time
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 3)


def _row(services: dict[str, Any], put: Callable[[Any], Any], size: int, b: int,
         reps: int) -> dict[str, Any]:
    """One batch size: each service timed on b requests' worth of calls."""
    import torch

    from lego_backend.services.protocol import ServiceCall

    lat = size // 8
    ctx_dim = 32  # the demo CLIP's hidden size (lego_backend/models/demo.py)

    def unet_calls(cn: bool = False) -> list[ServiceCall]:
        calls = []
        for _ in range(b):
            args = {"x": put(torch.randn(2, 4, lat, lat)), "t": put(torch.full((2,), 500.0)),
                    "context": put(torch.randn(2, 77, ctx_dim))}
            if cn:
                args["hint"] = put(torch.rand(2, 3, size, size))
                args["strength"] = 1.0
            calls.append(ServiceCall("residuals" if cn else "unet", args))
        return calls

    step = _median_ms(lambda: services["unet"].run_batch(unet_calls()), reps)
    cn = _median_ms(lambda: services["controlnet"].run_batch(unet_calls(True)), reps)
    enc = _median_ms(lambda: services["text_encoder"].run_batch(
        [ServiceCall("encode", {"text": "a photo of a cat"}) for _ in range(2 * b)]), reps)
    dec = _median_ms(lambda: services["vae"].run_batch(
        [ServiceCall("decode", {"latent": put(torch.randn(1, 4, lat, lat))})
         for _ in range(b)]), reps)
    print(f"[profile] {size}px batch {b}: step {step} ms, controlnet {cn} ms, "
          f"encode {enc} ms, decode {dec} ms", file=sys.stderr, flush=True)
    return {"batch": b, "step_ms": step, "controlnet_step_ms": cn, "encode_ms": enc,
            "decode_ms": dec}


def measure(models: Path, sizes: list[int], batches: list[int], reps: int,
            steps: int) -> dict[str, Any]:
    import torch

    from lego_backend.dataplane.store import TensorStore
    from lego_backend.models.demo import DEMO_FILES
    from lego_backend.services.controlnet import ControlNetService
    from lego_backend.services.denoiser import DenoiserService
    from lego_backend.services.protocol import ServiceSpec
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
    lora = models / DEMO_FILES["lora"]
    t = time.perf_counter()
    lora.read_bytes()
    load_ms["lora"] = round(1000 * (time.perf_counter() - t), 3)
    weights["lora"] = lora.stat().st_size
    put = store.put
    out_models = []
    torch.manual_seed(0)
    for size in sizes:
        rows = []
        for b in batches:
            rows.append(_row(services, put, size, b, reps))
        out_models.append({"kind": "sd15" if len(sizes) == 1 else f"sd15-{size}",
                           "resolution": size, "default_steps": steps, "rows": rows,
                           "weights_bytes": weights, "load_ms": load_ms,
                           "activation_bytes_per_sample": 0})
    for svc in services.values():
        svc.close()
    return out_models


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lego profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="profile JSON to write")
    p.add_argument("--models", type=Path, help="models root with the demo models "
                                               "(default: build them in a temporary folder)")
    p.add_argument("--sizes", default="64", help="comma-separated image sizes (px)")
    p.add_argument("--batches", default="1,2,4,8", help="comma-separated batch sizes")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=4, help="default denoiser steps of the kind")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    import platform

    import torch

    from lego_backend.models.demo import build_demo_models, demo_models_present

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(x) for x in args.sizes.split(",")]
    batches = sorted({int(x) for x in args.batches.split(",")})
    with tempfile.TemporaryDirectory(prefix="lego-profile-") as tmp:
        models = args.models or Path(tmp) / "models"
        if not demo_models_present(models):
            build_demo_models(models)
        doc = {"schema": SCHEMA, "name": args.out.stem,
               "device": f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)",
               "derived_from_published": False,
               "sources": [("measured by `lego profile` with the demo models "
                            "(lego_backend/models/demo.py) and the real services")],
               "derivation": (__doc__ or "").strip(),
               "models": measure(models, sizes, batches, args.reps, args.steps)}
    problems = validate_profile(doc)
    if problems:
        print(f"lego profile: malformed profile: {problems}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
