"""The training pipeline end to end on a tiny architecture and a few steps, so `lego demo train`
cannot rot: it must write logs, grids and a checkpoint that our loader reads like a user's."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from lego_backend.cli import main
from lego_backend.demo_train.architecture import Architecture
from lego_backend.demo_train.train import load_stage2_init
from lego_backend.demo_train.train_unet import LatentPool, train_unet
from lego_backend.models.loading import (
    detect_checkpoint,
    load_checkpoint_vae,
    load_text_encoder,
    load_unet,
)
from lego_backend.models.safetensors_io import read_header


def test_lego_demo_train_tiny_writes_a_loadable_checkpoint(tmp_path: Path,
                                                           cache_dir: Path) -> None:
    out = tmp_path / "run"
    code = main(["demo", "train", "--tiny", "--max-steps", "3", "--pool", "32",
                 "--minutes", "5", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["unet_steps"] == 3 and summary["cpu_seconds"] > 0
    for name in ("train.log", "vae_reconstructions.png", "samples_final.png"):
        assert (out / name).stat().st_size > 0, name
    ckpt = Path(summary["checkpoint"])
    header = read_header(ckpt)
    assert {k.split(".")[0] for k in header.shapes} == {"model", "first_stage_model",
                                                         "cond_stage_model"}
    assert detect_checkpoint(ckpt).family == "sd15"
    unet = load_unet(ckpt, cache_dir=cache_dir)
    text, tokenizer = load_text_encoder(ckpt, cache_dir=cache_dir)
    vae = load_checkpoint_vae(ckpt, cache_dir=cache_dir)
    ids = tokenizer(["a red circle"], padding="max_length", max_length=77,
                    return_tensors="pt").input_ids
    with torch.no_grad():
        cond = text(input_ids=ids).last_hidden_state
        eps = unet(torch.randn(1, 4, 8, 8), torch.tensor([500]), encoder_hidden_states=cond)
        img = vae.decode(eps.sample / 0.18215).sample
    assert img.shape == (1, 3, 64, 64) and torch.isfinite(img).all()

    # --init-from: stage 2 starts from this checkpoint's UNet and CLIP, not from a fresh draw
    init = load_stage2_init(ckpt)
    empty = LatentPool([], torch.zeros(0, 4, 8, 8))
    resumed = train_unet(Architecture.tiny(), empty, seed=5, seconds=60, max_steps=0, init=init)
    fresh = train_unet(Architecture.tiny(), empty, seed=5, seconds=60, max_steps=0)
    for module in ("unet", "text_encoder"):
        want = getattr(init, module).state_dict()
        got = getattr(resumed, module).state_dict()
        assert all(torch.equal(got[k], want[k]) for k in want), module
        other = getattr(fresh, module).state_dict()
        assert not all(torch.equal(other[k], want[k]) for k in want), module


def test_lego_demo_train_rejects_a_bad_budget(capsys: object) -> None:
    assert main(["demo", "train", "--minutes", "0"]) == 2
