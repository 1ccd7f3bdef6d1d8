"""The simulator's own speed: simulated requests per minute of wall time (and of this process's
CPU time, which other users of a shared machine do not skew as much), at 8, 64 and 512 GPUs, on
the shipped GPU profile and the default mix, at about the load the study finds sustainable
(1 request per mean standalone latency per GPU). A benchmark, not a test: it prints figures.

    lego sim --speed [--speed-gpus 8,64,512] [--speed-requests 20000] [--out DIR]
    python -m lego_backend.sim.speed [same options]"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lego_backend.sim.placement import ClusterSpec
from lego_backend.sim.profile import Profile, load_profile
from lego_backend.sim.simulate import SimConfig, Simulation
from lego_backend.sim.study import mean_standalone
from lego_backend.sim.traces import poisson_arrivals
from lego_backend.sim.workload import Mix


@dataclass(frozen=True)
class SpeedPoint:
    gpus: int
    mode: str
    requests: int
    rate: float
    wall_s: float
    cpu_s: float
    events: int
    attainment: float
    loadavg: float | None  # the machine's 1-minute load average when the point ended

    @property
    def per_wall_minute(self) -> int:
        return round(60 * self.requests / self.wall_s) if self.wall_s else 0

    @property
    def per_cpu_minute(self) -> int:
        return round(60 * self.requests / self.cpu_s) if self.cpu_s else 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_wall_minute": self.per_wall_minute,
                "requests_per_cpu_minute": self.per_cpu_minute}


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def measure(profile: Profile, mix: Mix, gpus: int, mode: str, requests: int, seed: int = 1
            ) -> SpeedPoint:
    rate = gpus / mean_standalone(profile, mix)
    steps = {k: m.default_steps for k, m in profile.models.items()}
    reqs = mix.draw(poisson_arrivals(rate, requests / rate, seed), steps, seed + 1)
    sim = Simulation(profile, SimConfig(mode=mode, cluster=ClusterSpec(gpus=gpus)), reqs)
    cpu, wall = time.process_time(), time.perf_counter()
    res = sim.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return SpeedPoint(gpus, mode, len(reqs), round(rate, 3), round(wall, 3), round(cpu, 3),
                      res.events, round(res.attainment, 4), _loadavg())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lego sim --speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speed", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--speed-gpus", default="8,64,512")
    p.add_argument("--speed-requests", type=int, default=20000, help="requests per point")
    p.add_argument("--mode", default="both", choices=["micro", "monolithic", "both"])
    p.add_argument("--profile", help="profile JSON (default: the shipped GPU profile)")
    p.add_argument("--out", type=Path, help="folder for speed.json")
    args, _ = p.parse_known_args(argv)
    profile = load_profile(args.profile)
    mix = Mix()
    modes = ["micro", "monolithic"] if args.mode == "both" else [args.mode]
    points = []
    print(f"load average before: {_loadavg()}")
    for gpus in (int(x) for x in args.speed_gpus.split(",")):
        for mode in modes:
            pt = measure(profile, mix, gpus, mode, args.speed_requests)
            points.append(pt)
            print(f"{gpus:>4} GPUs {mode:<11} {pt.requests} requests in {pt.wall_s:.1f} s wall "
                  f"({pt.per_wall_minute} / wall min), {pt.cpu_s:.1f} s CPU "
                  f"({pt.per_cpu_minute} / CPU min), {pt.events} events, load {pt.loadavg}",
                  flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "speed.json").write_text(json.dumps(
            {"points": [x.as_dict() for x in points], "profile": profile.name,
             "cpu_count": os.cpu_count()}, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
