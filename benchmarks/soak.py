"""Soak: 20 concurrent clients on loopback submit 500 prompts over the mixed workflows, with
random interrupts and websocket drops; reports prompts lost (goal 0), HTTP 5xx (goal 0), p50/p99
latency and the server's resident memory over time (goal: flat after warm-up).

    .venv/bin/python benchmarks/soak.py --out /tmp/soak [--clients 20] [--prompts 500]
        [--steps 4] [--models DIR] [--mode micro|monolithic]

Writes DIR/soak.json and DIR/soak_rss.png (RSS over time)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lego_backend import process_env

process_env.configure()

from lego_backend.bench.soak import SoakConfig, run_soak


def _plot(report, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    xs = [t for t, _ in report.rss_mb]
    ys = [mb for _, mb in report.rss_mb]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot(xs, ys)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title(f"soak: {report.submitted} prompts, {report.config['clients']} clients")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=500)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--models", type=Path, help="models root (default: demo models in OUT)")
    ap.add_argument("--mode", choices=["micro", "monolithic"], default="micro")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.models
    if models is None:
        from lego_backend.models.demo import build_demo_models
        models = args.out / "models"
        if not (models / "checkpoints").is_dir():
            build_demo_models(models)
    cfg = SoakConfig(clients=args.clients, prompts=args.prompts, steps=args.steps)
    report = run_soak(models, args.out / "server", cfg, args.mode)
    (args.out / "soak.json").write_text(json.dumps(report.as_dict(), indent=1))
    _plot(report, args.out / "soak_rss.png")
    print(f"submitted {report.submitted}, lost {len(report.lost)}, 5xx {report.http_5xx}, "
          f"429 {report.rejected_429}, finished {report.finished}, "
          f"interrupts {report.interrupts_sent}, disconnects {report.disconnects}")
    print(f"latency p50 {report.p50_ms} ms, p99 {report.p99_ms} ms; RSS warm-up peak "
          f"{report.rss_warm_mb} MiB, later peak {report.rss_peak_after_warm_mb} MiB "
          f"(x{report.rss_growth:.3f}); {report.wall_s} s")
    return 0 if not report.lost and not report.http_5xx else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
