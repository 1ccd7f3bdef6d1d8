"""What a simulated request asks for, and the mixes that draw requests: Zipf popularity over
checkpoints, LoRAs and ControlNets (a few hot, a long tail, as on public model hubs).

A request is a workflow DAG of service steps: text encode -> N x ([ControlNet] -> denoiser step)
-> VAE decode, with its LoRAs applied to the denoiser (loaded first if not resident)."""
from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SimRequest:
    index: int  # position in the trace
    arrival: float  # seconds from the start of the trace
    checkpoint: str  # base model: its denoiser and text encoder are one service each
    family: str  # profile model kind of the checkpoint (e.g. "sd15"): sets the service times
    steps: int  # denoiser steps
    loras: tuple[str, ...] = ()
    controlnets: tuple[str, ...] = ()
    # further sampling passes after the first, each (profile model kind, steps) on the same
    # checkpoint's denoiser: e.g. a hires fix's second pass at a larger size
    passes: tuple[tuple[str, int], ...] = ()
    image_input: bool = False  # img2img: the input image is VAE-encoded first
    slo_s: float | None = None  # the SLO the request carries; None = slo_scale x standalone
    workflow: str = ""  # the workflow's own name, if it has one (e.g. a `lego bench` kind)

    @property
    def kind(self) -> str:
        """Workflow kind: same checkpoint and ControlNets = same graph with the same models,
        what one monolithic worker holds (a LoRA is swapped in, like ComfyUI re-patching).
        A named workflow is its own kind (as `lego serve` keys workers by graph and files)."""
        return self.workflow or "|".join((self.checkpoint, *self.controlnets))


@dataclass(frozen=True)
class Checkpoint:
    name: str
    family: str  # profile model kind


def zipf_weights(n: int, s: float) -> list[float]:
    """Weight of rank i (1-based) proportional to 1 / i**s."""
    return [1.0 / (i ** s) for i in range(1, n + 1)]


@dataclass(frozen=True)
class Mix:
    name: str = "default"
    checkpoints: tuple[Checkpoint, ...] = (
        Checkpoint("sd15-base", "sd15"), Checkpoint("sdxl-base", "sdxl"),
        Checkpoint("sd15-ft-a", "sd15"), Checkpoint("sd15-ft-b", "sd15"),
        Checkpoint("sdxl-ft-a", "sdxl"), Checkpoint("sd15-ft-c", "sd15"))
    checkpoint_zipf: float = 1.0  # Zipf exponent over checkpoints, in the order listed
    lora_probability: float = 0.5  # share of requests with one LoRA
    loras_per_family: int = 50  # catalogue size per family
    lora_zipf: float = 1.1
    controlnet_probability: float = 0.3  # share of requests with one ControlNet
    controlnets_per_family: int = 4  # canny, depth, openpose, tile
    controlnet_zipf: float = 1.0
    steps: dict[str, int] = field(default_factory=dict)  # per family; else profile default

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["checkpoints"] = [asdict(c) for c in self.checkpoints]
        return out

    def draw(self, arrivals: Sequence[float], default_steps: dict[str, int], seed: int
             ) -> list[SimRequest]:
        """One request per arrival, deterministic per seed."""
        rng = random.Random(seed)
        ck_w = zipf_weights(len(self.checkpoints), self.checkpoint_zipf)
        lora_w = zipf_weights(self.loras_per_family, self.lora_zipf)
        cn_w = zipf_weights(self.controlnets_per_family, self.controlnet_zipf)
        cks = rng.choices(self.checkpoints, weights=ck_w, k=len(arrivals))
        out = []
        for i, (t, ck) in enumerate(zip(arrivals, cks)):
            loras: tuple[str, ...] = ()
            cns: tuple[str, ...] = ()
            if rng.random() < self.lora_probability:
                loras = (f"{ck.family}-lora-{rng.choices(range(len(lora_w)), lora_w)[0]}",)
            if rng.random() < self.controlnet_probability:
                cns = (f"{ck.family}-cn-{rng.choices(range(len(cn_w)), cn_w)[0]}",)
            steps = self.steps.get(ck.family, default_steps[ck.family])
            out.append(SimRequest(i, t, ck.name, ck.family, steps, loras, cns))
        return out

    def shares(self) -> dict[str, float]:
        """Checkpoint -> probability."""
        w = zipf_weights(len(self.checkpoints), self.checkpoint_zipf)
        total = sum(w)
        return {c.name: x / total for c, x in zip(self.checkpoints, w)}


def toy_mix() -> Mix:
    """One checkpoint, no adapters: the smallest mix that still shows batching."""
    return Mix(name="toy", checkpoints=(Checkpoint("sd15-base", "sd15"),),
               lora_probability=0.0, controlnet_probability=0.0)


def load_mix(spec: str | None) -> Mix:
    """`default`, `toy`, or a JSON file with Mix fields (checkpoints as [{name, family}])."""
    if spec in (None, "", "default"):
        return Mix()
    if spec == "toy":
        return toy_mix()
    doc = json.loads(Path(spec).read_text("utf-8"))
    if "checkpoints" in doc:
        doc["checkpoints"] = tuple(Checkpoint(**c) for c in doc["checkpoints"])
    return replace(Mix(name=Path(spec).stem), **doc)
