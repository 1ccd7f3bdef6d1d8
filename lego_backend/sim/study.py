"""A capacity study: per serving mode, the highest Poisson rate and the highest burst multiplier
a cluster sustains at >= 90% SLO attainment, found with the live benchmark's own search
(bench/sweep.py) and reported in the benchmark's results.json shape (bench/results.py). As in
`lego bench`, monolithic goes first and sets the burst base rate for every mode; SLOs are
slo_scale x each request's standalone latency, the same in every mode."""
from __future__ import annotations

import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from lego_backend.bench.measure import ModeMeasurement
from lego_backend.bench.results import build_results, machine_info
from lego_backend.bench.sweep import SearchPlan, SearchResult, search_max
from lego_backend.sim.profile import Profile
from lego_backend.sim.simulate import SimConfig, simulate
from lego_backend.sim.traces import BurstSpec, bursty_arrivals, poisson_arrivals
from lego_backend.sim.workload import Mix, SimRequest


@dataclass(frozen=True)
class StudyConfig:
    seed: int = 20240601
    target: float = 0.9
    requests_per_point: int = 3000
    min_duration_s: float = 120.0  # several SLOs long, so queues reach their steady state
    max_duration_s: float = 600.0
    rate_start_fraction: float = 0.5  # first rate = this x GPUs / mean standalone latency
    rate_growth: float = 1.5
    rate_bisect_steps: int = 3
    rate_max_points: int = 9
    burst_base_fraction: float = 0.5  # burst base = this x monolithic rate_at_slo90
    burst_duration_s: float = 300.0
    burst_window_start_s: float = 60.0
    burst_window_s: float = 60.0
    burst_start: float = 2.0
    burst_growth: float = 1.5
    burst_bisect_steps: int = 2
    burst_max_points: int = 7

    def point_seed(self, sweep: str, value: float) -> int:
        """Equal in every mode for equal values: modes replay the same arrivals (as bench)."""
        return zlib.crc32(f"{self.seed}:{sweep}:{value:.6f}".encode())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quick_study() -> StudyConfig:
    return StudyConfig(requests_per_point=600, min_duration_s=60.0, rate_bisect_steps=1,
                       rate_max_points=5, burst_duration_s=180.0, burst_bisect_steps=1,
                       burst_max_points=4)


def log(msg: str) -> None:
    print(f"[sim] {msg}", file=sys.stderr, flush=True)


@dataclass
class Tally:
    """Simulated requests and wall time, for the speed figure."""
    requests: int = 0
    wall_s: float = 0.0


def mean_standalone(profile: Profile, mix: Mix) -> float:
    sample = mix.draw([0.0] * 2000, _steps(profile), 1)
    return sum(profile.model(r.family).standalone(r.steps, len(r.controlnets))
               for r in sample) / len(sample)


def _steps(profile: Profile) -> dict[str, int]:
    return {k: m.default_steps for k, m in profile.models.items()}


