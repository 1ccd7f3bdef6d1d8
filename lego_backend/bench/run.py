"""`lego bench`: micro-serving vs monolithic serving of the same workflow mix, side by side in one
run. For each mode a fresh `lego serve --mode M` subprocess is warmed up and measured:
standalone latency per workflow kind, the highest Poisson rate and the highest burst multiplier
at >= 90% SLO attainment. SLOs come from the monolithic server's standalone latencies (x
slo_scale) and are the same for every mode. Writes OUT/results.json and OUT/slo_attainment.png
and prints micro/monolithic ratios.

    lego bench --out DIR [--quick] [--models DIR] [--modes monolithic,micro]
               [--rates 1,2,3 --bursts 2,3 --requests-per-point 120 --max-duration 120]

With --rates/--bursts the searches give way to exactly those load points (the same in every
mode and every run), e.g. long steady points for the simulator's fidelity check.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lego_backend.bench.config import BenchConfig, full_config, quick_config
from lego_backend.bench.measure import ModeMeasurement, ModeRunner, capacity_estimate, log
from lego_backend.bench.mix import load_prompts
from lego_backend.bench.results import build_results, validate_results
from lego_backend.bench.server import ServerProcess, ServerSpec, ServerStartError

SLO_SOURCE = "monolithic"  # SLOs are set from this mode's standalone latencies
DEFAULT_MODE = "default"  # a pseudo-mode: `lego serve` without --mode (servers before modes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lego bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="folder for results.json and the plot")
    p.add_argument("--quick", action="store_true", help="fewer points and requests (~5 min)")
    p.add_argument("--models", type=Path,
                   help="models root with the demo models (default: build them in OUT/models)")
    p.add_argument("--modes", default="monolithic,micro",
                   help="comma-separated serving modes (default: monolithic,micro; "
                        f"'{DEFAULT_MODE}' runs `lego serve` without --mode)")
    p.add_argument("--slo-scale", type=float, help="SLO = this x standalone latency (default 5)")
    p.add_argument("--seed", type=int, help="seed of every trace and request draw")
    p.add_argument("--admission", choices=["besteffort", "strict"],
                   help="passed to `lego serve --admission`")
    p.add_argument("--threads", type=int, help="passed to `lego serve --threads`")
    p.add_argument("--rates", type=_loads(0.0),
                   help="measure exactly these request rates (req/s, comma-separated) instead "
                        "of searching for the highest one at the target attainment")
    p.add_argument("--bursts", type=_loads(1.0),
                   help="measure exactly these burst multipliers (comma-separated, >= 1) "
                        "instead of searching")
    p.add_argument("--requests-per-point", type=_positive(int),
                   help="requests of a rate point (trace length = this / rate; default 48, "
                        "16 with --quick); longer points measure steadier percentiles")
    p.add_argument("--point-lone-reps", type=_positive(int),
                   help="before every load point, run each workflow kind alone this many "
                        "times and record the medians (lone_ms): the machine's speed of that "
                        "minute, which sim.fidelity --calibrate scales each point by")
    p.add_argument("--max-duration", type=_positive(float),
                   help="longest rate point in seconds (default 45, 10 with --quick)")
    return p


def _loads(floor: float) -> Callable[[str], tuple[float, ...]]:
    """argparse type: a comma-separated list of finite numbers above `floor` (>= 1 for
    bursts, where 1 means no burst)."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
        if not values or any(not math.isfinite(v) or v < floor or v == 0 for v in values):
            raise argparse.ArgumentTypeError(
                f"need finite numbers {'>= 1' if floor else '> 0'}, got {text!r}")
        return values
    return parse


def _positive(convert: Callable[[str], float]) -> Callable[[str], Any]:
    """argparse type: one finite number > 0, parsed by `convert` (int or float)."""
    def parse(text: str) -> Any:
        try:
            x = convert(text)
        except ValueError:
            what = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not math.isfinite(x) or x <= 0:
            raise argparse.ArgumentTypeError(f"need a number > 0, got {text!r}")
        return x
    return parse


# flags whose BenchConfig field has another name
CONFIG_FIELD = {"rates": "rate_points", "bursts": "burst_points",
                "max_duration": "max_duration_s"}


def _config(args: argparse.Namespace) -> BenchConfig:
    overrides: dict[str, Any] = {}
    for name in ("slo_scale", "seed", "admission", "threads", "rates", "bursts",
                 "requests_per_point", "point_lone_reps", "max_duration"):
        if getattr(args, name) is not None:
            overrides[CONFIG_FIELD.get(name, name)] = getattr(args, name)
    return quick_config(**overrides) if args.quick else full_config(**overrides)


def _models(args: argparse.Namespace) -> Path:
    from lego_backend.models.demo import build_demo_models, demo_models_present

    models: Path = (args.models or args.out / "models").resolve()
    if not demo_models_present(models):
        log(f"building the demo models in {models}")
        build_demo_models(models)
    return models


