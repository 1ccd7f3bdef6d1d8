"""Service-time profiles: plain data read from JSON (lego_backend/sim/profiles/*.json).

A profile holds, per model kind and resolution, rows by batch size (batch = requests, CFG
included): one denoiser step, one ControlNet step, text encode and VAE decode, in ms; and per
component the weights bytes and load time. Times between measured batch sizes are linearly
interpolated (GPU latency is close to linear in batch past the launch-bound region); past the
largest measured batch the batch does not fit, which is why `max_batch` is the last row.

Optional parts (a measured CPU profile has them; the published GPU profile does not):
- `device_type`: "gpu" (default: one batch at a time per device) or "cpu" (the host's cores
  are shared by every batch and request in progress, sim/cpu.py);
- `host.concurrency_speedup`: {k: total throughput of k concurrent jobs / one job};
- `overhead_ms`: per-request work outside the model forwards: `request_pre` (HTTP, graph
  compile, admission), `request_post` (image saving, events, the reply) and `step` (sampler
  math, progress event and hand-offs around each denoiser step), of which `step_cpu` is CPU
  work (the rest is waiting that does not occupy the cores), and `controlnet_call` (the
  hand-off to a ControlNet service and back, per ControlNet call, CPU work);
- per row `lora_step_ms` (a step whose every row applies a LoRA) and `vae_encode_ms` (img2img's
  image encode)."""
from __future__ import annotations

import bisect
import itertools
import json
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA = "lego-sim-profile/1"
COMPONENTS = ("unet", "text_encoder", "vae", "controlnet", "lora")
ROW_FIELDS = ("batch", "step_ms", "controlnet_step_ms", "encode_ms", "decode_ms")
OPTIONAL_ROW_FIELDS = ("lora_step_ms", "vae_encode_ms")
DEVICE_TYPES = ("gpu", "cpu")
OVERHEADS = ("request_pre", "request_post", "step", "step_cpu", "controlnet_call")
DEFAULT_PROFILE = "gpu-published.json"


@dataclass(frozen=True)
class ModelProfile:
    kind: str  # model family, e.g. "sd15": every checkpoint of the family shares these times
    resolution: int  # pixels per side
    default_steps: int  # denoiser steps a request of this kind runs unless told otherwise
    batches: tuple[int, ...]  # measured batch sizes, ascending; the last is max_batch
    step_s: tuple[float, ...]  # per batch size, seconds (the simulator's clock unit)
    controlnet_step_s: tuple[float, ...]
    encode_s: tuple[float, ...]
    decode_s: tuple[float, ...]
    weights_bytes: dict[str, int]  # per component
    load_s: dict[str, float]  # per component: cold load onto the device
    activation_bytes_per_sample: int  # working memory a batch row needs on top of weights
    lora_step_s: tuple[float, ...] | None = None  # a step with a LoRA on every row (measured)
    vae_encode_s: tuple[float, ...] | None = None  # image -> latent (img2img)

    @property
    def max_batch(self) -> int:
        return self.batches[-1]

    def _at(self, table: tuple[float, ...], batch: int) -> float:
        xs = self.batches
        if batch <= xs[0]:
            return table[0] * batch / xs[0] if xs[0] > 1 else table[0]
        i = bisect.bisect_left(xs, batch)
        if i >= len(xs):
            raise ValueError(f"batch {batch} exceeds max_batch {xs[-1]} of {self.kind}")
        if xs[i] == batch:
            return table[i]
        x0, x1 = xs[i - 1], xs[i]
        return table[i - 1] + (table[i] - table[i - 1]) * (batch - x0) / (x1 - x0)

    def step(self, batch: int) -> float:
        return self._at(self.step_s, batch)

    def controlnet_step(self, batch: int) -> float:
        return self._at(self.controlnet_step_s, batch)

    def encode(self, batch: int) -> float:
        return self._at(self.encode_s, batch)

    def decode(self, batch: int) -> float:
        return self._at(self.decode_s, batch)

    def lora_extra(self, lora_rows: int, fallback_fraction: float, batch: int) -> float:
        """What `lora_rows` rows applying a LoRA add to a step of `batch` rows: measured if the
        profile has it, else an assumed fraction of the whole step."""
        if self.lora_step_s is None:
            return fallback_fraction * self.step(batch)
        return max(0.0, self._at(self.lora_step_s, lora_rows) - self.step(lora_rows))

    def vae_encode(self, batch: int) -> float:
        return 0.0 if self.vae_encode_s is None else self._at(self.vae_encode_s, batch)

    def standalone(self, steps: int, controlnets: int) -> float:
        """Seconds one request takes with the device to itself."""
        per_step = self.step(1) + controlnets * self.controlnet_step(1)
        return self.encode(1) + steps * per_step + self.decode(1)


