"""results.json: building it from measurements, checking its shape (used by the tests and before
writing), and the micro/monolithic ratios printed at the end of a run."""
from __future__ import annotations

import os
import platform
from typing import Any

from lego_backend.bench.measure import ModeMeasurement
from lego_backend.bench.sweep import SearchResult

SCHEMA_VERSION = 1
MODE_KEYS = ("rate_at_slo90", "burst_at_slo90", "p50_ms", "p95_ms", "p99_ms",
             "resident_weight_bytes", "mean_denoiser_batch", "rate_sweep", "burst_sweep")
LATENCY_NOTE = ("p50_ms/p95_ms/p99_ms: over the requests that completed OK at the rate sweep "
                "point rate_at_slo90 (the highest Poisson rate with >= target SLO attainment); "
                "null if no rate passed. Latency = POST /prompt -> websocket `executing "
                "{node: null}` for that prompt.")


def machine_info() -> dict[str, Any]:
    try:
        import torch
        torch_version: str | None = str(torch.__version__)
    except ImportError:  # the client side of the bench does not need torch
        torch_version = None
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(),
            "machine": platform.machine(), "python": platform.python_version(),
            "torch": torch_version}


def _points(result: SearchResult | None) -> list[dict[str, Any]]:
    return [p.as_dict() for p in result.points] if result else []


def mode_entry(m: ModeMeasurement) -> dict[str, Any]:
    best = m.rate.best_point if m.rate else None
    detail = best.detail if best else {}
    services = m.services or {}
    return {
        "rate_at_slo90": m.rate.best if m.rate else 0.0,
        "burst_at_slo90": m.burst.best if m.burst else 0.0,
        "p50_ms": detail.get("p50_ms"),
        "p95_ms": detail.get("p95_ms"),
        "p99_ms": detail.get("p99_ms"),
        "latency_at_rate": best.value if best else None,
        "resident_weight_bytes": int(services.get("resident_weight_bytes") or 0),
        "mean_denoiser_batch": float(services.get("mean_denoiser_batch") or 0.0),
        "standalone_ms": m.standalone_ms,
        "burst_base_rate": m.burst_base_rate,
        "rate_sweep": _points(m.rate),
        "burst_sweep": _points(m.burst),
        "services": services,
        "saturated_rps": m.saturation.get("requests_per_s"),
        "saturation": m.saturation,
    }


def build_results(config: dict[str, Any], modes: dict[str, ModeMeasurement],
                  machine: dict[str, Any] | None = None) -> dict[str, Any]:
    out = {"schema_version": SCHEMA_VERSION, "machine": machine or machine_info(),
           "config": {**config, "latency_percentiles": LATENCY_NOTE},
           "modes": {name: mode_entry(m) for name, m in modes.items()}}
    out["ratios"] = ratios(out)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 4)


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """micro / monolithic for sustained rate, burst multiplier, resident weight bytes and
    saturated throughput; None where a mode is missing or its figure is 0 or absent."""
    modes = results.get("modes", {})
    micro, mono = modes.get("micro"), modes.get("monolithic")
    if micro is None or mono is None:
        return {}
    return {key: _ratio(micro.get(key), mono.get(key))
            for key in ("rate_at_slo90", "burst_at_slo90", "resident_weight_bytes",
                        "saturated_rps")}


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_results(results: Any) -> list[str]:
    """Problems with the shape of a results.json document; empty if it is well formed."""
    problems: list[str] = []
    if not isinstance(results, dict):
        return ["results is not an object"]
    machine = results.get("machine")
    if not isinstance(machine, dict):
        problems.append("machine missing")
    else:
        problems += [f"machine.{k} missing" for k in ("cpu_count", "platform", "torch")
                     if k not in machine]
    config = results.get("config")
    if not isinstance(config, dict):
        problems.append("config missing")
    else:
        problems += [f"config.{k} missing" for k in ("mix", "slo_scale", "seed",
                                                     "latency_percentiles") if k not in config]
    modes = results.get("modes")
    if not isinstance(modes, dict) or not modes:
        return problems + ["modes missing or empty"]
    for name, entry in modes.items():
        if not isinstance(entry, dict):
            problems.append(f"modes.{name} is not an object")
            continue
        for key in MODE_KEYS:
            if key not in entry:
                problems.append(f"modes.{name}.{key} missing")
        for key in ("rate_at_slo90", "burst_at_slo90", "resident_weight_bytes",
                    "mean_denoiser_batch"):
            if key in entry and not _is_num(entry[key]):
                problems.append(f"modes.{name}.{key} is not a number")
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            if key in entry and entry[key] is not None and not _is_num(entry[key]):
                problems.append(f"modes.{name}.{key} is neither a number nor null")
        for key in ("rate_sweep", "burst_sweep"):
            points = entry.get(key)
            if key in entry and not isinstance(points, list):
                problems.append(f"modes.{name}.{key} is not a list")
                continue
            for i, p in enumerate(points or []):
                if not (isinstance(p, dict) and _is_num(p.get("value"))
                        and _is_num(p.get("attainment"))):
                    problems.append(f"modes.{name}.{key}[{i}] lacks value/attainment")
    return problems
