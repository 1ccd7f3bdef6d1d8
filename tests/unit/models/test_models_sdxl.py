"""SDXL without weights: the real SDXL base UNet's shapes derive the shipped config, the
OpenCLIP key mapping round-trips through diffusers' converter, refiner files are recognised
(and refused), size conditioning follows ComfyUI's defaults, and the SDXL node schemas match
ComfyUI's."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.configs import load_shipped_config
from lego_backend.models.derive import derive_clip_config, derive_unet_config
from lego_backend.models.detect import detect_checkpoint
from lego_backend.models.ldm_keys import (
    layout_from_diffusers_keys,
    unet_key_from_ldm,
    unet_key_to_ldm,
)
from lego_backend.models.ldm_keys_sdxl import open_clip_from_transformers
from lego_backend.models.safetensors_io import save_tensors


def _ldm_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        state = UNet2DConditionModel.from_config(cfg).state_dict()
    layout = layout_from_diffusers_keys(state)
    return {unet_key_to_ldm(k, layout): tuple(v.shape) for k, v in state.items()}


def test_real_sdxl_unet_shapes_derive_the_shipped_config() -> None:
    cfg = load_shipped_config("sdxl", "unet")
    shapes = _ldm_shapes(cfg)
    assert len(shapes) == 1680  # tensors under model.diffusion_model. in sd_xl_base_1.0
    assert shapes["label_emb.0.0.weight"] == (1280, 2816)
    assert shapes["input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight"] == (1280, 2048)
    assert "input_blocks.1.1.proj_in.weight" not in shapes  # no attention at the top level
    assert derive_unet_config(shapes) == cfg


def test_label_emb_names_map_both_ways() -> None:
    assert unet_key_from_ldm("label_emb.0.2.weight", 2) == "add_embedding.linear_2.weight"
    shapes = _ldm_shapes(load_shipped_config("sdxl", "unet"))
    assert {k for k in shapes if k.startswith("label_emb")} == {
        "label_emb.0.0.weight", "label_emb.0.0.bias", "label_emb.0.2.weight",
        "label_emb.0.2.bias"}


def test_sdxl_head_width_hint_and_too_small_label_emb() -> None:
    cfg = {**load_shipped_config("sdxl", "unet"), "block_out_channels": [32, 64],
           "layers_per_block": 1, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
           "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
           "transformer_layers_per_block": [1, 3], "attention_head_dim": [2, 4],
           "cross_attention_dim": 96, "projection_class_embeddings_input_dim": 64 + 6 * 256}
    shapes = _ldm_shapes(cfg)
    got = derive_unet_config(shapes, {"lego.unet.head_dim": "16"})
    assert got["attention_head_dim"] == [2, 4] and got["transformer_layers_per_block"] == 3
    assert got["projection_class_embeddings_input_dim"] == 1600
    shapes["label_emb.0.0.weight"] = (128, 6 * 256)  # no room for a pooled vector
    with pytest.raises(ModelLoadError, match="label_emb input"):
        derive_unet_config(shapes, {"lego.unet.head_dim": "16"})


def test_open_clip_export_round_trips_through_diffusers() -> None:
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    torch.manual_seed(0)
    model = CLIPTextModelWithProjection(CLIPTextConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
        projection_dim=48, hidden_act="gelu"))
    prefix = "conditioner.embedders.1.model."
    exported = {prefix + k: v for k, v in open_clip_from_transformers(model.state_dict()).items()}
    assert exported[prefix + "text_projection"].shape == (64, 48)  # x @ P, not a Linear
    assert exported[prefix + "transformer.resblocks.1.attn.in_proj_bias"].shape == (192,)
    back = convert_open_clip_checkpoint(None, exported, prefix=prefix)
    original = {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    assert set(back) == set(original)
    for key, value in original.items():
        assert torch.equal(back[key], value), key
    shapes = {k: tuple(v.shape) for k, v in back.items()}
    cfg = derive_clip_config(shapes, {"lego.text_encoder_2.num_attention_heads": "4"},
                             family="sdxl", component="text_encoder_2")
    assert (cfg["projection_dim"], cfg["hidden_act"], cfg["num_hidden_layers"]) == \
        (48, "gelu", 2)


def test_refiner_files_are_recognised_and_refused(tmp_path: Path) -> None:
    t = torch.zeros(1)
    path = tmp_path / "refiner.safetensors"
    save_tensors({"model.diffusion_model.input_blocks.0.0.weight": t,
                  "conditioner.embedders.0.model.text_projection": t}, path, {})
    info = detect_checkpoint(path)
    assert info.family == "sdxl_refiner" and info.has_text_encoder
    with pytest.raises(ModelLoadError, match="'sdxl_refiner' is not supported"):
        info.require_supported()


def test_time_ids_follow_comfyui_defaults() -> None:
    from lego_backend.runtime.sdxl_cond import time_ids
    from node_library.values import SizeCond

    # (height, width, crop_h, crop_w, target_height, target_width)
    assert time_ids(None, 64, 96).tolist() == [64, 96, 0, 0, 64, 96]
    assert time_ids(SizeCond(width=1024, height=768), 64, 64).tolist() == \
        [768, 1024, 0, 0, 768, 1024]
    assert time_ids(SizeCond(1024, 1024, crop_w=8, crop_h=16, target_width=512,
                             target_height=256), 64, 64).tolist() == [1024, 1024, 16, 8, 256, 512]


def test_sdxl_node_schemas_match_comfyui() -> None:
    from node_library import build_registry

    reg = build_registry()
    info = reg.object_info()
    sdxl = info["CLIPTextEncodeSDXL"]
    assert sdxl["python_module"] == "comfy_extras.nodes_clip_sdxl"
    assert sdxl["category"] == "advanced/conditioning"
    assert sdxl["input_order"]["required"] == [
        "clip", "width", "height", "crop_w", "crop_h", "target_width", "target_height",
        "text_g", "text_l"]
    width = sdxl["input"]["required"]["width"]
    assert width[0] == "INT" and (width[1]["default"], width[1]["min"], width[1]["max"]) == \
        (1024, 0, 16384)
    assert sdxl["input"]["required"]["crop_w"][1]["default"] == 0
    assert sdxl["input"]["required"]["text_g"][1]["multiline"] is True
    assert sdxl["output"] == ["CONDITIONING"]
    refiner = info["CLIPTextEncodeSDXLRefiner"]
    assert refiner["input_order"]["required"] == ["ascore", "width", "height", "text", "clip"]
    ascore = refiner["input"]["required"]["ascore"][1]
    assert (ascore["default"], ascore["min"], ascore["max"], ascore["step"]) == \
        (6.0, 0.0, 1000.0, 0.01)
    # UI workflows list widget values in this order (the CLIP socket is not a widget)
    assert [i.name for i in reg.get("CLIPTextEncodeSDXL").widget_inputs] == [
        "width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g",
        "text_l"]
