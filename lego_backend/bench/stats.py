"""Per-request outcomes of a replay and the numbers drawn from them: SLO attainment and latency
percentiles. Plain data and pure functions, so the math is unit-tested without a server."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

OK = "ok"  # finished (`executing node:null`) without an execution error
ERROR = "error"  # rejected by validation (400), execution_error/interrupted, or transport error
REJECTED = "rejected"  # 429: admission control predicted an SLO miss
TIMEOUT = "timeout"  # not finished within the client's bound; latency unknown
STATUSES = (OK, ERROR, REJECTED, TIMEOUT)


@dataclass(frozen=True)
class RequestResult:
    index: int  # position in the trace
    kind: str  # workflow kind (lego_backend.bench.mix.KINDS)
    scheduled_s: float  # arrival time in the trace
    sent_s: float  # when POST /prompt was actually sent, from the start of the replay
    status: str  # one of STATUSES
    latency_ms: float | None  # submit -> `executing node:null`; None unless status == OK
    slo_ms: float | None  # the deadline the request carried; None = no SLO
    detail: str = ""  # error text, Retry-After value, ...

    @property
    def met_slo(self) -> bool:
        """Served in time. Rejections, errors and timeouts are misses: a user got no image."""
        if self.status != OK or self.latency_ms is None:
            return False
        return self.slo_ms is None or self.latency_ms <= self.slo_ms


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between order statistics
    (numpy's default method), so results are comparable with numpy-based tools."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def attainment(results: Sequence[RequestResult]) -> float:
    """Fraction of requests served within their SLO."""
    if not results:
        raise ValueError("SLO attainment of an empty replay")
    return sum(r.met_slo for r in results) / len(results)


@dataclass(frozen=True)
class PointStats:
    n: int  # requests in the trace
    ok: int
    errors: int
    rejected: int
    timeouts: int
    attainment: float  # fraction served within SLO
    # latency percentiles (ms) over the requests that completed OK; None if none did
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    duration_s: float  # first send -> last completion seen

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(results: Sequence[RequestResult], duration_s: float) -> PointStats:
    done = [r.latency_ms for r in results if r.status == OK and r.latency_ms is not None]
    count = {s: sum(r.status == s for r in results) for s in STATUSES}

    def pct(q: float) -> float | None:
        return round(percentile(done, q), 3) if done else None

    return PointStats(
        n=len(results), ok=count[OK], errors=count[ERROR], rejected=count[REJECTED],
        timeouts=count[TIMEOUT], attainment=attainment(results), p50_ms=pct(50),
        p95_ms=pct(95), p99_ms=pct(99),
        mean_ms=round(sum(done) / len(done), 3) if done else None,
        duration_s=round(duration_s, 3))
