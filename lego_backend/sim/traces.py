"""Arrival traces for the simulator. Poisson and bursty come from the live benchmark
(lego_backend.bench.trace) so sim and bench replay the same arrivals for the same seed; this adds
a diurnal trace (the Azure Functions hourly shape scaled to a target mean rate) and a loader for
request logs (CSV or JSONL: arrival time, base model, LoRA ids, ControlNet ids)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from lego_backend.bench.trace import BurstSpec, bursty_arrivals, poisson_arrivals
from lego_backend.sim.workload import SimRequest

__all__ = [
    "LOG_FIELDS",
    "BurstSpec",
    "bursty_arrivals",
    "diurnal_arrivals",
    "hourly_shape",
    "load_request_log",
    "poisson_arrivals",
]

SHAPE_FILE = "maf-hourly-invocations.csv"
LOG_FIELDS = ("arrival_s", "base_model", "loras", "controlnets")  # + optional family, steps


def hourly_shape() -> list[float]:
    """Hourly invocation counts of the Azure Functions 2019 trace (347 hours; see
    lego_backend/sim/profiles/sources/README.md for attribution)."""
    src = resources.files("lego_backend.sim.data").joinpath(SHAPE_FILE)
    with src.open("r", encoding="utf-8") as fh:
        return [float(row["invocations"]) for row in csv.DictReader(fh)]


@dataclass(frozen=True)
class DiurnalSpec:
    mean_rate: float  # requests/s averaged over the trace
    hours: int = 24  # hours of the shape replayed, from first_hour
    hour_s: float = 3600.0  # simulated seconds per trace hour (compress a day into minutes)
    first_hour: int = 0


def diurnal_arrivals(spec: DiurnalSpec, seed: int) -> list[float]:
    """Poisson arrivals whose rate follows the hourly shape, scaled so its mean over the
    replayed hours is `mean_rate`. Each hour is an independent Poisson segment (exact for a
    piecewise-constant rate; see bench.trace)."""
    shape = hourly_shape()
    hours = [shape[(spec.first_hour + h) % len(shape)] for h in range(spec.hours)]
    mean = sum(hours) / len(hours)
    out: list[float] = []
    for h, count in enumerate(hours):
        rate = spec.mean_rate * count / mean
        start = h * spec.hour_s
        out += [start + t for t in poisson_arrivals(rate, spec.hour_s, seed * 1000 + h)]
    return out


def _ids(value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return tuple(s for s in str(value).split(";") if s)


def load_request_log(path: Path, families: dict[str, str], default_steps: dict[str, int]
                     ) -> list[SimRequest]:
    """Requests from a CSV (columns LOG_FIELDS; ids separated by ';') or JSONL (same keys, ids
    as lists) log, sorted by arrival and re-based to start at 0. `families` maps base model ->
    profile kind; a row may carry its own `family` and `steps`."""
    text = Path(path).read_text("utf-8")
    if str(path).endswith(".jsonl"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(text.splitlines()))
    rows.sort(key=lambda r: float(r["arrival_s"]))
    t0 = float(rows[0]["arrival_s"]) if rows else 0.0
    out = []
    for i, r in enumerate(rows):
        base = str(r["base_model"])
        family = str(r.get("family") or families.get(base) or "")
        if not family:
            raise ValueError(f"row {i}: no family for base model {base!r}; add a `family` "
                             f"column or map it (known: {sorted(families)})")
        steps = int(r.get("steps") or default_steps[family])
        out.append(SimRequest(i, float(r["arrival_s"]) - t0, base, family, steps,
                              _ids(r.get("loras")), _ids(r.get("controlnets"))))
    return out
