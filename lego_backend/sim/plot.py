"""Scaling plots and the table of docs/scaling.md from several `lego sim` results (one per
cluster size). matplotlib is imported lazily (the `bench` extra), as in bench/plot.py.

    python -m lego_backend.sim.plot OUT.png DIR [DIR ...]   (each DIR holds a results.json)

A DIR written `LABEL=DIR` contributes only its micro mode, shown as LABEL (a variant run)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

_STYLE = MappingProxyType({"micro": ("tab:blue", "o"), "monolithic": ("tab:red", "s"),
                          "micro-spread1": ("tab:cyan", "^")})


def load_runs(dirs: list[str]) -> dict[int, dict[str, Any]]:
    """GPU count -> results.json document (variants merged in as extra modes)."""
    runs: dict[int, dict[str, Any]] = {}
    variants = []
    for d in dirs:
        label, _, path = d.rpartition("=")
        doc = json.loads((Path(path) / "results.json").read_text("utf-8"))
        if label:
            variants.append((label, doc))
        else:
            runs[int(doc["config"]["cluster"]["gpus"])] = doc
    for label, doc in variants:
        gpus = int(doc["config"]["cluster"]["gpus"])
        if gpus in runs:
            runs[gpus]["modes"][label] = doc["modes"]["micro"]
    return dict(sorted(runs.items()))


def table(runs: dict[int, dict[str, Any]]) -> str:
    """Markdown: per cluster size and mode, the headline numbers and micro/monolithic ratios."""
    lines = [("| GPUs | mode | rate @ 90% SLO (req/s) | per GPU | burst x @ 90% | p50 / p99 ms "
              "| mean denoiser batch | resident weights GiB | GPU busy |"),
             "|---:|---|---:|---:|---:|---|---:|---:|---:|"]
    for gpus, doc in runs.items():
        for mode, m in doc["modes"].items():
            busy = m.get("services", {}).get("gpu_busy_fraction")
            lines.append(
                f"| {gpus} | {mode} | {m['rate_at_slo90']:.4g} | "
                f"{m['rate_at_slo90'] / gpus:.3f} | {m['burst_at_slo90']:.3g} | "
                f"{m['p50_ms'] and round(m['p50_ms'])} / {m['p99_ms'] and round(m['p99_ms'])} | "
                f"{m['mean_denoiser_batch']:.2f} | {m['resident_weight_bytes'] / 2**30:.0f} | "
                f"{busy if busy is not None else '-'} |")
        r = doc.get("ratios") or {}
        if r:
            lines.append(f"| {gpus} | **micro / mono** | **{r['rate_at_slo90']}x** | | "
                         f"**{r['burst_at_slo90']}x** | | | {r['resident_weight_bytes']}x | |")
    return "\n".join(lines)


def plot_scaling(runs: dict[int, dict[str, Any]], path: Path) -> None:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("the plot needs matplotlib: pip install 'lego-diffusion[bench]'"
                           ) from exc
    fig = Figure(figsize=(10, 3.8))
    ax_rate, ax_burst = fig.subplots(1, 2)
    gpus = list(runs)
    modes = sorted({m for doc in runs.values() for m in doc["modes"]})
    for mode in modes:
        color, marker = _STYLE.get(mode, (None, "^"))
        # per GPU: on a log-log plot of the total the modes' difference disappears
        rate = [runs[g]["modes"].get(mode, {}).get("rate_at_slo90", 0) / g for g in gpus]
        burst = [runs[g]["modes"].get(mode, {}).get("burst_at_slo90", 0) for g in gpus]
        ax_rate.plot(gpus, rate, marker=marker, color=color, label=mode)
        ax_burst.plot(gpus, burst, marker=marker, color=color, label=mode)
    ax_rate.set_xscale("log", base=2)
    ax_rate.set_ylim(bottom=0)
    ax_rate.set_xlabel("GPUs")
    ax_rate.set_ylabel("requests/s per GPU at >= 90% SLO")
    ax_rate.set_title("Sustained rate per GPU (published GPU profile)")
    ax_burst.set_xscale("log", base=2)
    ax_burst.set_xlabel("GPUs")
    ax_burst.set_ylabel("burst multiplier at >= 90% SLO")
    ax_burst.set_title("Burst tolerance (base = 0.5 x monolithic rate)")
    for ax in (ax_rate, ax_burst):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    runs = load_runs(argv[1:])
    plot_scaling(runs, Path(argv[0]))
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
