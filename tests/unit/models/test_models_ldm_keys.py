from __future__ import annotations

import pytest
import torch

from lego_backend.models.configs import load_shipped_config
from lego_backend.models.ldm_keys import UNetLayout, unet_key_from_ldm, unet_key_to_ldm
from lego_backend.models.ldm_keys_vae import vae_key_to_ldm

SD15 = UNetLayout(layers_per_block=2, up_attention=(False, True, True, True))


@pytest.mark.parametrize(("diffusers", "ldm"), [
    ("conv_in.weight", "input_blocks.0.0.weight"),
    ("time_embedding.linear_2.bias", "time_embed.2.bias"),
    ("down_blocks.0.resnets.0.conv1.weight", "input_blocks.1.0.in_layers.2.weight"),
    ("down_blocks.0.resnets.1.time_emb_proj.weight", "input_blocks.2.0.emb_layers.1.weight"),
    ("down_blocks.0.attentions.1.proj_in.weight", "input_blocks.2.1.proj_in.weight"),
    ("down_blocks.0.downsamplers.0.conv.weight", "input_blocks.3.0.op.weight"),
    ("down_blocks.1.resnets.0.conv_shortcut.weight", "input_blocks.4.0.skip_connection.weight"),
    ("down_blocks.3.resnets.1.norm2.bias", "input_blocks.11.0.out_layers.0.bias"),
    ("mid_block.resnets.1.conv2.weight", "middle_block.2.out_layers.3.weight"),
    ("mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight",
     "middle_block.1.transformer_blocks.0.attn1.to_q.weight"),
    ("up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight"),
    ("up_blocks.1.upsamplers.0.conv.weight", "output_blocks.5.2.conv.weight"),
    ("up_blocks.3.attentions.2.proj_out.bias", "output_blocks.11.1.proj_out.bias"),
    ("conv_norm_out.weight", "out.0.weight"),
    ("controlnet_down_blocks.4.weight", "zero_convs.4.0.weight"),
    ("controlnet_mid_block.bias", "middle_block_out.0.bias"),
    ("controlnet_cond_embedding.conv_in.weight", "input_hint_block.0.weight"),
    ("controlnet_cond_embedding.blocks.5.weight", "input_hint_block.12.weight"),
    ("controlnet_cond_embedding.conv_out.weight", "input_hint_block.14.weight"),
    ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",  # a module path
     "input_blocks.1.1.transformer_blocks.0.attn1.to_q"),
])
def test_unet_names_both_ways(diffusers: str, ldm: str) -> None:
    assert unet_key_to_ldm(diffusers, SD15) == ldm
    assert unet_key_from_ldm(ldm, 2) == diffusers


@pytest.mark.parametrize(("diffusers", "ldm"), [
    ("encoder.conv_norm_out.weight", "encoder.norm_out.weight"),
    ("encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
     "encoder.down.1.block.0.nin_shortcut.weight"),
    ("encoder.down_blocks.2.downsamplers.0.conv.bias", "encoder.down.2.downsample.conv.bias"),
    ("decoder.up_blocks.0.resnets.2.conv1.weight", "decoder.up.3.block.2.conv1.weight"),
    ("decoder.up_blocks.2.upsamplers.0.conv.weight", "decoder.up.1.upsample.conv.weight"),
    ("decoder.mid_block.resnets.0.norm1.weight", "decoder.mid.block_1.norm1.weight"),
    ("encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid.attn_1.proj_out.weight"),
    ("encoder.mid_block.attentions.0.group_norm.bias", "encoder.mid.attn_1.norm.bias"),
    ("post_quant_conv.weight", "post_quant_conv.weight"),
])
def test_vae_names(diffusers: str, ldm: str) -> None:
    assert vae_key_to_ldm(diffusers, 4) == ldm


def test_unknown_key_raises() -> None:
    with pytest.raises(KeyError):
        unet_key_to_ldm("nonsense.weight", SD15)
    with pytest.raises(KeyError):
        unet_key_from_ldm("label_emb.7.weight", 2)


@pytest.mark.parametrize("component", ["unet", "controlnet", "vae"])
def test_our_export_is_inverted_by_diffusers_converter(component: str) -> None:
    """diffusers' own LDM->diffusers converter must undo our diffusers->LDM mapping exactly,
    on a small model with real tensors."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_controlnet_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    from lego_backend.models.ldm_export import controlnet_to_ldm, unet_to_ldm, vae_to_ldm

    small = {"block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
             "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"]}
    torch.manual_seed(0)
    if component == "unet":
        cfg = {**load_shipped_config("sd15", "unet"), **small,
               "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
        model = UNet2DConditionModel.from_config(cfg)
        back = convert_ldm_unet_checkpoint(unet_to_ldm(model), cfg)
    elif component == "controlnet":
        cfg = {**load_shipped_config("sd15", "controlnet"), **small,
               "conditioning_embedding_out_channels": [8, 8, 16, 16]}
        model = ControlNetModel.from_config(cfg)
        back = convert_controlnet_checkpoint(controlnet_to_ldm(model), cfg)
    else:
        cfg = {**load_shipped_config("sd15", "vae"), "block_out_channels": [32] * 4,
               "layers_per_block": 1}
        model = AutoencoderKL.from_config(cfg)
        ldm = vae_to_ldm(model)
        assert ldm["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (32, 32, 1, 1)
        back = convert_ldm_vae_checkpoint(ldm, cfg)
    state = model.state_dict()
    assert set(back) == set(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key
