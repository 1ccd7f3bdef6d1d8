"""Benchmark settings: one frozen dataclass, with the full preset and the `--quick` preset (fewer
points and requests, so both modes fit in about five minutes on a 2-core CPU machine)."""
from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from lego_backend.bench.mix import MixConfig


@dataclass(frozen=True)
class BenchConfig:
    quick: bool = False
    mix: MixConfig = field(default_factory=MixConfig)
    seed: int = 20240601  # every trace and request draw derives from this
    slo_scale: float = 5.0  # SLO of a kind = this x its standalone latency on the SLO source
    target: float = 0.9  # SLO attainment a load level must reach to count as sustained
    admission: str | None = None  # passed to `lego serve --admission` when set
    threads: int | None = None  # passed to `lego serve --threads` when set
    standalone_reps: int = 3  # standalone latency of a kind = median of this many lone runs
    # lone runs of every kind right before each load point (`lone_ms` of the point; 0 = none):
    # the machine's speed of that minute, for the simulator's per-point calibration
    point_lone_reps: int = 0
    # rate sweep: Poisson traces of ~requests_per_point requests, duration clamped
    requests_per_point: int = 48
    min_duration_s: float = 8.0
    max_duration_s: float = 45.0
    rate_start_fraction: float = 0.5  # first rate = this x (1 / mean standalone latency)
    rate_growth: float = 1.5
    rate_bisect_steps: int = 3
    rate_max_points: int = 9
    # fixed load points instead of the searches (`--rates`, `--bursts`): empty = search
    rate_points: tuple[float, ...] = ()
    burst_points: tuple[float, ...] = ()
    # burst sweep: base rate = burst_base_fraction x monolithic's rate_at_slo90
    burst_base_fraction: float = 0.5
    burst_duration_s: float = 30.0
    burst_window_start_s: float = 10.0
    burst_window_s: float = 10.0
    burst_start: float = 2.0
    burst_growth: float = 1.5
    burst_bisect_steps: int = 2
    burst_max_points: int = 7
    # saturation: this many prompts of the mix at once, no SLOs; completions per second of
    # wall time is the most the server can serve, which bounds the bursts it can absorb
    saturation_requests: int = 36
    # a request still running at this x its SLO is abandoned (a miss either way)
    timeout_slo_factor: float = 3.0
    drain_timeout_s: float = 60.0

    def point_seed(self, sweep: str, value: float) -> int:
        """The trace seed of one sweep point. Equal in every mode for equal values, so modes
        probed at the same load replay the same arrivals and the same prompts."""
        return zlib.crc32(f"{self.seed}:{sweep}:{value:.6f}".encode())

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mix"] = self.mix.as_dict()
        return out


def quick_config(**overrides: Any) -> BenchConfig:
    """The `--quick` preset: <= 5 rate points of ~16 requests, <= 4 burst points of 10 s."""
    base = BenchConfig(quick=True, standalone_reps=2, requests_per_point=16, min_duration_s=5.0,
                       max_duration_s=10.0, rate_bisect_steps=2, rate_max_points=5,
                       burst_duration_s=10.0, burst_window_start_s=3.0, burst_window_s=3.0,
                       burst_bisect_steps=2, burst_max_points=4, timeout_slo_factor=2.0,
                       saturation_requests=18,
                       drain_timeout_s=30.0)
    return replace(base, **overrides)


def full_config(**overrides: Any) -> BenchConfig:
    return replace(BenchConfig(), **overrides)
