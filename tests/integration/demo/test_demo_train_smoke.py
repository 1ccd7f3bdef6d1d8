"""The training pipeline end to end on a tiny architecture and a few steps, so `lego demo train`
cannot rot: it must write logs, grids and a checkpoint that our loader reads like a user's."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from lego_backend.cli import main
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


def test_lego_demo_train_rejects_a_bad_budget(capsys: object) -> None:
    assert main(["demo", "train", "--minutes", "0"]) == 2
