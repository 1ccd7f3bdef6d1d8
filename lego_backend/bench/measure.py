"""Measuring one running server: warm-up, standalone latency per workflow kind, a Poisson rate
sweep and a burst sweep. Each phase is one `asyncio.run` over a fresh client, so the sweep search
(plain, synchronous, unit-tested on fakes) can drive live replays as its measure function."""
from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lego_backend.bench.client import BenchClient, ClientLimits
from lego_backend.bench.config import BenchConfig
from lego_backend.bench.mix import KINDS, BenchRequest, RequestFactory, input_images
from lego_backend.bench.stats import OK, RequestResult, summarize
from lego_backend.bench.sweep import SearchPlan, SearchResult, measure_values, search_max
from lego_backend.bench.trace import BurstSpec, bursty_arrivals, poisson_arrivals


@dataclass
class ModeMeasurement:
    mode: str
    standalone_ms: dict[str, float] = field(default_factory=dict)
    rate: SearchResult | None = None
    burst: SearchResult | None = None
    burst_base_rate: float = 0.0
    services: dict[str, Any] = field(default_factory=dict)
    saturation: dict[str, Any] = field(default_factory=dict)  # ModeRunner.saturation


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def capacity_estimate(standalone_ms: dict[str, float], cfg: BenchConfig) -> float:
    """Requests/s one-at-a-time serving could sustain: 1 / mix-weighted mean lone latency."""
    weights = {k: w for k, w in cfg.mix.weights if w > 0 and k in standalone_ms}
    total = sum(weights.values())
    mean_ms = sum(standalone_ms[k] * w for k, w in weights.items()) / total
    return 1000.0 / mean_ms


def per_kind_attainment(results: Sequence[RequestResult]) -> dict[str, float]:
    out = {}
    for kind in sorted({r.kind for r in results}):
        rs = [r for r in results if r.kind == kind]
        out[kind] = round(sum(r.met_slo for r in rs) / len(rs), 4)
    return out


