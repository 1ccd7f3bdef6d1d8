from __future__ import annotations

import pytest

from lego_backend.errors import ModelLoadError
from lego_backend.models.configs import load_shipped_config
from lego_backend.models.derive import (
    derive_clip_config,
    derive_controlnet_config,
    derive_unet_config,
    derive_vae_config,
)

CASES = [("unet", derive_unet_config, 686), ("vae", derive_vae_config, 248),
         ("text_encoder", derive_clip_config, 196), ("controlnet", derive_controlnet_config, 340)]


@pytest.mark.parametrize(("component", "derive", "count"), CASES)
def test_real_sd15_shapes_derive_the_shipped_config(component, derive, count, sd15_shapes,
                                                    sd15_known) -> None:
    shapes = sd15_shapes(component)
    known = sd15_known[component]
    assert len(shapes) == count  # tensors in the published files (CLIP: + position_ids)
    for key, shape in known.items():
        assert shapes[key] == shape, key
    assert derive(shapes) == load_shipped_config("sd15", component)


@pytest.mark.parametrize("overrides", [
    {"block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 32,
     "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
     "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]},
    {"block_out_channels": [64, 64, 128], "layers_per_block": 3, "cross_attention_dim": 48,
     "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
     "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
     "transformer_layers_per_block": 2, "use_linear_projection": True, "in_channels": 9},
])
def test_other_unet_shapes_derive_their_config(overrides: dict) -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from lego_backend.models.ldm_keys import layout_from_diffusers_keys, unet_key_to_ldm

    cfg = {**load_shipped_config("sd15", "unet"), **overrides}
    with torch.device("meta"):
        state = UNet2DConditionModel.from_config(cfg).state_dict()
    layout = layout_from_diffusers_keys(state)
    shapes = {unet_key_to_ldm(k, layout): tuple(v.shape) for k, v in state.items()}
    assert derive_unet_config(shapes) == cfg


def test_clip_heads_need_a_hint_when_not_64_wide() -> None:
    shapes = {"text_model.embeddings.token_embedding.weight": (49408, 32),
              "text_model.embeddings.position_embedding.weight": (77, 32),
              "text_model.encoder.layers.0.mlp.fc1.weight": (64, 32),
              "text_model.encoder.layers.0.self_attn.q_proj.weight": (32, 32)}
    with pytest.raises(ModelLoadError, match="lego.text_encoder.num_attention_heads"):
        derive_clip_config(shapes)
    cfg = derive_clip_config(shapes, {"lego.text_encoder.num_attention_heads": "4"})
    assert (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"],
            cfg["intermediate_size"]) == (32, 4, 1, 64)


def test_missing_tensor_is_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="missing"):
        derive_vae_config({"encoder.down.0.block.0.conv2.weight": (32, 32, 3, 3)})
