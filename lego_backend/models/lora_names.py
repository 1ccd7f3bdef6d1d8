"""Turning kohya's underscore LoRA names back into dotted module paths.

kohya writes a module path with every '.' replaced by '_' (`lora_unet_down_blocks_0_attentions_0
_transformer_blocks_0_attn1_to_q`), which is ambiguous because module names contain '_' too.
We rebuild it by longest match against the multi-word member names that exist in SD's UNet
(diffusers and LDM spelling) and CLIP text encoder; every other '_' is a separator.
LDM-spelled UNet paths (`input_blocks_1_1_...`) are then mapped to diffusers paths.
"""
from __future__ import annotations

from lego_backend.models.ldm_keys import unet_key_from_ldm

_MULTI_WORD = frozenset({
    # diffusers UNet / ControlNet
    "down_blocks", "up_blocks", "mid_block", "transformer_blocks", "to_q", "to_k", "to_v",
    "to_out", "proj_in", "proj_out", "conv_shortcut", "time_emb_proj", "conv_in", "conv_out",
    "conv_norm_out", "time_embedding", "linear_1", "linear_2", "add_embedding",
    "controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding",
    # LDM UNet
    "input_blocks", "output_blocks", "middle_block", "in_layers", "out_layers", "emb_layers",
    "skip_connection", "time_embed", "label_emb",
    # CLIP text model
    "text_model", "self_attn", "q_proj", "k_proj", "v_proj", "out_proj", "final_layer_norm",
    "layer_norm1", "layer_norm2", "token_embedding", "position_embedding",
})
_LONGEST = max(name.count("_") + 1 for name in _MULTI_WORD)
_LDM_HEADS = ("input_blocks.", "output_blocks.", "middle_block.", "time_embed.", "out.")


def underscore_to_dotted(name: str) -> str:
    """`down_blocks_0_attentions_0_proj_in` -> `down_blocks.0.attentions.0.proj_in`."""
    atoms = name.split("_")
    parts: list[str] = []
    i = 0
    while i < len(atoms):
        for size in range(min(_LONGEST, len(atoms) - i), 0, -1):
            candidate = "_".join(atoms[i:i + size])
            if size == 1 or candidate in _MULTI_WORD:
                parts.append(candidate)
                i += size
                break
    return ".".join(parts)


def unet_module_path(dotted: str, layers_per_block: int) -> str:
    """A dotted UNet module path in diffusers spelling (LDM spelling is converted)."""
    if dotted.startswith(_LDM_HEADS):
        return unet_key_from_ldm(dotted, layers_per_block)
    return dotted


def text_module_path(dotted: str) -> str:
    """CLIP module path as in transformers' (flattened, since 5.6) CLIPTextModel."""
    return dotted.removeprefix("text_model.")
