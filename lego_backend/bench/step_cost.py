"""CPU of one denoiser step, replayed: one batch of calls (2 rows each, with or without LoRAs)
run through DenoiserService.run_batch many times on one thread. The thread's CPU time is far
less disturbed by other jobs than a server's throughput, so this is how per-step overhead is
compared between builds (docs/serving-performance.md).

    python -m lego_backend.bench.step_cost --models DIR --mix "a,,b,,a," [--reps 150]

`--mix`: one letter per call, "" = no LoRA, "a" / "b" = the mix's first / second LoRA."""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lego_backend import process_env


@dataclass(frozen=True)
class StepCost:
    mix: str
    calls: int
    rows: int
    reps: int
    cpu_ms_min: float
    cpu_ms_median: float


def measure(models: Path, mix: str, reps: int = 150, threads: int = 1) -> StepCost:
    process_env.configure()  # before torch is imported
    import torch

    from lego_backend.bench.mix import MixConfig
    from lego_backend.dataplane.store import TensorStore
    from lego_backend.services.denoiser import DenoiserService
    from lego_backend.services.protocol import AdapterRef, ServiceCall, ServiceSpec

    torch.set_num_threads(threads)
    cfg = MixConfig()
    store = TensorStore()
    service = DenoiserService(
        ServiceSpec("denoiser", "bench", models / "checkpoints" / cfg.checkpoint), store)
    refs = {"": (), **{letter: (AdapterRef(letter, models / "loras" / name, 1.0),)
                         for letter, name in zip("ab", cfg.loras)}}
    kinds = mix.split(",")
    unknown = set(kinds) - refs.keys()
    if unknown:
        raise ValueError(f"--mix letters must be '', 'a' or 'b', not {sorted(unknown)}")
    for ref in (r for k in set(kinds) for r in refs[k]):
        service.adapters.request(ref).result()
    service.load()
    service.loaded = True
    context_dim = int(service.model.config.cross_attention_dim)
    latent = cfg.size // 8  # the mix's image size, in latent cells

    def call(i: int, kind: str) -> ServiceCall:
        g = torch.Generator().manual_seed(i)
        return ServiceCall("unet", {
            "x": store.put(torch.randn(2, 4, latent, latent, generator=g)),
            "t": store.put(torch.tensor([500.0, 500.0])),
            "context": store.put(torch.randn(2, 77, context_dim, generator=g)),
            "adapters": refs[kind]})

    calls = [call(i, k) for i, k in enumerate(kinds)]
    store_results = service.run_batch(calls)  # warm-up
    cpu = []
    for _ in range(reps):
        for handle in store_results:
            store.release(handle)
        start = time.thread_time()
        store_results = service.run_batch(calls)
        cpu.append(time.thread_time() - start)
    service.close()
    return StepCost(mix, len(calls), 2 * len(calls), reps, round(1000 * min(cpu), 3),
                    round(1000 * statistics.median(cpu), 3))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=Path, required=True, help="models root with the demo models")
    p.add_argument("--mix", default="a,,b,,a,", help='calls by LoRA: "", "a" or "b", comma-separated')
    p.add_argument("--reps", type=int, default=150)
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args(argv)
    print(json.dumps(asdict(measure(args.models, args.mix, args.reps, args.threads))))


if __name__ == "__main__":
    main()
