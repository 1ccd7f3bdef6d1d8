"""The same loaders on the other layouts users have: diffusers folders, standalone component
files in diffusers or ComfyUI key layout, fp16 checkpoints with the usual extra tensors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.configs import load_shipped_config
from lego_backend.models.ldm_export import clip_to_ldm
from lego_backend.models.loading import (
    detect_checkpoint,
    load_checkpoint_vae,
    load_controlnet,
    load_text_encoder,
    load_unet,
    load_vae,
)
from lego_backend.models.safetensors_io import load_tensors, save_tensors
from lego_backend.models.store import ModelStore
from lego_backend.models.tokenizer import load_clip_tokenizer


@pytest.fixture(scope="module")
def diffusers_root(tmp_path_factory: pytest.TempPathFactory, demo_modules,
                   cache_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("droot")
    folder = root / "diffusers" / "lego-demo-sd15"
    demo_modules.unet.save_pretrained(folder / "unet")
    demo_modules.vae.save_pretrained(folder / "vae")
    demo_modules.text_encoder.save_pretrained(folder / "text_encoder")
    load_clip_tokenizer(cache_dir).save_pretrained(folder / "tokenizer")
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(load_shipped_config("sd15", "scheduler")))
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "PNDMScheduler"]}))
    demo_modules.controlnet.save_pretrained(root / "controlnet" / "lego-cn-folder")
    return root


def test_diffusers_folder_loads_through_the_same_api(diffusers_root: Path, demo_modules,
                                                     cache_dir: Path, same_weights) -> None:
    store = ModelStore(diffusers_root)
    assert store.list("checkpoints") == ["lego-demo-sd15"]
    path = store.resolve("checkpoints", "lego-demo-sd15")
    info = detect_checkpoint(path)
    assert (info.layout, info.family, info.prediction_type) == ("diffusers", "sd15", "epsilon")
    same_weights(demo_modules.unet, load_unet(path, cache_dir=cache_dir))
    same_weights(demo_modules.vae, load_checkpoint_vae(path, cache_dir=cache_dir))
    te, tok = load_text_encoder(path, cache_dir=cache_dir)
    same_weights(demo_modules.text_encoder, te)
    assert tok("a red circle").input_ids == [49406, 320, 736, 7117, 49407]
    assert not te.training
    cn = load_controlnet(diffusers_root / "controlnet" / "lego-cn-folder", cache_dir=cache_dir)
    same_weights(demo_modules.controlnet, cn)
    assert len(store.identity(path)) == 64


def test_pickle_only_diffusers_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "config.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_unet(folder)


def test_standalone_files_in_diffusers_layout(tmp_path: Path, demo_modules,
                                              cache_dir: Path, same_weights) -> None:
    unet_file = tmp_path / "diffusion_models" / "unet.safetensors"
    save_tensors(demo_modules.unet.state_dict(), unet_file)
    same_weights(demo_modules.unet, load_unet(unet_file, cache_dir=cache_dir))
    vae_file = tmp_path / "vae" / "diffusers-vae.safetensors"
    save_tensors(demo_modules.standalone_vae.state_dict(), vae_file)
    same_weights(demo_modules.standalone_vae, load_vae(vae_file, cache_dir=cache_dir))
    cn_file = tmp_path / "controlnet" / "diffusers-cn.safetensors"
    save_tensors(demo_modules.controlnet.state_dict(), cn_file)
    same_weights(demo_modules.controlnet, load_controlnet(cn_file, cache_dir=cache_dir))


def test_standalone_ldm_unet_and_text_encoder_files(tmp_path: Path, demo_paths: dict[str, Path],
                                                    demo_modules, cache_dir: Path,
                                                    same_weights) -> None:
    full = load_tensors(demo_paths["checkpoint"])
    bare_unet = {k.removeprefix("model.diffusion_model."): v for k, v in full.items()
                 if k.startswith("model.diffusion_model.")}
    save_tensors(bare_unet, tmp_path / "bare-unet.safetensors")
    same_weights(demo_modules.unet,
                        load_unet(tmp_path / "bare-unet.safetensors", cache_dir=cache_dir))
    clip = clip_to_ldm(demo_modules.text_encoder, prefix="")  # ComfyUI text_encoders/ layout
    hint = {"lego.text_encoder.num_attention_heads": "4"}
    save_tensors(clip, tmp_path / "clip_l.safetensors", hint)
    te, _ = load_text_encoder(tmp_path / "clip_l.safetensors", cache_dir=cache_dir)
    same_weights(demo_modules.text_encoder, te)
    save_tensors(clip, tmp_path / "nohint.safetensors")
    with pytest.raises(ModelLoadError, match="num_attention_heads"):
        load_text_encoder(tmp_path / "nohint.safetensors", cache_dir=cache_dir)


def test_fp16_checkpoint_with_usual_extras_loads_as_fp32(tmp_path: Path,
                                                         demo_paths: dict[str, Path],
                                                         cache_dir: Path) -> None:
    from lego_backend.models.safetensors_io import read_header

    full = load_tensors(demo_paths["checkpoint"])
    half = {k: v.half() for k, v in full.items()}
    half["cond_stage_model.transformer.text_model.embeddings.position_ids"] = \
        torch.arange(77).unsqueeze(0)
    half["alphas_cumprod"] = torch.linspace(1, 0, 1000)  # LDM schedule buffers, ignored
    half["model_ema.decay"] = torch.tensor(0.9999)
    path = tmp_path / "half.safetensors"
    save_tensors(half, path, read_header(demo_paths["checkpoint"]).metadata)
    unet = load_unet(path, cache_dir=cache_dir)
    assert unet.conv_in.weight.dtype == torch.float32
    assert torch.equal(unet.conv_in.weight,
                       full["model.diffusion_model.input_blocks.0.0.weight"].half().float())
    te, _ = load_text_encoder(path, cache_dir=cache_dir)
    assert te.embeddings.token_embedding.weight.dtype == torch.float32
    assert load_checkpoint_vae(path, cache_dir=cache_dir).decoder.conv_out.weight.dtype == \
        torch.float32


def test_truncated_checkpoint_is_refused(tmp_path: Path, demo_paths: dict[str, Path],
                                         cache_dir: Path) -> None:
    full = load_tensors(demo_paths["checkpoint"])
    del full["model.diffusion_model.output_blocks.1.0.in_layers.2.weight"]
    save_tensors(full, tmp_path / "broken.safetensors",
                 {"lego.text_encoder.num_attention_heads": "4"})
    with pytest.raises(ModelLoadError, match="missing 1"):
        load_unet(tmp_path / "broken.safetensors", cache_dir=cache_dir)
