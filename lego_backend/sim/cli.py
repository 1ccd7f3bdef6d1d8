"""`lego sim`: a capacity study on a simulated cluster that runs the server's own policy code;
`lego profile`: measure a profile of the demo models on this machine.

    lego sim --cluster gpus=64,mem=80GiB [--profile FILE] [--trace sweep|TRACE] [--mix MIX]
             [--mode micro|monolithic|both] --out DIR
    lego sim --speed [--speed-gpus 8,64,512] [--speed-requests 20000] [--out DIR]
    lego profile --out FILE [--sizes 64,128] [--batches 1,2,4,8] [--reps 5]

TRACE: `sweep` (default: a Poisson rate sweep and a burst sweep, as `lego bench`),
`poisson:rate=R[,duration=S]`, `bursty:base=R,mult=M[,start=S,window=S,duration=S]`,
`diurnal:rate=R[,hours=24,hour_s=60]`, or `log:PATH` (CSV/JSONL request log).
MIX: `default` (Zipf over 6 checkpoints, LoRAs and ControlNets), `toy`, or a JSON file."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lego_backend.sim.placement import ClusterSpec
from lego_backend.sim.profile import load_profile
from lego_backend.sim.simulate import SimConfig
from lego_backend.sim.workload import load_mix


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lego sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cluster", default="gpus=64,mem=80GiB", help="gpus=N,mem=SIZE per GPU")
    p.add_argument("--profile", help="profile JSON (default: the shipped gpu-published.json)")
    p.add_argument("--trace", default="sweep", help="sweep (default) or a single trace")
    p.add_argument("--mix", default="default", help="default, toy, or a mix JSON file")
    p.add_argument("--mode", default="both", choices=["micro", "monolithic", "both"])
    p.add_argument("--out", type=Path, help="folder for results.json and plots (required "
                                           "unless --speed)")
    p.add_argument("--speed", action="store_true",
                   help="measure the simulator's own speed (requests per minute at 8/64/512 "
                        "GPUs; sim/speed.py) instead of running a study")
    p.add_argument("--slo-scale", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--quick", action="store_true", help="fewer and shorter sweep points")
    p.add_argument("--strict-admission", action="store_true")
    p.add_argument("--spread", type=float, default=2.0,
                   help="micro: replicas per service = this x its share of the GPUs")
    p.add_argument("--deadline", choices=["slo", "laxity"], default="slo",
                   help="what calls carry as their deadline (slo = as the server)")
    return p


def _kv(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        out[key.strip()] = float(value)
    return out


def _single_trace(spec: str, profile: Any, mix: Any, seed: int) -> tuple[list[Any], dict]:
    """The requests of a non-sweep --trace, and its description for results.json."""
    from lego_backend.sim import traces

    kind, _, rest = spec.partition(":")
    steps = {k: m.default_steps for k, m in profile.models.items()}
    if kind == "log":
        families = {c.name: c.family for c in mix.checkpoints}
        reqs = traces.load_request_log(Path(rest), families, steps)
        return reqs, {"kind": "log", "path": rest}
    a = _kv(rest)
    if kind == "poisson":
        arrivals = traces.poisson_arrivals(a["rate"], a.get("duration", 300.0), seed)
    elif kind == "bursty":
        burst = traces.BurstSpec(a["base"], a["mult"], a.get("start", 60.0),
                                 a.get("window", 60.0), a.get("duration", 300.0))
        arrivals = traces.bursty_arrivals(burst, seed)
    elif kind == "diurnal":
        d = traces.DiurnalSpec(a["rate"], int(a.get("hours", 24)), a.get("hour_s", 60.0))
        arrivals = traces.diurnal_arrivals(d, seed)
    else:
        raise ValueError(f"unknown trace {spec!r}")
    return mix.draw(arrivals, steps, seed + 1), {"kind": kind, **a, "seed": seed}


def _run_single(args: argparse.Namespace, profile: Any, mix: Any, sim: SimConfig,
                modes: list[str]) -> dict[str, Any]:
    from lego_backend.bench.measure import ModeMeasurement
    from lego_backend.bench.results import build_results
    from lego_backend.bench.sweep import SearchResult, SweepPoint
    from lego_backend.sim.simulate import simulate

    reqs, trace = _single_trace(args.trace, profile, mix, args.seed)
    span = max((r.arrival for r in reqs), default=0.0) or 1.0
    rate = round(len(reqs) / span, 4)
    measured = {}
    for mode in modes:
        res = simulate(profile, replace(sim, mode=mode), reqs).as_dict()
        point = SweepPoint(rate, res["attainment"], res["attainment"] >= 0.9,
                           {"trace": trace, **res})
        m = ModeMeasurement(mode)
        m.rate = SearchResult(rate if point.passed else 0.0, point if point.passed else None,
                              [point])
        m.services = {k: res[k] for k in ("resident_weight_bytes", "mean_denoiser_batch")}
        measured[mode] = m
    config = {"mix": mix.as_dict(), "slo_scale": sim.slo_scale, "seed": args.seed,
              "trace": trace, "cluster": sim.cluster.as_dict(), "profile": profile.name}
    return build_results(config, measured)


def main_sim(argv: list[str]) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.speed:
        from lego_backend.sim.speed import main as speed_main
        return speed_main(argv)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.out is None:
        parser.error("--out is required (unless --speed)")
    from lego_backend.bench.results import validate_results
    from lego_backend.sim.study import StudyConfig, quick_study, run_study
    try:
        cluster = ClusterSpec.parse(args.cluster)
        profile = load_profile(args.profile)
        mix = load_mix(args.mix)
    except (ValueError, OSError, KeyError) as exc:
        print(f"lego sim: {exc}", file=sys.stderr)
        return 2
    modes = ["monolithic", "micro"] if args.mode == "both" else [args.mode]
    sim = SimConfig(cluster=cluster, slo_scale=args.slo_scale, seed=args.seed,
                    strict_admission=args.strict_admission, spread=args.spread,
                    deadline=args.deadline)
    if args.trace == "sweep":
        cfg = replace(quick_study() if args.quick else StudyConfig(), seed=args.seed)
        results = run_study(profile, mix, sim, cfg, modes)
    else:
        try:
            results = _run_single(args, profile, mix, sim, modes)
        except (ValueError, OSError, KeyError) as exc:
            print(f"lego sim: {exc}", file=sys.stderr)
            return 2
    problems = validate_results(results)
    if problems:
        print(f"lego sim: malformed results: {problems}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    try:
        from lego_backend.bench.plot import plot_attainment
        plot_attainment(results, args.out / "slo_attainment.png")
    except RuntimeError as exc:
        print(f"lego sim: no plot: {exc}", file=sys.stderr)
    _summary(results)
    return 0


def _summary(results: dict[str, Any]) -> None:
    for name, m in results["modes"].items():
        print(f"{name:<11} rate@SLO90 {m['rate_at_slo90']:<9.4g} burst@SLO90 "
              f"{m['burst_at_slo90']:<7.4g} p50 {m['p50_ms']} ms  resident "
              f"{m['resident_weight_bytes'] / 2**30:.1f} GiB  batch {m['mean_denoiser_batch']}")
    if results.get("ratios"):
        print("micro/monolithic:", results["ratios"])
    speed = results["config"].get("simulator")
    if speed:
        print(f"simulated {speed['requests_simulated']} requests, "
              f"{speed['requests_per_wall_minute']} per wall minute")


def main_profile(argv: list[str]) -> int:
    from lego_backend.sim.measure_profile import main as measure_main
    return measure_main(argv)


if __name__ == "__main__":
    sys.exit(main_sim(sys.argv[1:]))
