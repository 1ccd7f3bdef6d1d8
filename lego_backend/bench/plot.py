"""slo_attainment.png: SLO attainment vs Poisson rate (left) and vs burst multiplier (right),
one line per serving mode, the target as a dashed line. matplotlib is imported lazily: it is an
optional extra (`lego-diffusion[bench]`), the measurement itself does not need it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

_STYLE = {"micro": ("tab:blue", "o"), "monolithic": ("tab:red", "s")}


def plot_attainment(results: dict[str, Any], path: Path) -> None:
    """Write the two-panel plot of `results` (results.json content) to `path`."""
    try:
        # Figure directly, not pyplot: no global figure registry, no display backend needed
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeError("the plot needs matplotlib: pip install 'lego-diffusion[bench]'"
                           ) from exc

    target = float(results.get("config", {}).get("target", 0.9))
    fig = Figure(figsize=(11, 4.2))
    ax_rate, ax_burst = fig.subplots(1, 2)
    panels = ((ax_rate, "rate_sweep", "Poisson arrival rate (requests/s)", "rate_at_slo90"),
              (ax_burst, "burst_sweep", "burst multiplier", "burst_at_slo90"))
    for ax, key, xlabel, best_key in panels:
        for name, entry in results.get("modes", {}).items():
            points = sorted(entry.get(key, []), key=lambda p: p["value"])
            if not points:
                continue
            color, marker = _STYLE.get(name, (None, "^"))
            ax.plot([p["value"] for p in points], [p["attainment"] for p in points],
                    marker=marker, color=color,
                    label=f"{name} (sustains {entry.get(best_key, 0):.3g})")
        ax.axhline(target, color="gray", linestyle="--", linewidth=1,
                   label=f"target {target:.0%}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("SLO attainment")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    ax_rate.set_title("SLO attainment vs request rate")
    base = next((e.get("burst_base_rate") for e in results.get("modes", {}).values()), None)
    ax_burst.set_title("SLO attainment vs burst size"
                       + (f" (base {base:.2f} req/s)" if base else ""))
    cfg = results.get("config", {})
    fig.suptitle(f"micro vs monolithic, SLO = {cfg.get('slo_scale', '?')} x standalone latency"
                 + (" (quick)" if cfg.get("quick") else ""), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