@dataclass(frozen=True)
class Overheads:
    """Seconds of CPU work per request outside the model forwards (0 when not measured)."""
    request_pre: float = 0.0
    request_post: float = 0.0
    step: float = 0.0
    # the part of `step` that is CPU work (shares a CPU host's cores); the rest is waiting
    # (thread hand-offs, scheduling) that overlaps with other requests. Default: all of it.
    step_cpu: float = -1.0
    controlnet_call: float = 0.0  # per ControlNet call: the hand-off there and back (CPU)

    def __post_init__(self) -> None:
        if self.step_cpu < 0:
            object.__setattr__(self, "step_cpu", self.step)

    def scaled(self, factor: float) -> Overheads:
        return Overheads(*(factor * getattr(self, f) for f in OVERHEADS))


@dataclass(frozen=True)
class Profile:
    name: str
    meta: dict[str, Any]  # sources, derivation, device: carried into results.json
    models: dict[str, ModelProfile]  # by kind
    device_type: str = "gpu"
    speedup: tuple[float, ...] = (1.0,)  # [k-1]: throughput of k concurrent jobs / one job
    overhead: Overheads = Overheads()

    def scaled(self, factor: float) -> Profile:
        """Every time `factor` x (forwards, load times, overheads): the same machine running
        uniformly slower or faster, as a shared host does from one hour to the next."""
        def times(t: tuple[float, ...] | None) -> tuple[float, ...] | None:
            return None if t is None else tuple(factor * x for x in t)

        models = {k: replace(m, step_s=times(m.step_s), controlnet_step_s=times(
                      m.controlnet_step_s), encode_s=times(m.encode_s),
                      decode_s=times(m.decode_s), lora_step_s=times(m.lora_step_s),
                      vae_encode_s=times(m.vae_encode_s),
                      load_s={c: factor * s for c, s in m.load_s.items()})
                  for k, m in self.models.items()}
        return replace(self, models=models, overhead=self.overhead.scaled(factor))

    def model(self, kind: str) -> ModelProfile:
        try:
            return self.models[kind]
        except KeyError:
            raise KeyError(f"profile {self.name!r} has no model kind {kind!r}; "
                           f"it has {sorted(self.models)}") from None


def validate_profile(doc: Any) -> list[str]:
    """Problems with a profile document; empty if it is well formed."""
    if not isinstance(doc, dict):
        return ["profile is not an object"]
    problems = [] if doc.get("schema") == SCHEMA else [f"schema is not {SCHEMA!r}"]
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        return problems + ["models missing or empty"]
    for i, m in enumerate(models):
        where = f"models[{i}]"
        for key in ("kind", "resolution", "default_steps", "rows", "weights_bytes", "load_ms",
                    "activation_bytes_per_sample"):
            if key not in m:
                problems.append(f"{where}.{key} missing")
        rows = m.get("rows") or []
        batches = [r.get("batch") for r in rows]
        if not rows or batches != sorted(set(batches)):
            problems.append(f"{where}.rows must have distinct ascending batch sizes")
        for j, row in enumerate(rows):
            for f in ROW_FIELDS + tuple(x for x in OPTIONAL_ROW_FIELDS if x in row):
                v = row.get(f)
                if not isinstance(v, (int, float)) or v < 0:
                    problems.append(f"{where}.rows[{j}].{f} is not a number >= 0")
        for f in OPTIONAL_ROW_FIELDS:
            if 0 < sum(f in row for row in rows) < len(rows):
                problems.append(f"{where}.rows: {f} must be in every row or none")
        for table in ("weights_bytes", "load_ms"):
            missing = [c for c in COMPONENTS if c not in (m.get(table) or {})]
            if missing:
                problems.append(f"{where}.{table} lacks {missing}")
    if doc.get("device_type", "gpu") not in DEVICE_TYPES:
        problems.append(f"device_type must be one of {DEVICE_TYPES}")
    speedup = (doc.get("host") or {}).get("concurrency_speedup", {"1": 1.0})
    if (not isinstance(speedup, dict) or not all(
            str(k).isdigit() and int(k) >= 1 and isinstance(v, (int, float)) and v > 0
            for k, v in speedup.items())):
        problems.append("host.concurrency_speedup must map job counts >= 1 to numbers > 0")
    overhead = doc.get("overhead_ms", {})
    if not isinstance(overhead, dict) or any(
            k not in OVERHEADS or not isinstance(v, (int, float)) or v < 0
            for k, v in overhead.items()):
        problems.append(f"overhead_ms must map {OVERHEADS} to numbers >= 0")
    return problems


