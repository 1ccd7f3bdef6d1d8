from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lego_backend.models.demo import (
    DEMO_CHECKPOINT,
    DEMO_CONTROLNET,
    DEMO_FILES,
    DEMO_LORA,
    DEMO_LORA_PEFT,
    DEMO_VAE,
    build_demo_models,
    demo_models_present,
)
from lego_backend.models.loading import (
    detect_checkpoint,
    load_checkpoint_vae,
    load_controlnet,
    load_text_encoder,
    load_unet,
    load_vae,
)
from lego_backend.models.safetensors_io import read_header
from lego_backend.models.store import ModelStore


def test_build_is_deterministic(tmp_path: Path, models_dir: Path) -> None:
    again = build_demo_models(tmp_path / "again", seed=0)
    for key, rel in DEMO_FILES.items():
        assert again[key].read_bytes() == (models_dir / rel).read_bytes(), key
    other = build_demo_models(tmp_path / "other", seed=1)
    assert other["checkpoint"].read_bytes() != again["checkpoint"].read_bytes()


def test_demo_files_are_where_comfyui_looks(models_dir: Path) -> None:
    assert demo_models_present(models_dir)
    assert not demo_models_present(models_dir / "nowhere")
    store = ModelStore(models_dir)
    assert DEMO_CHECKPOINT in store.list("checkpoints")
    assert store.list("loras") == sorted([DEMO_LORA, DEMO_LORA_PEFT])
    assert store.list("controlnet") == [DEMO_CONTROLNET]
    assert store.list("vae") == [DEMO_VAE]


def test_checkpoint_is_in_original_layout(demo_paths: dict[str, Path]) -> None:
    header = read_header(demo_paths["checkpoint"])
    prefixes = {k.split(".")[0] for k in header.shapes}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert "model.diffusion_model.input_blocks.1.1.proj_in.weight" in header.shapes
    assert "first_stage_model.decoder.up.3.upsample.conv.weight" in header.shapes
    assert header.shapes["cond_stage_model.transformer.text_model.embeddings."
                         "token_embedding.weight"] == (49408, 32)
    assert header.metadata["format"] == "pt" and header.metadata["lego.demo"] == "1"
    info = detect_checkpoint(demo_paths["checkpoint"])
    assert (info.family, info.prediction_type, info.layout) == ("sd15", "epsilon", "single_file")
    assert info.has_unet and info.has_vae and info.has_text_encoder
    ctrl = read_header(demo_paths["controlnet"]).shapes
    assert all(k.startswith("control_model.") for k in ctrl)
    assert ctrl["control_model.input_hint_block.0.weight"][1] == 3


def test_checkpoint_round_trip(demo_paths: dict[str, Path], demo_modules, cache_dir: Path,
                               same_weights) -> None:
    unet = load_unet(demo_paths["checkpoint"], cache_dir=cache_dir)
    assert not unet.training and list(unet.config.block_out_channels) == [32, 64]
    same_weights(demo_modules.unet, unet)
    vae = load_checkpoint_vae(demo_paths["checkpoint"], cache_dir=cache_dir)
    assert vae.config.scaling_factor == 0.18215 and len(vae.config.block_out_channels) == 4
    same_weights(demo_modules.vae, vae)
    te, tok = load_text_encoder(demo_paths["checkpoint"], cache_dir=cache_dir)
    same_weights(demo_modules.text_encoder, te)
    ids = tok("a red circle", padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert ids[0, :5].tolist() == [49406, 320, 736, 7117, 49407]
    with torch.inference_mode():
        expected = demo_modules.text_encoder(ids).last_hidden_state
        assert torch.equal(te(ids).last_hidden_state, expected)


def test_standalone_vae_and_controlnet_round_trip(demo_paths: dict[str, Path], demo_modules,
                                                  cache_dir: Path, same_weights) -> None:
    vae = load_vae(demo_paths["vae"], cache_dir=cache_dir)
    same_weights(demo_modules.standalone_vae, vae)
    assert not torch.equal(vae.decoder.conv_out.weight, demo_modules.vae.decoder.conv_out.weight)
    controlnet = load_controlnet(demo_paths["controlnet"], cache_dir=cache_dir)
    same_weights(demo_modules.controlnet, controlnet)
    assert controlnet.controlnet_mid_block.weight.abs().sum() > 0  # zero-convs are not zero


def test_vae_latent_space_is_sd_like(demo_paths: dict[str, Path], cache_dir: Path) -> None:
    vae = load_checkpoint_vae(demo_paths["checkpoint"], cache_dir=cache_dir)
    with torch.inference_mode():
        latent = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mode()
        assert latent.shape == (1, 4, 8, 8)
        assert vae.decode(latent).sample.shape == (1, 3, 64, 64)


def test_controlnet_changes_unet_output(demo_paths: dict[str, Path], cache_dir: Path) -> None:
    unet = load_unet(demo_paths["checkpoint"], cache_dir=cache_dir)
    controlnet = load_controlnet(demo_paths["controlnet"], cache_dir=cache_dir)
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    hint = torch.rand(1, 3, 64, 64, generator=g)
    with torch.inference_mode():
        down, mid = controlnet(x, 500, ctx, controlnet_cond=hint, return_dict=False)
        plain = unet(x, 500, ctx).sample
        controlled = unet(x, 500, ctx, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid).sample
    change = (controlled - plain).abs().mean() / plain.abs().mean()
    assert change > 0.05


@pytest.mark.parametrize("loader", [load_unet, load_checkpoint_vae, load_text_encoder])
def test_wrong_file_kind_is_model_load_error(demo_paths: dict[str, Path], loader) -> None:
    from lego_backend.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="holds no"):
        loader(demo_paths["lora"])