class Study:
    def __init__(self, profile: Profile, mix: Mix, sim: SimConfig, cfg: StudyConfig):
        self.profile, self.mix, self.sim, self.cfg = profile, mix, sim, cfg
        self.tally = Tally()

    def run_point(self, mode: str, requests: list[SimRequest]) -> tuple[float, dict[str, Any]]:
        began = time.perf_counter()
        res = simulate(self.profile, replace(self.sim, mode=mode), requests)
        self.tally.requests += len(requests)
        self.tally.wall_s += time.perf_counter() - began
        return res.attainment, res.as_dict()

    def _requests(self, arrivals: list[float], seed: int) -> list[SimRequest]:
        return self.mix.draw(arrivals or [0.0], _steps(self.profile), seed + 1)

    def rate_sweep(self, mode: str, start: float) -> SearchResult:
        cfg = self.cfg

        def measure(rate: float) -> tuple[float, dict[str, Any]]:
            duration = min(max(cfg.requests_per_point / rate, cfg.min_duration_s),
                           cfg.max_duration_s)
            seed = cfg.point_seed("rate", rate)
            att, detail = self.run_point(
                mode, self._requests(poisson_arrivals(rate, duration, seed), seed))
            log(f"  {mode} rate {rate:.3f}: attainment {att:.3f} p50 {detail['p50_ms']} ms")
            return att, {"trace": {"kind": "poisson", "rate": rate, "duration_s": duration,
                                   "seed": seed}, **detail}

        return search_max(measure, SearchPlan(start=start, growth=cfg.rate_growth,
                                              bisect_steps=cfg.rate_bisect_steps,
                                              max_points=cfg.rate_max_points,
                                              target=cfg.target))

    def burst_sweep(self, mode: str, base: float) -> SearchResult:
        cfg = self.cfg

        def measure(mult: float) -> tuple[float, dict[str, Any]]:
            spec = BurstSpec(base, mult, cfg.burst_window_start_s, cfg.burst_window_s,
                             cfg.burst_duration_s)
            seed = cfg.point_seed(f"burst@{base:.6f}", mult)
            att, detail = self.run_point(mode, self._requests(bursty_arrivals(spec, seed), seed))
            log(f"  {mode} burst x{mult:.3f}: attainment {att:.3f}")
            return att, {"trace": {"kind": "bursty", **spec.as_dict(), "seed": seed}, **detail}

        return search_max(measure, SearchPlan(start=cfg.burst_start, growth=cfg.burst_growth,
                                              bisect_steps=cfg.burst_bisect_steps,
                                              max_points=cfg.burst_max_points, floor=1.0,
                                              target=cfg.target))

    def measure_mode(self, mode: str, rate_start: float, burst_base: float | None,
                     sweeps: tuple[str, ...] = ("rate", "burst")) -> ModeMeasurement:
        m = ModeMeasurement(mode)
        m.standalone_ms = {k: round(1000 * mp.standalone(mp.default_steps, 0), 3)
                           for k, mp in self.profile.models.items()}
        if "rate" in sweeps:
            m.rate = self.rate_sweep(mode, rate_start)
        base = burst_base if burst_base is not None else (
            self.cfg.burst_base_fraction * (m.rate.best if m.rate and m.rate.best
                                            else rate_start))
        m.burst_base_rate = round(base, 4)
        if "burst" in sweeps:
            m.burst = self.burst_sweep(mode, m.burst_base_rate)
        best = m.rate.best_point.detail if m.rate and m.rate.best_point else {}
        m.services = {"resident_weight_bytes": best.get("resident_weight_bytes", 0),
                      "mean_denoiser_batch": best.get("mean_denoiser_batch", 0.0),
                      "gpu_busy_fraction": best.get("gpu_busy_fraction"),
                      "gpus": self.sim.cluster.gpus}
        return m


def run_study(profile: Profile, mix: Mix, sim: SimConfig, cfg: StudyConfig,
              modes: list[str], extra_config: dict[str, Any] | None = None,
              progress: Callable[[str], None] = log) -> dict[str, Any]:
    """Every mode's sweeps; returns the results.json document."""
    modes = sorted(modes, key=lambda m: m != "monolithic")  # the SLO/burst anchor first
    study = Study(profile, mix, sim, cfg)
    start = round(cfg.rate_start_fraction * sim.cluster.gpus / mean_standalone(profile, mix), 3)
    measured: dict[str, ModeMeasurement] = {}
    burst_base: float | None = None
    began = time.perf_counter()
    for mode in modes:
        progress(f"{mode}: {sim.cluster.gpus} GPUs, rate sweep from {start} req/s")
        measured[mode] = study.measure_mode(mode, start, burst_base)
        burst_base = measured[mode].burst_base_rate if burst_base is None else burst_base
    t = study.tally
    config = {"mix": mix.as_dict(), "slo_scale": sim.slo_scale, "seed": cfg.seed,
              "target": cfg.target, "cluster": sim.cluster.as_dict(), "sim": asdict(sim),
              "study": cfg.as_dict(), "rate_start": start, "burst_base_rate": burst_base,
              "profile": {"name": profile.name, **{k: profile.meta.get(k) for k in
                          ("device", "derived_from_published", "sources")}},
              "simulator": {"requests_simulated": t.requests,
                            "sim_wall_s": round(t.wall_s, 3),
                            "requests_per_wall_minute": round(60 * t.requests / t.wall_s)
                            if t.wall_s else None},
              "wall_s": round(time.perf_counter() - began, 1), **(extra_config or {})}
    cfg_sim = config["sim"]
    cfg_sim["cluster"] = sim.cluster.as_dict()
    return build_results(config, measured, machine_info())