class ModeRunner:
    """Measures one server at `base_url` with the settings of `cfg`."""

    def __init__(self, base_url: str, cfg: BenchConfig, prompts: Sequence[str]):
        self.base_url = base_url
        self.cfg = cfg
        self.prompts = list(prompts)
        self.limits = ClientLimits(timeout_slo_factor=cfg.timeout_slo_factor)

    def _client(self) -> BenchClient:
        return BenchClient(self.base_url, self.limits)

    def prepare(self) -> dict[str, float]:
        """Upload the input images, run each kind once (loads weights, fills caches that real
        steady-state serving would have warm), then time each kind alone; median ms per kind."""
        return asyncio.run(self._prepare())

    async def _prepare(self) -> dict[str, float]:
        factory = RequestFactory(self.cfg.mix, self.prompts, self.cfg.point_seed("warmup", 0))
        async with self._client() as client:
            for name, data in input_images(self.cfg.mix).items():
                await client.upload_image(name, data)
            await self._time_alone(client, factory, 1)  # the warm-up: loads, caches
            return await self._time_alone(client, factory, self.cfg.standalone_reps)

    async def _time_alone(self, client: BenchClient, factory: RequestFactory, reps: int
                          ) -> dict[str, float]:
        """Each kind run alone `reps` times (kinds interleaved); median ms per kind."""
        samples: dict[str, list[float]] = {k: [] for k in KINDS}
        for _ in range(reps):
            for kind in KINDS:
                res = await client.run_one(factory.make(kind))
                if res.status != OK or res.latency_ms is None:
                    raise RuntimeError(f"{kind} failed when run alone: {res.status} "
                                       f"{res.detail}")
                samples[kind].append(res.latency_ms)
        return {k: round(statistics.median(v), 3) for k, v in samples.items()}

    def lone_latencies(self, reps: int, tag: str) -> dict[str, float]:
        """Every kind alone again, on the warm server (median ms per kind): the machine's speed
        right before a load point, for the simulator's per-point calibration. `tag` seeds the
        prompts, so none is answered from the output cache of an earlier run."""
        async def go() -> dict[str, float]:
            factory = RequestFactory(self.cfg.mix, self.prompts, self.cfg.point_seed(tag, 0))
            async with self._client() as client:
                return await self._time_alone(client, factory, reps)
        return asyncio.run(go())

    def replay(self, arrivals: Sequence[float], requests: Sequence[BenchRequest]
               ) -> tuple[list[RequestResult], float, bool]:
        """Replay, then drain the server so leftovers cannot slow down the next point."""
        async def go() -> tuple[list[RequestResult], float, bool]:
            async with self._client() as client:
                results, duration = await client.replay(arrivals, requests)
                drained = await client.drain(self.cfg.drain_timeout_s)
            return results, duration, drained
        return asyncio.run(go())

    def _point(self, sweep: str, value: float, arrivals: list[float], slos: dict[str, float],
               trace: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        if not arrivals:
            arrivals = [0.0]  # a point is never empty: attainment of nothing is undefined
        lone = (self.lone_latencies(self.cfg.point_lone_reps, f"lone:{sweep}:{value:.6f}")
                if self.cfg.point_lone_reps else None)
        factory = RequestFactory(self.cfg.mix, self.prompts, self.cfg.point_seed(sweep, value))
        results, duration, drained = self.replay(arrivals, factory.draw(len(arrivals), slos))
        stats = summarize(results, duration)
        log(f"  {sweep} {value:.3f}: attainment {stats.attainment:.2f} of {stats.n} "
            f"(ok {stats.ok}, timeout {stats.timeouts}, 429 {stats.rejected}, "
            f"error {stats.errors}), p50 {stats.p50_ms} ms, p99 {stats.p99_ms} ms")
        errors = sorted({r.detail for r in results if r.detail and r.status != OK})[:3]
        return stats.attainment, {"trace": trace, **stats.as_dict(),
                                  "per_kind_attainment": per_kind_attainment(results),
                                  "drained": drained, "sample_errors": errors,
                                  **({"lone_ms": lone} if lone else {})}

    def rate_sweep(self, start: float, slos: dict[str, float]) -> SearchResult:
        cfg = self.cfg

        def measure(rate: float) -> tuple[float, dict[str, Any]]:
            duration = min(max(cfg.requests_per_point / rate, cfg.min_duration_s),
                           cfg.max_duration_s)
            seed = cfg.point_seed("rate", rate)
            trace = {"kind": "poisson", "rate": rate, "duration_s": round(duration, 3),
                     "seed": seed}
            return self._point("rate", rate, poisson_arrivals(rate, duration, seed), slos, trace)

        if cfg.rate_points:
            return measure_values(measure, cfg.rate_points, cfg.target)
        plan = SearchPlan(start=start, growth=cfg.rate_growth, bisect_steps=cfg.rate_bisect_steps,
                          max_points=cfg.rate_max_points, target=cfg.target)
        return search_max(measure, plan)

    def burst_sweep(self, base_rate: float, slos: dict[str, float]) -> SearchResult:
        cfg = self.cfg

        def measure(mult: float) -> tuple[float, dict[str, Any]]:
            spec = BurstSpec(base_rate, mult, cfg.burst_window_start_s, cfg.burst_window_s,
                             cfg.burst_duration_s)
            seed = cfg.point_seed(f"burst@{base_rate:.6f}", mult)
            trace = {"kind": "bursty", **spec.as_dict(), "seed": seed}
            return self._point("burst", mult, bursty_arrivals(spec, seed), slos, trace)

        if cfg.burst_points:
            return measure_values(measure, cfg.burst_points, cfg.target)
        plan = SearchPlan(start=cfg.burst_start, growth=cfg.burst_growth,
                          bisect_steps=cfg.burst_bisect_steps, max_points=cfg.burst_max_points,
                          floor=1.0, target=cfg.target)
        return search_max(measure, plan)

    def saturation(self, n: int) -> dict[str, Any]:
        """`n` prompts of the mix sent at once, without SLOs: completions per second from the
        first POST to the last completion. Whatever the scheduling, a burst above this rate
        grows a backlog, so the ratio of two servers' saturated rates bounds the ratio of the
        bursts they can absorb within the same SLOs."""
        factory = RequestFactory(self.cfg.mix, self.prompts, self.cfg.point_seed("saturation", n))
        results, duration, drained = self.replay([0.0] * n, factory.draw(n))
        stats = summarize(results, duration)
        rps = round(stats.ok / duration, 4) if duration > 0 else 0.0
        log(f"  saturation {n} at once: {stats.ok} ok in {duration:.1f} s = {rps} req/s, "
            f"p50 {stats.p50_ms} ms")
        return {"requests": n, "ok": stats.ok, "makespan_s": round(duration, 3),
                "requests_per_s": rps, "p50_ms": stats.p50_ms, "drained": drained}

    def services(self) -> dict[str, Any]:
        async def go() -> dict[str, Any]:
            async with self._client() as client:
                return await client.services()
        return asyncio.run(go())
