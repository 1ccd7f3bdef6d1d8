"""Derive diffusers/transformers configs from the tensor SHAPES of an LDM-layout state dict.

Each function starts from the shipped SD1.5 config and overwrites every field that the shapes
determine, so real SD1.5 shapes give back exactly the shipped config, and a smaller model of the
same architecture (our demo models, pruned or fine-tuned variants) gets a config that fits it.

Shapes cannot tell how a width is split into attention heads, so heads follow the family
convention (SD1 UNet: 8 heads; SDXL UNet: 64-wide heads; CLIP: 64-wide heads) unless the file's
`__metadata__` carries a hint (keys in HINT_KEYS), which is how the demo models declare their
tiny head counts. An SDXL UNet is recognised by its `label_emb` (pooled-text + size embedding)
and starts from the shipped SDXL base config instead.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lego_backend.errors import ModelLoadError
from lego_backend.models.configs import load_shipped_config

Shapes = Mapping[str, tuple[int, ...]]
HINT_KEYS = {
    "unet_heads": "lego.unet.attention_head_dim",
    "unet_head_width": "lego.unet.head_dim",  # SDXL: channels per attention head
    "unet_time_ids_dim": "lego.unet.addition_time_embed_dim",  # SDXL: width per size number
    "unet_groups": "lego.unet.norm_num_groups",
    "vae_groups": "lego.vae.norm_num_groups",
    "vae_scaling": "lego.vae.scaling_factor",
    "clip_heads": "lego.text_encoder.num_attention_heads",
    "clip_g_heads": "lego.text_encoder_2.num_attention_heads",  # SDXL's OpenCLIP bigG
}
SIZE_NUMBERS = 6  # SDXL time_ids: original h, w, crop top, left, target h, w


def _indices(shapes: Shapes, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in shapes if (m := rx.match(k))})


def _need(shapes: Shapes, key: str, what: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ModelLoadError(f"cannot derive {what} config: tensor {key!r} is missing")
    return shapes[key]


def _int_hint(hints: Mapping[str, str], name: str, default: int) -> int:
    raw = hints.get(HINT_KEYS[name])
    return int(raw) if raw is not None else default


def _unet_down_levels(shapes: Shapes) -> tuple[list[int], list[bool], list[int], int]:
    """Walk input_blocks: per level (channels, has attention, transformer depth) and res/level."""
    levels: list[list[tuple[int, bool, int]]] = [[]]
    for i in _indices(shapes, r"input_blocks\.(\d+)\.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in shapes:
            levels.append([])
            continue
        out_c = _need(shapes, f"input_blocks.{i}.0.out_layers.3.weight", "UNet")[0]
        depth = len(_indices(shapes, rf"input_blocks\.{i}\.1\.transformer_blocks\.(\d+)\."))
        levels[-1].append((out_c, depth > 0, depth))
    per_level = {len(lv) for lv in levels}
    if len(per_level) != 1 or 0 in per_level:
        raise ModelLoadError(f"UNet levels hold different ResBlock counts {sorted(per_level)}")
    channels = [lv[0][0] for lv in levels]
    attention = [lv[0][1] for lv in levels]
    depths = [lv[0][2] for lv in levels]
    return channels, attention, depths, per_level.pop()


def _transformer_depth(depths: list[int]) -> int | list[int]:
    """diffusers' transformer_layers_per_block: one int when all attention levels agree."""
    used = {d for d in depths if d}
    if len(used) <= 1:
        return used.pop() if used else 1
    return [d or 1 for d in depths]


def _check_divisible(channels: list[int], by: int, what: str) -> None:
    bad = [c for c in channels if c % by]
    if bad:
        raise ModelLoadError(f"cannot derive config: channels {bad} not divisible by {what} {by}")