def _ordered_modes(text: str) -> list[str]:
    """The SLO source first: every other mode's SLOs and burst base rate come from it."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or len(set(modes)) != len(modes):
        raise ValueError(f"--modes needs distinct names, got {text!r}")
    return sorted(modes, key=lambda m: m != SLO_SOURCE)


@dataclass
class Anchors:
    """What the SLO-source mode decides for every mode, so all are measured on equal terms."""
    slo_ms: dict[str, float] | None = None  # per workflow kind
    rate_start: float | None = None  # first rate of the rate sweep (req/s)
    burst_base: float | None = None  # base rate of the burst sweep (req/s)


def _measure_mode(mode: str, cfg: BenchConfig, models: Path, work: Path, out: Path,
                  prompts: list[str], anchors: Anchors) -> ModeMeasurement:
    """One server, all phases; fills `anchors` when this is the first mode."""
    spec = ServerSpec(mode=None if mode == DEFAULT_MODE else mode, models=models,
                      workdir=work / mode, admission=cfg.admission, threads=cfg.threads)
    result = ModeMeasurement(mode)
    server = ServerProcess(spec)
    try:
        with server:
            log(f"{mode}: server up at {server.base_url}; warm-up and standalone latency")
            runner = ModeRunner(server.base_url, cfg, prompts)
            result.standalone_ms = runner.prepare()
            log(f"{mode}: standalone ms {result.standalone_ms}")
            if anchors.slo_ms is None:
                anchors.slo_ms = {k: round(cfg.slo_scale * v, 3)
                                  for k, v in result.standalone_ms.items()}
                anchors.rate_start = round(
                    cfg.rate_start_fraction * capacity_estimate(result.standalone_ms, cfg), 3)
                log(f"{mode}: SLOs (ms) {anchors.slo_ms}")
            assert anchors.rate_start is not None
            log(f"{mode}: rate sweep from {anchors.rate_start} req/s")
            result.rate = runner.rate_sweep(anchors.rate_start, anchors.slo_ms)
            if anchors.burst_base is None:
                # nothing sustained: base the bursts on the first probe, it is all we know
                sustained = result.rate.best or anchors.rate_start
                anchors.burst_base = round(cfg.burst_base_fraction * sustained, 4)
            result.burst_base_rate = anchors.burst_base
            log(f"{mode}: burst sweep over base {anchors.burst_base} req/s")
            result.burst = runner.burst_sweep(anchors.burst_base, anchors.slo_ms)
            result.services = runner.services()  # before saturation: batches at SLO loads
            result.saturation = runner.saturation(cfg.saturation_requests)
    finally:
        if server.log_path.exists():  # kept for post-mortems, also when the mode failed
            shutil.copyfile(server.log_path, out / f"server-{mode}.log")
    return result


def _print_summary(results: dict[str, Any]) -> None:
    print(f"{'mode':<12}{'rate@SLO90':>12}{'burst@SLO90':>13}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'resident MB':>13}{'mean batch':>12}{'saturated':>11}")
    for name, m in results["modes"].items():
        def fmt(x: Any) -> str:
            return "-" if x is None else f"{x:.4g}"
        print(f"{name:<12}{fmt(m['rate_at_slo90']):>12}{fmt(m['burst_at_slo90']):>13}"
              f"{fmt(m['p50_ms']):>9}{fmt(m['p99_ms']):>9}"
              f"{fmt(m['resident_weight_bytes'] / 1e6):>13}{fmt(m['mean_denoiser_batch']):>12}"
              f"{fmt(m.get('saturated_rps')):>11}")
    r = results.get("ratios") or {}
    if r:
        print("micro/monolithic: " + ", ".join(f"{k} {'-' if v is None else f'{v:.3g}x'}"
                                               for k, v in r.items()))
    m = results["machine"]
    print(f"machine: {m['cpu_count']} CPUs, {m['platform']}, torch {m['torch']}")


def main_bench(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        modes = _ordered_modes(args.modes)
    except ValueError as exc:
        print(f"lego bench: {exc}", file=sys.stderr)
        return 2
    cfg = _config(args)
    args.out.mkdir(parents=True, exist_ok=True)
    models = _models(args)
    prompts = load_prompts()
    began = time.monotonic()
    measured: dict[str, ModeMeasurement] = {}
    anchors = Anchors()
    with tempfile.TemporaryDirectory(prefix="lego-bench-") as tmp:
        work = Path(tmp) / "work"
        for mode in modes:
            try:
                measured[mode] = _measure_mode(mode, cfg, models, work, args.out, prompts,
                                               anchors)
            except ServerStartError as exc:
                print(f"lego bench: the {mode} server did not start:\n{exc}", file=sys.stderr)
                return 1
    config = {**cfg.as_dict(), "modes": modes, "slo_source": modes[0], "slo_ms": anchors.slo_ms,
              "rate_start": anchors.rate_start, "burst_base_rate": anchors.burst_base, "prompts": "lego_backend/data/"
              "prompts-diffusiondb-5k.txt (DiffusionDB, CC0)",
              "wall_s": round(time.monotonic() - began, 1)}
    results = build_results(config, measured)
    problems = validate_results(results)
    if problems:  # a bug in this tool, not in the server: say so loudly
        print(f"lego bench: malformed results: {problems}", file=sys.stderr)
        return 1
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    try:
        from lego_backend.bench.plot import plot_attainment
        plot_attainment(results, args.out / "slo_attainment.png")
    except RuntimeError as exc:
        print(f"lego bench: no plot: {exc}", file=sys.stderr)
    _print_summary(results)
    print(f"wrote {args.out / 'results.json'} in {config['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main_bench(sys.argv[1:]))
