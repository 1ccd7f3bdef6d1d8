"""The benchmark's workflow mix: six API-format graphs that all share ONE base checkpoint, so a
micro-serving backend can share the text encoder, denoiser and VAE across them while a monolithic
one holds a copy per workflow kind. Prompts are real user prompts (DiffusionDB, see
lego_backend/data/README.md); sizes and steps are tiny so a CPU run finishes in minutes."""
from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

TXT2IMG = "txt2img"
LORA_A = "txt2img_lora_a"
LORA_B = "txt2img_lora_b"
CONTROLNET = "txt2img_controlnet"
IMG2IMG = "img2img"
HIRES = "hires_fix"
KINDS: tuple[str, ...] = (TXT2IMG, LORA_A, LORA_B, CONTROLNET, IMG2IMG, HIRES)

SOURCE_IMAGE = "lego-bench-source.png"  # img2img input, uploaded before the run
HINT_IMAGE = "lego-bench-hint.png"  # ControlNet hint, uploaded before the run
PROMPT_FILE = "prompts-diffusiondb-5k.txt"


@dataclass(frozen=True)
class MixConfig:
    checkpoint: str = "lego-demo-sd15.safetensors"
    # two different LoRA files: an adapter switch between requests is part of what is measured
    loras: tuple[str, str] = ("lego-demo-lora.safetensors", "lego-demo-lora-peft.safetensors")
    controlnet: str = "lego-demo-controlnet.safetensors"
    size: int = 64
    hires_size: int = 128  # hires fix: first pass at `size`, second pass at this size
    steps: int = 20  # a realistic count: the denoiser loop is most of a request, as in production
    hires_steps: int = 10  # second pass of the hires fix
    img2img_denoise: float = 0.6
    hires_denoise: float = 0.5
    cfg: float = 7.0
    sampler: str = "euler"
    scheduler: str = "normal"
    negative: str = "blurry, lowres"
    # relative frequency of each kind in a trace; equal unless told otherwise
    weights: tuple[tuple[str, float], ...] = field(
        default_factory=lambda: tuple((k, 1.0) for k in KINDS))

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "loras": list(self.loras),
                "controlnet": self.controlnet, "size": self.size, "hires_size": self.hires_size,
                "steps": self.steps, "hires_steps": self.hires_steps,
                "img2img_denoise": self.img2img_denoise, "hires_denoise": self.hires_denoise,
                "cfg": self.cfg, "sampler": self.sampler, "scheduler": self.scheduler,
                "weights": dict(self.weights)}


@dataclass(frozen=True)
class BenchRequest:
    kind: str  # one of KINDS
    prompt: dict[str, Any]  # API-format graph, ready for POST /prompt
    slo_ms: float | None = None  # sent as extra_data.lego.slo_ms when set


