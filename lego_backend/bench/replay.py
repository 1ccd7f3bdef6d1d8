"""The bench against itself: replay every sweep point of a `lego bench` run again, on fresh
servers, with the same arrivals, the same requests and the same SLOs, and compare latency
percentiles and attainment point by point with the same code the simulator's fidelity check
uses (sim/fidelity.py). How far two runs of identical traces on the same machine disagree is
the floor under any prediction of the bench, the simulator's included.

    python -m lego_backend.bench.replay BENCH/results.json --models DIR --out FILE [--modes M]

Every point is replayed as the bench measured it: its trace from the recorded parameters and
seed, its requests from the bench's RequestFactory with the point's seed, the recorded
per-kind SLOs, the bench's client limits; each mode's server is warmed up the bench's way
first. The replay is written as a results.json-shaped document (`modes.M.rate_sweep` and
`burst_sweep` with the new measurements), so `python -m lego_backend.sim.fidelity` also runs
on it."""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lego_backend.bench.config import BenchConfig, full_config, quick_config
from lego_backend.bench.measure import ModeRunner, log
from lego_backend.bench.mix import MixConfig, load_prompts
from lego_backend.bench.run import DEFAULT_MODE
from lego_backend.bench.server import ServerProcess, ServerSpec
from lego_backend.sim.fidelity import _arrivals, compare_runs


def _config(bench: dict[str, Any]) -> BenchConfig:
    doc = bench["config"]
    preset = quick_config if doc.get("quick") else full_config
    mix = dict(doc["mix"])
    mix["loras"] = tuple(mix["loras"])
    mix["weights"] = tuple((k, float(w)) for k, w in mix["weights"].items())
    return preset(seed=doc["seed"], admission=doc.get("admission"), threads=doc.get("threads"),
                  timeout_slo_factor=doc.get("timeout_slo_factor", 3.0), mix=MixConfig(**mix),
                  point_lone_reps=doc.get("point_lone_reps", 0))


def replay_mode(bench: dict[str, Any], mode: str, models: Path, work: Path) -> dict[str, Any]:
    """A copy of the bench's entry for `mode` whose sweep points hold the replay's figures."""
    cfg = _config(bench)
    slos = bench["config"]["slo_ms"]
    entry = copy.deepcopy(bench["modes"][mode])
    spec = ServerSpec(mode=None if mode == DEFAULT_MODE else mode, models=models,
                      workdir=work / mode, admission=cfg.admission, threads=cfg.threads)
    with ServerProcess(spec) as server:
        runner = ModeRunner(server.base_url, cfg, load_prompts())
        log(f"{mode}: warm-up and standalone latency")
        entry["standalone_ms"] = runner.prepare()
        for sweep in ("rate", "burst"):
            for p in entry.get(f"{sweep}_sweep", []):
                if not p.get("trace"):
                    continue
                _, detail = runner._point(sweep, p["value"], _arrivals(p["trace"]), slos,
                                          p["trace"])
                p.update(detail)
                p["attainment"] = detail["attainment"]
    return entry


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lego-bench-replay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench_results", type=Path)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the replay, results.json-shaped")
    p.add_argument("--modes", help="comma-separated (default: every mode of the bench run)")
    args = p.parse_args(argv)
    bench = json.loads(args.bench_results.read_text("utf-8"))
    modes = args.modes.split(",") if args.modes else list(bench["modes"])
    began = time.monotonic()
    replay = {k: v for k, v in bench.items() if k != "modes"}
    replay["modes"] = {}
    with tempfile.TemporaryDirectory(prefix="lego-replay-") as tmp:
        for mode in modes:
            replay["modes"][mode] = replay_mode(bench, mode, args.models.resolve(), Path(tmp))
    replay["replay_of"] = str(args.bench_results)
    replay["replay_wall_s"] = round(time.monotonic() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(replay, indent=2) + "\n", "utf-8")
    report = compare_runs(bench, replay)
    for r in report["points"]:
        print(f"{r['mode']:<11}{r['sweep']:<6}{r['value']:<8.4g} p50 {r['bench_p50_ms']} -> "
              f"{r['replay_p50_ms']}  p95 {r['bench_p95_ms']} -> {r['replay_p95_ms']}  "
              f"attainment {r['bench_attainment']} -> {r['replay_attainment']}")
    print(json.dumps(report["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
