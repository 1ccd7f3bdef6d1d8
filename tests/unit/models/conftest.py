"""Shared fixtures for the model-layer unit tests: one CPU thread (the machine is shared),
no hub access, one derived-files cache per test session, and the tensor shapes of a REAL SD1.5
checkpoint / ControlNet in the original layout, computed from diffusers modules built on the
meta device (no memory) and our key mapping, plus shapes known from the published files.
Helpers are fixtures (not importable modules) so the tests work in any pytest import mode."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from lego_backend.models.configs import load_shipped_config
from lego_backend.models.ldm_keys import layout_from_diffusers_keys, unet_key_to_ldm
from lego_backend.models.ldm_keys_vae import clip_key_to_ldm, vae_key_to_ldm

# (key, shape) pairs as found in v1-5-pruned.safetensors / control_v11p_sd15_canny.safetensors
KNOWN_UNET = {
    "input_blocks.0.0.weight": (320, 4, 3, 3),
    "input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
    "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
    "input_blocks.3.0.op.weight": (320, 320, 3, 3),
    "input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
    "middle_block.1.proj_out.weight": (1280, 1280, 1, 1),
    "output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
    "output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
    "output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
    "output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight": (2560, 320),
    "time_embed.0.weight": (1280, 320),
    "out.2.weight": (4, 320, 3, 3),
}
KNOWN_VAE = {
    "encoder.down.0.block.0.conv1.weight": (128, 128, 3, 3),
    "encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
    "encoder.down.0.downsample.conv.weight": (128, 128, 3, 3),
    "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
    "encoder.conv_out.weight": (8, 512, 3, 3),
    "decoder.up.0.block.0.nin_shortcut.weight": (128, 256, 1, 1),
    "decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
    "decoder.mid.block_2.conv2.weight": (512, 512, 3, 3),
    "quant_conv.weight": (8, 8, 1, 1),
    "post_quant_conv.weight": (4, 4, 1, 1),
}
KNOWN_CLIP = {
    "text_model.embeddings.token_embedding.weight": (49408, 768),
    "text_model.embeddings.position_embedding.weight": (77, 768),
    "text_model.encoder.layers.11.mlp.fc1.weight": (3072, 768),
    "text_model.final_layer_norm.weight": (768,),
}
KNOWN_CONTROLNET = {
    "input_hint_block.0.weight": (16, 3, 3, 3),
    "input_hint_block.14.weight": (320, 256, 3, 3),
    "zero_convs.0.0.weight": (320, 320, 1, 1),
    "zero_convs.11.0.weight": (1280, 1280, 1, 1),
    "middle_block_out.0.weight": (1280, 1280, 1, 1),
}


def _meta_state(component: str) -> dict[str, Any]:
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = {k: v for k, v in load_shipped_config("sd15", component).items()
           if not k.startswith("_") and k not in ("architectures", "model_type")}
    with torch.device("meta"):
        if component == "text_encoder":
            return CLIPTextModel(CLIPTextConfig(**cfg)).state_dict()
        cls = {"unet": UNet2DConditionModel, "vae": AutoencoderKL,
               "controlnet": ControlNetModel}[component]
        return cls.from_config(cfg).state_dict()


def sd15_ldm_shapes(component: str) -> dict[str, tuple[int, ...]]:
    """LDM-layout shapes (component prefix removed) of the real SD1.5 architecture."""
    state = _meta_state(component)
    if component in ("unet", "controlnet"):
        layout = layout_from_diffusers_keys(state)
        return {unet_key_to_ldm(k, layout): tuple(v.shape) for k, v in state.items()}
    if component == "vae":
        out = {}
        for k, v in state.items():
            new = vae_key_to_ldm(k, 4)
            shape = tuple(v.shape)
            if ".attn_1." in new and new.endswith("weight") and len(shape) == 2:
                shape = (*shape, 1, 1)
            out[new] = shape
        return out
    return {clip_key_to_ldm(k): tuple(v.shape) for k, v in state.items()}


KNOWN = {"unet": KNOWN_UNET, "vae": KNOWN_VAE, "text_encoder": KNOWN_CLIP,
         "controlnet": KNOWN_CONTROLNET}


@pytest.fixture(scope="session")
def sd15_shapes() -> Any:
    """component -> LDM shapes of the real SD1.5 architecture (memoised per session)."""
    memo: dict[str, dict[str, tuple[int, ...]]] = {}

    def get(component: str) -> dict[str, tuple[int, ...]]:
        if component not in memo:
            memo[component] = sd15_ldm_shapes(component)
        return memo[component]

    return get


@pytest.fixture(scope="session")
def sd15_known() -> dict[str, dict[str, tuple[int, ...]]]:
    return KNOWN