def derive_unet_config(shapes: Shapes, hints: Mapping[str, str] | None = None,
                       base: str = "unet") -> dict[str, Any]:
    """UNet2DConditionModel config from LDM UNet shapes (keys without `model.diffusion_model.`).
    With base="controlnet" only the down/mid fields are derived (a ControlNet has no up path)."""
    hints = hints or {}
    sdxl = "label_emb.0.0.weight" in shapes
    if sdxl and base != "unet":
        raise ModelLoadError("SDXL ControlNets are not supported yet")
    cfg = load_shipped_config("sdxl" if sdxl else "sd15", base)
    stem = _need(shapes, "input_blocks.0.0.weight", "UNet")
    channels, attention, depths, per_level = _unet_down_levels(shapes)
    heads: int | list[int]
    if sdxl:  # per-level head counts at a fixed head width (diffusers names it head_dim)
        width = _int_hint(hints, "unet_head_width", 64)
        _check_divisible([c for c, a in zip(channels, attention) if a], width, "head width")
        heads = [max(1, c // width) for c in channels]
    else:
        heads = _int_hint(hints, "unet_heads", cfg["attention_head_dim"])
        if any(attention):
            _check_divisible([c for c, a in zip(channels, attention) if a], heads,
                             "attention heads")
    groups = _int_hint(hints, "unet_groups", cfg["norm_num_groups"])
    _check_divisible(channels, groups, "norm_num_groups")
    k_proj = [k for k in shapes if k.endswith("attn2.to_k.weight")]
    proj_in = [k for k in shapes if k.endswith(".proj_in.weight")]
    cfg.update({
        "in_channels": stem[1],
        "block_out_channels": channels,
        "layers_per_block": per_level,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "cross_attention_dim": shapes[k_proj[0]][1] if k_proj else cfg["cross_attention_dim"],
        "attention_head_dim": heads,
        "norm_num_groups": groups,
        "use_linear_projection": bool(proj_in) and len(shapes[proj_in[0]]) == 2,
        "transformer_layers_per_block": _transformer_depth(depths),
        "mid_block_type": ("UNetMidBlock2DCrossAttn" if "middle_block.1.proj_in.weight" in shapes
                           else "UNetMidBlock2D" if "middle_block.0.in_layers.0.weight" in shapes
                           else None),
    })
    if base == "unet":
        out = _need(shapes, "out.2.weight", "UNet")
        ups = []
        for b in range(len(channels)):
            first = b * (per_level + 1)
            has = f"output_blocks.{first}.1.proj_in.weight" in shapes
            ups.append("CrossAttnUpBlock2D" if has else "UpBlock2D")
        cfg.update({"out_channels": out[0], "up_block_types": ups})
    if _need(shapes, "time_embed.0.weight", "UNet")[0] != 4 * channels[0]:
        cfg["time_embedding_dim"] = shapes["time_embed.0.weight"][0]
    if sdxl:
        cfg.update(_text_time_fields(shapes, hints))
    return cfg


def _text_time_fields(shapes: Shapes, hints: Mapping[str, str]) -> dict[str, Any]:
    """SDXL's added embedding: label_emb.0.0 reads [pooled text, 6 sinusoidal size numbers]."""
    in_dim = shapes["label_emb.0.0.weight"][1]
    per_number = _int_hint(hints, "unet_time_ids_dim", 256)
    if in_dim <= SIZE_NUMBERS * per_number:
        raise ModelLoadError(f"cannot derive SDXL UNet config: label_emb input {in_dim} is too "
                             f"small for {SIZE_NUMBERS} x {per_number} size embeddings")
    return {"addition_embed_type": "text_time", "addition_time_embed_dim": per_number,
            "projection_class_embeddings_input_dim": in_dim}


def derive_controlnet_config(shapes: Shapes, hints: Mapping[str, str] | None = None
                             ) -> dict[str, Any]:
    """ControlNetModel config from LDM ControlNet shapes (keys without `control_model.`)."""
    cfg = derive_unet_config(shapes, hints, base="controlnet")
    hint = _indices(shapes, r"input_hint_block\.(\d+)\.weight")
    if len(hint) < 2:
        raise ModelLoadError("cannot derive ControlNet config: no input_hint_block convs")
    first = shapes[f"input_hint_block.{hint[0]}.weight"]
    # conv_in, then pairs (same width, stride-2 to the next width); the last conv is conv_out.
    inner = hint[1:-1]
    widths = [first[0]] + [shapes[f"input_hint_block.{i}.weight"][0] for i in inner[1::2]]
    cfg.update({"conditioning_channels": first[1], "conditioning_embedding_out_channels": widths})
    return cfg


def derive_vae_config(shapes: Shapes, hints: Mapping[str, str] | None = None,
                      family: str = "sd15") -> dict[str, Any]:
    """AutoencoderKL config from LDM VAE shapes (keys without `first_stage_model.`); `family`
    picks the base config (its scaling factor: SD1 0.18215, SDXL 0.13025)."""
    hints = hints or {}
    cfg = load_shipped_config("sdxl" if family == "sdxl" else "sd15", "vae")
    levels = _indices(shapes, r"encoder\.down\.(\d+)\.")
    if not levels:
        raise ModelLoadError("cannot derive VAE config: no encoder.down.* tensors")
    channels = [_need(shapes, f"encoder.down.{i}.block.0.conv2.weight", "VAE")[0]
                for i in levels]
    groups = _int_hint(hints, "vae_groups", cfg["norm_num_groups"])
    _check_divisible(channels, groups, "norm_num_groups")
    scaling = hints.get(HINT_KEYS["vae_scaling"])
    cfg.update({
        "in_channels": _need(shapes, "encoder.conv_in.weight", "VAE")[1],
        "out_channels": _need(shapes, "decoder.conv_out.weight", "VAE")[0],
        "block_out_channels": channels,
        "down_block_types": ["DownEncoderBlock2D"] * len(channels),
        "up_block_types": ["UpDecoderBlock2D"] * len(channels),
        "layers_per_block": len(_indices(shapes, r"encoder\.down\.0\.block\.(\d+)\.")),
        "latent_channels": _need(shapes, "decoder.conv_in.weight", "VAE")[1],
        "norm_num_groups": groups,
        "use_quant_conv": "quant_conv.weight" in shapes,
        "use_post_quant_conv": "post_quant_conv.weight" in shapes,
        "mid_block_add_attention": "encoder.mid.attn_1.q.weight" in shapes,
    })
    if scaling is not None:
        cfg["scaling_factor"] = float(scaling)
    return cfg


def derive_clip_config(shapes: Shapes, hints: Mapping[str, str] | None = None,
                       family: str = "sd15", component: str = "text_encoder") -> dict[str, Any]:
    """CLIPTextConfig dict from CLIP text-encoder shapes (keys rooted at `text_model.`).
    SDXL: component "text_encoder" (CLIP ViT-L) or "text_encoder_2" (bigG, with projection)."""
    hints = hints or {}
    cfg = load_shipped_config("sdxl" if family == "sdxl" else "sd15", component)
    vocab, hidden = _need(shapes, "text_model.embeddings.token_embedding.weight", "CLIP")
    positions = _need(shapes, "text_model.embeddings.position_embedding.weight", "CLIP")[0]
    layers = _indices(shapes, r"text_model\.encoder\.layers\.(\d+)\.")
    if not layers:
        raise ModelLoadError("cannot derive CLIP config: no encoder layers")
    fc1 = _need(shapes, "text_model.encoder.layers.0.mlp.fc1.weight", "CLIP")
    default_heads = hidden // 64 if hidden % 64 == 0 else 0
    heads = _int_hint(hints, "clip_g_heads" if component == "text_encoder_2" else "clip_heads",
                      default_heads)
    if heads <= 0 or hidden % heads:
        raise ModelLoadError(
            f"cannot derive CLIP attention heads for hidden size {hidden}; add the "
            f"{HINT_KEYS['clip_g_heads' if component == 'text_encoder_2' else 'clip_heads']!r}"
            " entry to the file's metadata")
    if "text_projection.weight" in shapes:
        cfg["projection_dim"] = shapes["text_projection.weight"][0]
    cfg.update({"vocab_size": vocab, "hidden_size": hidden, "max_position_embeddings": positions,
                "num_hidden_layers": len(layers), "intermediate_size": fc1[0],
                "num_attention_heads": heads})
    return cfg


def strip_prefix(shapes: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries under `prefix`, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}
