"""`lego demo train`: the whole offline training run, seeded, within a wall-time budget.

Stage 1 trains the VAE (a fixed share of the budget), stage 2 renders a pool of scenes, encodes
them once and trains the UNet + CLIP jointly for the rest. Sample grids (our own Euler sampler,
same schedule as the engine) are written as training goes; the checkpoint is written in the
original SD single-file layout. Wall and CPU time of each stage go to summary.json.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lego_backend.demo_train.architecture import Architecture, build_vae
from lego_backend.demo_train.batches import make_batch, to_uint8
from lego_backend.demo_train.diffusion import euler_sample
from lego_backend.demo_train.export import write_checkpoint
from lego_backend.demo_train.grid import save_grid
from lego_backend.demo_train.prompts import GRID_PROMPTS
from lego_backend.demo_train.scenes import held_out_triples
from lego_backend.demo_train.tokens import Tokens
from lego_backend.demo_train.train_config import TrainConfig
from lego_backend.demo_train.train_unet import Trained, encode_pool, train_unet
from lego_backend.demo_train.train_vae import (
    SD15_SCALING,
    fit_latent_scale,
    normalise_latents,
    train_vae,
)
from lego_backend.models.safetensors_io import load_tensors, save_tensors

CHECKPOINT_NAME = "lego-demo-shapes.safetensors"
STAGE1_VAE = "vae.safetensors"  # the normalised stage-1 VAE (diffusers keys), for --vae-from


def load_stage2_init(path: Path) -> Trained:
    """The UNet and CLIP of a finished single-file checkpoint, as float32 modules."""
    from lego_backend.models.loading import load_text_encoder, load_unet

    unet = load_unet(Path(path)).float()
    text, _ = load_text_encoder(Path(path))
    return Trained(unet, text.float(), 0)


def init_lineage(path: Path) -> dict[str, str]:
    """Metadata naming the checkpoint a fine-tune started from, and that one's own training."""
    import hashlib

    from lego_backend.models.safetensors_io import read_header

    meta = read_header(path).metadata
    out = {"lego.train.init_from": path.name,
           "lego.train.init_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    for key in ("lego.train.unet_steps", "lego.train.minutes", "lego.prediction_type"):
        if key in meta:
            out[key.replace("lego.", "lego.init.", 1)] = meta[key]
    return out


def load_stage1_vae(arch: Architecture, path: Path) -> Any:
    vae = build_vae(arch, 0)
    vae.load_state_dict(load_tensors(Path(path)))
    return vae.eval().requires_grad_(False)


class Logger:
    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8")
        self.start = time.monotonic()

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self.start:7.1f}s] {text}"
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


@torch.no_grad()
def sample_grid(trained: Trained, vae: Any, path: Path, *, seed: int, side: int = 64,
                prompts: tuple[str, ...] = GRID_PROMPTS, prediction: str = "epsilon") -> Path:
    """Two samples per prompt with our Euler sampler (20 steps, cfg 5)."""
    tokens = Tokens()
    texts = [p for p in prompts for _ in range(2)]
    cond = trained.text_encoder(input_ids=tokens(texts)).last_hidden_state
    uncond = trained.text_encoder(input_ids=tokens([""] * len(texts))).last_hidden_state

    def eps(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return trained.unet(x, t, encoder_hidden_states=c).sample

    lat = euler_sample(eps, cond, uncond, (len(texts), 4, side // 8, side // 8),
                       generator=torch.Generator().manual_seed(seed), prediction=prediction)
    images = to_uint8(vae.decode(lat / SD15_SCALING).sample)
    return save_grid(list(images), texts, path, columns=4)


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Logger(out / "train.log")
    torch.manual_seed(cfg.seed)
    arch = Architecture.tiny() if cfg.tiny else Architecture()
    exclude = held_out_triples()
    budget = cfg.minutes * 60.0
    t0, c0 = time.monotonic(), time.process_time()
    log(f"config {asdict(cfg)}; torch threads {torch.get_num_threads()}; "
        f"{len(exclude)} held-out triples")

    if cfg.vae_from is not None:  # stage 1 of an earlier run (its vae.safetensors)
        vae = load_stage1_vae(arch, cfg.vae_from)
        log(f"stage 1 skipped: VAE from {cfg.vae_from}")
    else:
        vae = train_vae(arch, seed=cfg.seed, seconds=budget * cfg.vae_share, exclude=exclude,
                        batch=cfg.vae_batch, max_steps=cfg.vae_steps, log=log, side=cfg.side)
        mean, std = fit_latent_scale(vae, seed=cfg.seed, exclude=exclude, side=cfg.side)
        normalise_latents(vae, mean, std)
        log(f"latent mean {mean.tolist()} std {std.tolist()} (folded into quant convs)")
        save_tensors({k: v.contiguous() for k, v in vae.state_dict().items()},
                     out / STAGE1_VAE, {"lego.kind": "demo-train-stage1-vae"})
    check = make_batch(np.random.default_rng(cfg.seed + 99), 16, exclude, cfg.side)
    with torch.no_grad():
        recon = vae.decode(vae.encode(check.images).latent_dist.mean).sample
    save_grid([*to_uint8(check.images), *to_uint8(recon)], [*check.captions, *(["recon"] * 16)],
              out / "vae_reconstructions.png", columns=8)
    t_vae, c_vae = time.monotonic() - t0, time.process_time() - c0

    pool = encode_pool(vae, seed=cfg.seed, count=cfg.pool, exclude=exclude, side=cfg.side,
                       log=log)
    remaining = max(budget - (time.monotonic() - t0) - 30.0, 10.0)
    grids = [0]

    def checkpoint_grid(trained: Trained) -> None:
        grids[0] += 1
        sample_grid(trained, vae, out / f"samples_{trained.steps:06d}.png", seed=cfg.seed,
                    side=cfg.side, prediction=cfg.prediction)

    init = None
    if cfg.init_from is not None:
        init = load_stage2_init(cfg.init_from)
        log(f"stage 2 starts from the UNet and CLIP of {cfg.init_from}")
    trained = train_unet(arch, pool, seed=cfg.seed, seconds=remaining, batch=cfg.unet_batch,
                         lr=cfg.unet_lr, max_steps=cfg.unet_steps, log=log,
                         prediction=cfg.prediction,
                         every=checkpoint_grid, every_seconds=max(remaining / 5, 60.0),
                         init=init)
    sample_grid(trained, vae, out / "samples_final.png", seed=cfg.seed, side=cfg.side,
                prediction=cfg.prediction)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    info = {"lego.seed": str(cfg.seed), "lego.train.unet_steps": str(trained.steps),
            "lego.train.minutes": f"{wall / 60:.1f}"}
    if cfg.init_from is not None:  # a fine-tune: say what it started from
        info.update(init_lineage(Path(cfg.init_from)))
    path = write_checkpoint(out / CHECKPOINT_NAME, trained.unet, vae, trained.text_encoder,
                            arch, info, prediction=cfg.prediction)
    summary = {"checkpoint": str(path), "bytes": path.stat().st_size,
               "unet_steps": trained.steps, "wall_seconds": round(wall, 1),
               "cpu_seconds": round(cpu, 1), "vae_wall_seconds": round(t_vae, 1),
               "vae_cpu_seconds": round(c_vae, 1), "threads": torch.get_num_threads(),
               "config": {k: str(v) for k, v in asdict(cfg).items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {path} ({summary['bytes'] / 1e6:.1f} MB); wall {wall / 60:.1f} min, "
        f"CPU {cpu / 60:.1f} min")
    return summary