def load_prompts(path: Path | None = None) -> list[str]:
    """The non-empty lines of the packaged DiffusionDB prompt file (or of `path`)."""
    if path is None:
        text = resources.files("lego_backend.data").joinpath(PROMPT_FILE).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def input_images(cfg: MixConfig) -> dict[str, bytes]:
    """PNG bytes of the images the mix loads, drawn deterministically (no files needed)."""
    s = cfg.size
    src = Image.new("RGB", (s, s), (40, 70, 160))
    draw = ImageDraw.Draw(src)
    draw.ellipse((s // 4, s // 4, 3 * s // 4, 3 * s // 4), fill=(220, 40, 30))
    hint = Image.new("RGB", (s, s), (0, 0, 0))
    ImageDraw.Draw(hint).rectangle((s // 4, s // 4, 3 * s // 4, 3 * s // 4), outline=(255,) * 3,
                                   width=max(1, s // 16))
    out = {}
    for name, img in ((SOURCE_IMAGE, src), (HINT_IMAGE, hint)):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out[name] = buf.getvalue()
    return out


def _sampler(cfg: MixConfig, seed: int, model: list[Any], latent: list[Any],
             positive: list[Any], negative: list[Any], steps: int, denoise: float
             ) -> dict[str, Any]:
    return {"class_type": "KSampler", "inputs": {
        "seed": seed, "steps": steps, "cfg": cfg.cfg, "sampler_name": cfg.sampler,
        "scheduler": cfg.scheduler, "denoise": denoise, "model": model, "positive": positive,
        "negative": negative, "latent_image": latent}}


def build_prompt(kind: str, text: str, seed: int, cfg: MixConfig) -> dict[str, Any]:
    """The API-format graph of one request of `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown workflow kind {kind!r}; expected one of {KINDS}")
    model, clip, vae = ["ckpt", 0], ["ckpt", 1], ["ckpt", 2]
    g: dict[str, Any] = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": cfg.checkpoint}},
    }
    if kind in (LORA_A, LORA_B):
        g["lora"] = {"class_type": "LoraLoader", "inputs": {
            "model": model, "clip": clip, "lora_name": cfg.loras[kind == LORA_B],
            "strength_model": 1.0, "strength_clip": 1.0}}
        model, clip = ["lora", 0], ["lora", 1]
    g["pos"] = {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": clip}}
    g["neg"] = {"class_type": "CLIPTextEncode", "inputs": {"text": cfg.negative, "clip": clip}}
    positive, negative = ["pos", 0], ["neg", 0]
    if kind == CONTROLNET:
        g["hint"] = {"class_type": "LoadImage", "inputs": {"image": HINT_IMAGE}}
        g["cn"] = {"class_type": "ControlNetLoader",
                   "inputs": {"control_net_name": cfg.controlnet}}
        g["cn_apply"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": positive, "negative": negative, "control_net": ["cn", 0],
            "image": ["hint", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
        positive, negative = ["cn_apply", 0], ["cn_apply", 1]
    denoise = 1.0
    if kind == IMG2IMG:
        g["src"] = {"class_type": "LoadImage", "inputs": {"image": SOURCE_IMAGE}}
        g["encode"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["src", 0], "vae": vae}}
        latent: list[Any] = ["encode", 0]
        denoise = cfg.img2img_denoise
    else:
        g["empty"] = {"class_type": "EmptyLatentImage",
                      "inputs": {"width": cfg.size, "height": cfg.size, "batch_size": 1}}
        latent = ["empty", 0]
    g["sample"] = _sampler(cfg, seed, model, latent, positive, negative, cfg.steps, denoise)
    samples = ["sample", 0]
    if kind == HIRES:
        g["upscale"] = {"class_type": "LatentUpscale", "inputs": {
            "samples": samples, "upscale_method": "nearest-exact", "width": cfg.hires_size,
            "height": cfg.hires_size, "crop": "disabled"}}
        # a different seed for the second pass, as users who copy the hires recipe do not share
        g["sample2"] = _sampler(cfg, seed + 1, model, ["upscale", 0], positive, negative,
                                cfg.hires_steps, cfg.hires_denoise)
        samples = ["sample2", 0]
    g["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": samples, "vae": vae}}
    g["save"] = {"class_type": "SaveImage",
                 "inputs": {"filename_prefix": f"lego_bench/{kind}", "images": ["decode", 0]}}
    return g


class RequestFactory:
    """Draws requests: kind by the mix weights, prompt text from the prompt list, a fresh seed
    each time (so no two requests hit the server's output cache). Deterministic per seed."""

    def __init__(self, cfg: MixConfig, prompts: Sequence[str], seed: int):
        if not prompts:
            raise ValueError("the prompt list is empty")
        self.cfg = cfg
        self._prompts = list(prompts)
        self._rng = random.Random(seed)
        self._kinds = [k for k, w in cfg.weights if w > 0]
        self._weights = [w for _, w in cfg.weights if w > 0]
        if not self._kinds:
            raise ValueError("every workflow kind has weight 0")

    def make(self, kind: str, slo_ms: float | None = None) -> BenchRequest:
        text = self._rng.choice(self._prompts)
        seed = self._rng.randrange(1, 2**48)
        return BenchRequest(kind, build_prompt(kind, text, seed, self.cfg), slo_ms)

    def draw(self, n: int, slos: dict[str, float] | None = None) -> list[BenchRequest]:
        kinds = self._rng.choices(self._kinds, weights=self._weights, k=n)
        return [self.make(k, (slos or {}).get(k)) for k in kinds]
