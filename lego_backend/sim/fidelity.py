"""Fidelity check: replay the arrivals of a `lego bench` run through the simulator with a profile
measured on the same machine (`lego profile --sizes 64,128`), and compare latency percentiles
point by point.

    python -m lego_backend.sim.fidelity BENCH_RESULTS.json CPU_PROFILE.json [--out FILE]

Mapping of the bench mix (lego_backend/bench/mix.py) onto simulated requests, per kind: txt2img
and img2img = `steps` denoiser steps (img2img's VAE encode is taken as one more decode's worth,
approximated by nothing: it is under a millisecond at 64 px); the LoRA kinds add their LoRA;
ControlNet adds one ControlNet per step; hires fix = the first pass plus a second pass at
hires_size, costed as extra 64-px steps in the ratio of the measured step times. The kinds come
from the bench's own RequestFactory with the bench's seeds, so the sim sees the same sequence."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lego_backend.bench import mix as bench_mix
from lego_backend.bench.config import BenchConfig, full_config
from lego_backend.bench.trace import poisson_arrivals
from lego_backend.sim.placement import ClusterSpec
from lego_backend.sim.profile import Profile, load_profile
from lego_backend.sim.simulate import SimConfig, simulate
from lego_backend.sim.workload import SimRequest


def _requests(kinds: list[str], arrivals: list[float], profile: Profile, steps: int,
              hires_steps: int) -> list[SimRequest]:
    base = min(profile.models.values(), key=lambda m: m.resolution)
    big = max(profile.models.values(), key=lambda m: m.resolution)
    hires_equiv = round(steps + hires_steps * big.step(1) / base.step(1))
    out = []
    for i, (t, kind) in enumerate(zip(arrivals, kinds)):
        loras: tuple[str, ...] = ()
        cns: tuple[str, ...] = ()
        n = steps
        if kind in (bench_mix.LORA_A, bench_mix.LORA_B):
            loras = (f"{base.kind}-lora-{kind}",)
        elif kind == bench_mix.CONTROLNET:
            cns = (f"{base.kind}-cn-0",)
        elif kind == bench_mix.HIRES:
            n = hires_equiv
        out.append(SimRequest(i, t, "demo-sd15", base.kind, n, loras, cns))
    return out


def compare(bench: dict[str, Any], profile: Profile) -> dict[str, Any]:
    cfg_doc = bench["config"]
    cfg: BenchConfig = full_config(seed=cfg_doc["seed"], slo_scale=cfg_doc["slo_scale"])
    mix_cfg = replace(cfg.mix, steps=cfg_doc["mix"]["steps"],
                      hires_steps=cfg_doc["mix"]["hires_steps"])
    prompts = bench_mix.load_prompts()
    points = []
    for mode, entry in bench["modes"].items():
        for p in entry.get("rate_sweep", []):
            tr = p.get("trace") or {}
            if p.get("p50_ms") is None or tr.get("kind") != "poisson":
                continue
            arrivals = poisson_arrivals(tr["rate"], tr["duration_s"], tr["seed"]) or [0.0]
            factory = bench_mix.RequestFactory(mix_cfg, prompts,
                                               cfg.point_seed("rate", p["value"]))
            kinds = [r.kind for r in factory.draw(len(arrivals))]
            reqs = _requests(kinds, arrivals, profile, mix_cfg.steps, mix_cfg.hires_steps)
            res = simulate(profile, SimConfig(mode=mode, cluster=ClusterSpec(gpus=1),
                                              slo_scale=cfg.slo_scale), reqs)
            row = {"mode": mode, "rate": p["value"], "n": len(reqs),
                   "bench_p50_ms": p["p50_ms"], "sim_p50_ms": res.p50_ms,
                   "bench_p95_ms": p["p95_ms"], "sim_p95_ms": res.p95_ms,
                   "bench_attainment": p["attainment"], "sim_attainment": res.attainment}
            for q in ("p50", "p95"):
                b, s = row[f"bench_{q}_ms"], row[f"sim_{q}_ms"]
                row[f"{q}_rel_error"] = round((s - b) / b, 4) if b and s is not None else None
            points.append(row)
    errs = [abs(r[k]) for r in points for k in ("p50_rel_error", "p95_rel_error")
            if r[k] is not None]
    return {"points": points, "max_abs_rel_error": max(errs) if errs else None,
            "mean_abs_rel_error": round(sum(errs) / len(errs), 4) if errs else None,
            "bench_machine": bench.get("machine"), "profile": profile.name}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lego-sim-fidelity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bench_results", type=Path)
    p.add_argument("profile", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    report = compare(json.loads(args.bench_results.read_text("utf-8")),
                     load_profile(args.profile))
    for r in report["points"]:
        print(f"{r['mode']:<11} rate {r['rate']:<7} p50 bench {r['bench_p50_ms']:>9} sim "
              f"{r['sim_p50_ms']:>9} ({r['p50_rel_error']:+.0%})  p95 bench "
              f"{r['bench_p95_ms']:>9} sim {r['sim_p95_ms']:>9} ({r['p95_rel_error']:+.0%})")
    print(f"mean |error| {report['mean_abs_rel_error']}, max |error| "
          f"{report['max_abs_rel_error']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