def _speedup_curve(table: dict[str, float]) -> tuple[float, ...]:
    """Throughput at 1..K concurrent jobs, linear between measured counts; 1 job = 1.0 if not
    given; past the largest measured count it stays flat (the cores are full)."""
    pts = sorted((int(k), float(v)) for k, v in table.items())
    if pts[0][0] != 1:
        pts.insert(0, (1, 1.0))
    out = []
    for k in range(1, pts[-1][0] + 1):
        for (k0, v0), (k1, v1) in itertools.pairwise(pts):
            if k0 <= k <= k1:
                out.append(v0 + (v1 - v0) * (k - k0) / (k1 - k0))
                break
        else:
            out.append(pts[0][1])
    return tuple(out)


def profile_from_dict(doc: dict[str, Any], name: str = "profile") -> Profile:
    problems = validate_profile(doc)
    if problems:
        raise ValueError(f"malformed profile {name}: {problems}")
    models = {}
    for m in doc["models"]:
        rows = m["rows"]

        def col(field: str, rows: list[dict[str, Any]] = rows) -> tuple[float, ...]:
            return tuple(float(r[field]) / 1000.0 for r in rows)

        def optional(field: str, rows: list[dict[str, Any]] = rows) -> tuple[float, ...] | None:
            return col(field) if field in rows[0] else None

        models[m["kind"]] = ModelProfile(
            kind=m["kind"], resolution=int(m["resolution"]),
            default_steps=int(m["default_steps"]),
            batches=tuple(int(r["batch"]) for r in rows), step_s=col("step_ms"),
            controlnet_step_s=col("controlnet_step_ms"), encode_s=col("encode_ms"),
            decode_s=col("decode_ms"),
            weights_bytes={k: int(v) for k, v in m["weights_bytes"].items()},
            load_s={k: float(v) / 1000.0 for k, v in m["load_ms"].items()},
            activation_bytes_per_sample=int(m["activation_bytes_per_sample"]),
            lora_step_s=optional("lora_step_ms"), vae_encode_s=optional("vae_encode_ms"))
    meta = {k: v for k, v in doc.items() if k != "models"}
    over = {k: float(v) / 1000.0 for k, v in (doc.get("overhead_ms") or {}).items()}
    speedup = (doc.get("host") or {}).get("concurrency_speedup") or {"1": 1.0}
    return Profile(str(doc.get("name", name)), meta, models,
                   device_type=str(doc.get("device_type", "gpu")),
                   speedup=_speedup_curve(speedup), overhead=Overheads(**over))


def load_profile(path: str | Path | None = None) -> Profile:
    """A profile file; None = the shipped published-GPU profile (read from the package)."""
    if path is None:
        text = resources.files("lego_backend.sim.profiles").joinpath(DEFAULT_PROFILE
                                                                      ).read_text("utf-8")
        return profile_from_dict(json.loads(text), DEFAULT_PROFILE)
    p = Path(path)
    return profile_from_dict(json.loads(p.read_text("utf-8")), p.name)
