"""What a simulated run reports: SLO attainment, latency percentiles (the bench's percentile
function, so figures compare), denoiser batch sizes, resident weights and GPU busy time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lego_backend.bench.stats import percentile
from lego_backend.sim.gpu import Gpu
from lego_backend.sim.profile import Profile


@dataclass(frozen=True)
class RunResult:
    n: int
    completed: int
    rejected: int
    attainment: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    mean_denoiser_batch: float
    resident_weight_bytes: int
    gpu_busy_fraction: float
    events: int
    policy_calls: int
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def resident_weight_bytes(gpus: list[Gpu], profile: Profile, family_of: dict[str, str],
                          controlnets_of: dict[str, int], micro: bool) -> int:
    """Weights held across the cluster. micro: per GPU one copy of each hosted checkpoint's
    denoiser and text encoder, one VAE per family, the cached adapters; monolithic: every
    workflow kind's worker holds its own copy of everything, ControlNets and its fused LoRA."""
    total = 0
    for g in gpus:
        fams = set()
        for item in g.hosts:
            w = profile.model(family_of[item]).weights_bytes
            total += w["unet"] + w["text_encoder"]
            if micro:
                fams.add(family_of[item])
            else:
                total += w["vae"] + w["controlnet"] * controlnets_of.get(item, 0)
                total += w["lora"] if g.fused_lora.get(item) else 0
        for f in fams:
            total += profile.model(f).weights_bytes["vae"]
        total += sum(nbytes for _, nbytes in g.adapters.values())
    return total


def run_result(latencies: list[float], met: int, n: int, rejected: int, gpus: list[Gpu],
               resident: int, span_s: float, events: int, policy_calls: int, wall_s: float
               ) -> RunResult:
    lat_ms = [x * 1000.0 for x in latencies]

    def pct(q: float) -> float | None:
        return round(percentile(lat_ms, q), 3) if lat_ms else None

    rows = sum(g.step_rows for g in gpus)
    batches = sum(g.step_batches for g in gpus)
    return RunResult(
        n=n, completed=len(lat_ms), rejected=rejected, attainment=met / n if n else 0.0,
        p50_ms=pct(50), p95_ms=pct(95), p99_ms=pct(99),
        mean_ms=round(sum(lat_ms) / len(lat_ms), 3) if lat_ms else None,
        mean_denoiser_batch=round(rows / batches, 4) if batches else 0.0,
        resident_weight_bytes=resident,
        gpu_busy_fraction=round(sum(g.busy_s for g in gpus) / (span_s * len(gpus)), 4),
        events=events, policy_calls=policy_calls, wall_s=round(wall_s, 4))


def one_copy_footprint(profile: Profile, checkpoints: dict[str, str], kinds: set[str],
                       loras: set[str], controlnets: set[str]) -> dict[str, int]:
    """Weights needed to serve every workflow kind of a mix once (one replica each): micro
    shares a checkpoint's denoiser and text encoder across kinds, one VAE per family, each
    adapter once; monolithic holds per kind a full copy (denoiser, text encoder, VAE, its
    ControlNets) and a LoRA slot. `checkpoints`: name -> family; kinds as SimRequest.kind."""
    def w(family: str) -> dict[str, int]:
        return profile.model(family).weights_bytes

    micro = sum(w(f)["unet"] + w(f)["text_encoder"] for f in checkpoints.values())
    micro += sum(w(f)["vae"] for f in set(checkpoints.values()))
    micro += sum(w(x.split("-", 1)[0])["lora"] for x in loras)
    micro += sum(w(x.split("-", 1)[0])["controlnet"] for x in controlnets)
    mono = 0
    for kind in kinds:
        ckpt, *cns = kind.split("|")
        f = checkpoints[ckpt]
        mono += w(f)["unet"] + w(f)["text_encoder"] + w(f)["vae"] + w(f)["lora"]
        mono += len(cns) * w(f)["controlnet"]
    return {"micro": micro, "monolithic": mono}
