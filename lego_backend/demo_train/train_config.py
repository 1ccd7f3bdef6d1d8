"""Settings of a training run (no heavy imports: the CLI reads the defaults for --help)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainConfig:
    out: Path
    minutes: float = 44.0  # wall-time cap: training stops early (logged) if steps take longer
    seed: int = 0
    vae_steps: int = 3000
    unet_steps: int = 6000
    vae_share: float = 0.3  # of the wall-time cap, for the VAE
    pool: int = 16000  # scenes encoded for stage 2
    vae_batch: int = 16
    unet_batch: int = 32
    unet_lr: float = 1e-3
    side: int = 64
    tiny: bool = False  # smoke-test architecture
    # v-prediction: at high noise the target is the picture itself, so the text -> layout
    # ("on the left") mapping gets a real gradient; with epsilon targets a 44-minute run learned
    # colours (97%) but placed shapes at chance (22%). The engine samples both kinds.
    prediction: str = "v_prediction"
    vae_from: Path | None = None  # skip stage 1: the vae.safetensors of an earlier run
