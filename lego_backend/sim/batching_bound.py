"""How much request throughput batching can buy on the device a profile was measured on.

Micro-serving's throughput edge over monolithic serving comes from batching: a denoiser step
for b requests costs less than b steps of one. A profile measures every forward at several
batch sizes, so it bounds that edge before any run:

- **alone**: the CPU (or GPU) seconds one request of a workflow kind needs when every forward
  runs at batch 1 (a monolithic worker, one prompt at a time);
- **at max batch**: the same with every batchable forward (text encode, denoiser step,
  ControlNet, VAE encode and decode) at the profile's largest batch, each request paying its
  share (`f(B) / B`): the best a micro-serving replica limited to that batch can do;
- **in the limit**: each request paying the marginal cost of one more request in the largest
  measured batches (`(f(B) - f(B')) / (B - B')`), what an unbounded batch would approach if
  the cost keeps growing linearly.

Per-request work that does not batch (HTTP, graph compile, the sampler's per-step math,
saving) is the profile's overheads, paid in full by every request in every case.

With both modes keeping the same cores busy, micro's throughput over monolithic's is at most
the mix's mean "alone" cost over its mean "at max batch" (or "in the limit") cost. `lego
bench`'s burst multiplier at 90% SLO attainment tracks saturated throughput
(docs/serving-performance.md, "Why bursts are bounded"), so the same ratio bounds the burst
edge too.

    python -m lego_backend.sim.batching_bound PROFILE.json [--bench-results RESULTS.json]"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lego_backend.bench import mix as bench_mix
from lego_backend.sim.fidelity import bench_request
from lego_backend.sim.profile import ModelProfile, Overheads, Profile, load_profile
from lego_backend.sim.workload import SimRequest

# what one request pays of a forward measured at batch sizes `batches` with times `f(b)`
Share = Callable[[Callable[[int], float], tuple[int, ...]], float]


def alone(f: Callable[[int], float], batches: tuple[int, ...]) -> float:
    return f(1)


def at_max_batch(f: Callable[[int], float], batches: tuple[int, ...]) -> float:
    b = batches[-1]
    return f(b) / b


def in_the_limit(f: Callable[[int], float], batches: tuple[int, ...]) -> float:
    if len(batches) < 2:
        return at_max_batch(f, batches)
    hi, lo = batches[-1], batches[-2]
    return max(0.0, (f(hi) - f(lo)) / (hi - lo))


def request_cost_s(profile: Profile, r: SimRequest, share: Share, overheads: bool = True
                   ) -> float:
    """Seconds of device work one request needs when each of its forwards costs `share`
    (plus the profile's per-request and per-step overheads unless `overheads` is False)."""
    o = profile.overhead if overheads else Overheads()
    mp = profile.model(r.family)
    t = o.request_pre + o.request_post + share(mp.encode, mp.batches)
    if r.image_input:
        t += share(mp.vae_encode, mp.batches)
    last: ModelProfile = mp
    for kind, steps in ((r.family, r.steps), *r.passes):
        m = profile.model(kind)
        per = share(m.step, m.batches) + o.step
        per += len(r.controlnets) * (share(m.controlnet_step, m.batches) + o.controlnet_call)
        if r.loras:
            per += share(lambda b, m=m: m.lora_extra(b, 0.0, b), m.batches)
        t += steps * per
        last = m
    return t + share(last.decode, last.batches)


@dataclass(frozen=True)
class KindCost:
    kind: str
    alone_ms: float
    at_max_batch_ms: float
    in_the_limit_ms: float
    forwards_in_the_limit_ms: float  # in the limit, without any of the profile's overheads


@dataclass(frozen=True)
class Bound:
    profile: str
    max_batch: int  # requests per batch at "at max batch"
    kinds: list[KindCost]
    mean_alone_ms: float  # the mix's mean (kinds weighted by the mix)
    mean_at_max_batch_ms: float
    mean_in_the_limit_ms: float
    mean_forwards_in_the_limit_ms: float
    ratio_at_max_batch: float  # mean alone / mean at max batch: the ceiling on micro / mono
    ratio_in_the_limit: float
    # the most generous to micro: monolithic pays its overheads, micro none, batches unbounded
    ratio_forwards_in_the_limit: float


def bound(profile: Profile, mix: dict[str, Any] | None = None) -> Bound:
    mix = mix or bench_mix.MixConfig().as_dict()
    weights = {k: float(w) for k, w in (mix.get("weights") or {}).items()} or {
        k: 1.0 for k in bench_mix.KINDS}
    kinds = []
    for kind in bench_mix.KINDS:
        r = bench_request(0, 0.0, kind, mix, profile, None)
        costs = [request_cost_s(profile, r, s) for s in (alone, at_max_batch, in_the_limit)]
        costs.append(request_cost_s(profile, r, in_the_limit, overheads=False))
        kinds.append(KindCost(kind, *(round(1000 * c, 3) for c in costs)))
    total = sum(weights.get(k.kind, 0.0) for k in kinds) or 1.0

    def mean(field: str) -> float:
        return round(sum(weights.get(k.kind, 0.0) * getattr(k, field) for k in kinds) / total, 3)

    a, m, lim = mean("alone_ms"), mean("at_max_batch_ms"), mean("in_the_limit_ms")
    fwd = mean("forwards_in_the_limit_ms")
    return Bound(profile.name, max(mp.batches[-1] for mp in profile.models.values()), kinds,
                 a, m, lim, fwd, round(a / m, 3), _ratio(a, lim), _ratio(a, fwd))


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b > 0 else float("inf")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lego-batching-bound", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--bench-results", type=Path,
                   help="take the workflow mix from this `lego bench` results.json")
    args = p.parse_args(argv)
    mix = None
    if args.bench_results:
        mix = json.loads(args.bench_results.read_text("utf-8"))["config"]["mix"]
    b = bound(load_profile(args.profile), mix)
    print(f"{'kind':<20}{'alone ms':>10}{'max batch ms':>14}{'limit ms':>10}"
          f"{'limit, forwards only':>22}")
    rows = [(k.kind, k.alone_ms, k.at_max_batch_ms, k.in_the_limit_ms,
             k.forwards_in_the_limit_ms) for k in b.kinds]
    rows.append(("mix mean", b.mean_alone_ms, b.mean_at_max_batch_ms, b.mean_in_the_limit_ms,
                 b.mean_forwards_in_the_limit_ms))
    for name, a, m, lim, fwd in rows:
        print(f"{name:<20}{a:>10.1f}{m:>14.1f}{lim:>10.1f}{fwd:>22.1f}")
    print(f"throughput ceiling of batching: {b.ratio_at_max_batch}x at batch {b.max_batch}, "
          f"{b.ratio_in_the_limit}x in the limit, {b.ratio_forwards_in_the_limit}x if micro "
          f"paid no overheads at all")
    print(json.dumps(asdict(b)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
