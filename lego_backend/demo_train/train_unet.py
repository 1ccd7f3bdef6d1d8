"""Stage 2: the UNet and the CLIP text encoder, trained jointly from scratch on latents of
rendered scenes (the VAE from stage 1 is frozen), epsilon prediction on SD1.5's schedule.

The captions are a tiny language, so a narrow CLIP learns it with the UNet in minutes. 10% of
captions are dropped for classifier-free guidance: half become "" (what an empty negative prompt
encodes to) and half become a few random vocabulary tokens, so any text the model never learned
(a habitual negative prompt such as "blurry, low quality") also reads as "unconditional".
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lego_backend.demo_train.architecture import Architecture, build_text_encoder, build_unet
from lego_backend.demo_train.batches import make_batch
from lego_backend.demo_train.captions import caption
from lego_backend.demo_train.diffusion import add_noise, alphas_cumprod, min_snr_weight, v_target
from lego_backend.demo_train.scenes import Scene, Triple
from lego_backend.demo_train.tokens import Tokens
from lego_backend.demo_train.train_vae import SD15_SCALING

Log = Callable[[str], None]
DROP_EMPTY, DROP_JUNK = 0.05, 0.05


@dataclass
class LatentPool:
    scenes: list[Scene]
    latents: torch.Tensor  # [n, 4, h, w], already multiplied by the SD1.5 factor


@torch.no_grad()
def encode_pool(vae: Any, *, seed: int, count: int, exclude: frozenset[Triple], side: int = 64,
                log: Log = print) -> LatentPool:
    """Render `count` scenes and keep their (scaled) latent means."""
    rng = np.random.default_rng(seed + 21)
    scenes: list[Scene] = []
    chunks = []
    start = time.monotonic()
    while len(scenes) < count:
        batch = make_batch(rng, min(128, count - len(scenes)), exclude, side)
        scenes += batch.scenes
        chunks.append(vae.encode(batch.images).latent_dist.mean * SD15_SCALING)
    log(f"latent pool: {count} scenes in {time.monotonic() - start:.0f}s")
    return LatentPool(scenes, torch.cat(chunks))


@dataclass
class Trained:
    unet: Any
    text_encoder: Any
    steps: int


class Ema:
    """Exponential moving average of parameters (what gets shipped: smoother samples)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.module.parameters(), module.parameters()):
            e.lerp_(p.detach(), 1 - d)


def _captions(scenes: list[Scene], rng: np.random.Generator, vocab: int) -> list[str | list[int]]:
    """Captions, with the classifier-free-guidance drops (junk = list of token ids)."""
    out: list[str | list[int]] = []
    for s in scenes:
        u = rng.random()
        if u < DROP_EMPTY:
            out.append("")
        elif u < DROP_EMPTY + DROP_JUNK:
            out.append([int(x) for x in rng.integers(0, vocab - 2, size=int(rng.integers(1, 6)))])
        else:
            out.append(caption(s, rng))
    return out


def token_rows(tokens: Tokens, items: list[str | list[int]]) -> torch.Tensor:
    rows = []
    bos, eos = tokens.tokenizer.bos_token_id, tokens.tokenizer.eos_token_id
    for item in items:
        if isinstance(item, str):
            rows.append(tokens.row(item))
        else:
            rows.append([bos, *item, eos] + [eos] * (75 - len(item)))
    return torch.tensor(rows, dtype=torch.long)


def train_unet(arch: Architecture, pool: LatentPool, *, seed: int, seconds: float,
               batch: int = 32, lr: float = 1e-3, warmup: int = 200,
               max_steps: int | None = None, ema_decay: float = 0.999, log: Log = print,
               prediction: str = "epsilon",
               every: Callable[[Trained], None] | None = None,
               every_seconds: float = 300.0, init: Trained | None = None) -> Trained:
    """Train for `max_steps` unless `seconds` of wall time pass first; returns the EMA modules.
    `init`: modules whose weights the run starts from (same architecture)."""
    unet = build_unet(arch, seed + 1).train()
    text = build_text_encoder(arch, seed + 2).train()
    if init is not None:
        unet.load_state_dict(init.unet.state_dict())
        text.load_state_dict(init.text_encoder.state_dict())
    tokens = Tokens()
    params = [*unet.parameters(), *text.parameters()]
    # No weight decay: it would shrink the embeddings of tokens the captions never use, and
    # those must stay like their initialisation (the "unknown word" the model learns to ignore).
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    ema_unet, ema_text = Ema(unet, ema_decay), Ema(text, ema_decay)
    acp = alphas_cumprod()
    rng = np.random.default_rng(seed + 31)
    gen = torch.Generator().manual_seed(seed + 32)
    vocab = int(text.config.vocab_size)
    n = len(pool.scenes)
    start = last_every = time.monotonic()
    step, smooth = 0, None
    while time.monotonic() - start < seconds and (max_steps is None or step < max_steps):
        idx = rng.integers(0, n, size=batch)
        x0 = pool.latents[torch.from_numpy(idx)]
        ids = token_rows(tokens, _captions([pool.scenes[int(i)] for i in idx], rng, vocab))
        t = torch.randint(0, len(acp), (batch,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        cond = text(input_ids=ids).last_hidden_state
        pred = unet(add_noise(x0, noise, t, acp), t, encoder_hidden_states=cond).sample
        if prediction == "v_prediction":  # plain v-MSE, as SD2 trains
            loss = (pred - v_target(x0, noise, t, acp)).pow(2).mean()
        else:
            per = (pred - noise).pow(2).mean(dim=(1, 2, 3))
            loss = (per * min_snr_weight(t, acp)).mean()
        frac = (time.monotonic() - start) / seconds  # steps, or wall time if it runs out first
        frac = min(max(frac, step / max_steps) if max_steps else frac, 1.0)
        scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema_unet.update(unet, step)
        ema_text.update(text, step)
        step += 1
        smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
        if step % 100 == 0:
            log(f"unet step {step} t={time.monotonic() - start:.0f}s loss={smooth:.4f} "
                f"lr={lr * scale:.2e}")
        if every is not None and time.monotonic() - last_every > every_seconds:
            every(Trained(ema_unet.module, ema_text.module, step))
            last_every = time.monotonic()
    log(f"unet done: {step} steps" + ("" if max_steps is None or step >= max_steps
                                       else f" (wall-time cap before {max_steps})"))
    return Trained(ema_unet.module, ema_text.module, step)
