"""Key names of the SD UNet / ControlNet in the original (LDM, "ComfyUI single-file") layout
versus the diffusers layout. Written from the two formats' module trees:

    LDM                                   diffusers
    input_blocks.0.0                      conv_in
    input_blocks.<i>.0 (ResBlock)         down_blocks.<b>.resnets.<l>
    input_blocks.<i>.1 (SpatialTransf.)   down_blocks.<b>.attentions.<l>
    input_blocks.<i>.0.op (Downsample)    down_blocks.<b>.downsamplers.0.conv
    middle_block.0 / .1 / .2              mid_block.resnets.0 / attentions.0 / resnets.1
    output_blocks.<i>.0 / .1              up_blocks.<b>.resnets.<l> / attentions.<l>
    output_blocks.<i>.{1|2}.conv          up_blocks.<b>.upsamplers.0.conv (2 if the block has attn)
    time_embed.0/.2, out.0/.2             time_embedding.linear_1/_2, conv_norm_out/conv_out
    label_emb.0.0/.0.2 (SDXL)             add_embedding.linear_1/_2 (pooled text + size embedding)
    ResBlock in_layers.0/.2, out_layers.0/.3, emb_layers.1, skip_connection
                                          norm1/conv1, norm2/conv2, time_emb_proj, conv_shortcut
  ControlNet extras (prefix `control_model.` in full files):
    input_hint_block.0 / .2k+2 / last     controlnet_cond_embedding.conv_in / blocks.k / conv_out
    zero_convs.<i>.0, middle_block_out.0  controlnet_down_blocks.<i>, controlnet_mid_block

Every level of the LDM input list holds `layers_per_block` ResBlocks then one Downsample (not
after the last level); output levels hold `layers_per_block + 1` blocks. Keys inside a
transformer (proj_in, transformer_blocks.*, norm, proj_out) are named the same in both.
Functions work on full parameter keys and on module paths alike (the rest is carried over).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_RESNET_TO_LDM = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0",
    "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection",
}
_RESNET_FROM_LDM = {v: k for k, v in _RESNET_TO_LDM.items()}
_TOP_TO_LDM = {
    "conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "controlnet_cond_embedding.conv_in": "input_hint_block.0",
    "controlnet_mid_block": "middle_block_out.0",
}
_TOP_FROM_LDM = {v: k for k, v in _TOP_TO_LDM.items()}


@dataclass(frozen=True)
class UNetLayout:
    """The structural facts the mapping needs and key names alone do not give in one direction."""

    layers_per_block: int
    up_attention: tuple[bool, ...] = ()  # per diffusers up block: does it hold attentions
    hint_blocks: int = 6  # ControlNet: convs between conv_in and conv_out of the hint encoder


def _join(*parts: object) -> str:
    return ".".join(str(p) for p in parts if p != "")


def _resnet_to_ldm(rest: list[str]) -> str:
    head = _RESNET_TO_LDM.get(rest[0]) if rest else None
    if head is None:
        raise KeyError(f"unknown resnet member {'.'.join(rest)!r}")
    return _join(head, *rest[1:])


def _resnet_from_ldm(rest: list[str]) -> str:
    two = ".".join(rest[:2])
    if two in _RESNET_FROM_LDM:
        return _join(_RESNET_FROM_LDM[two], *rest[2:])
    if rest and rest[0] in _RESNET_FROM_LDM:
        return _join(_RESNET_FROM_LDM[rest[0]], *rest[1:])
    raise KeyError(f"unknown ResBlock member {'.'.join(rest)!r}")


def _split_top(key: str, table: dict[str, str]) -> tuple[str, str] | None:
    """Longest table entry that is `key` or a dotted prefix of it -> (mapped, rest)."""
    for src in sorted(table, key=len, reverse=True):
        if key == src or key.startswith(src + "."):
            return table[src], key[len(src) + 1:]
    return None


def unet_key_to_ldm(key: str, layout: UNetLayout) -> str:
    """diffusers UNet/ControlNet key -> LDM key (without `model.diffusion_model.`)."""
    top = _split_top(key, _TOP_TO_LDM)
    if top is not None:
        return _join(*top)
    p = key.split(".")
    n = layout.layers_per_block
    if p[0] == "down_blocks":
        b, kind, idx, rest = int(p[1]), p[2], int(p[3]), p[4:]
        i = 1 + b * (n + 1) + idx
        if kind == "resnets":
            return _join("input_blocks", i, 0, _resnet_to_ldm(rest))
        if kind == "attentions":
            return _join("input_blocks", i, 1, *rest)
        if kind == "downsamplers" and rest and rest[0] == "conv":
            return _join("input_blocks", (b + 1) * (n + 1), 0, "op", *rest[1:])
    elif p[0] == "mid_block":
        kind, idx, rest = p[1], int(p[2]), p[3:]
        if kind == "resnets":
            return _join("middle_block", 2 * idx, _resnet_to_ldm(rest))
        if kind == "attentions":
            return _join("middle_block", 1, *rest)
    elif p[0] == "up_blocks":
        b, kind, idx, rest = int(p[1]), p[2], int(p[3]), p[4:]
        i = b * (n + 1) + idx
        if kind == "resnets":
            return _join("output_blocks", i, 0, _resnet_to_ldm(rest))
        if kind == "attentions":
            return _join("output_blocks", i, 1, *rest)
        if kind == "upsamplers" and rest and rest[0] == "conv":
            slot = 2 if layout.up_attention[b] else 1
            return _join("output_blocks", b * (n + 1) + n, slot, "conv", *rest[1:])
    elif p[0] == "controlnet_down_blocks":
        return _join("zero_convs", int(p[1]), 0, *p[2:])
    elif p[:2] == ["controlnet_cond_embedding", "blocks"]:
        return _join("input_hint_block", 2 * int(p[2]) + 2, *p[3:])
    elif p[:2] == ["controlnet_cond_embedding", "conv_out"]:
        return _join("input_hint_block", 2 * layout.hint_blocks + 2, *p[2:])
    raise KeyError(f"no LDM name for UNet key {key!r}")


def unet_key_from_ldm(key: str, layers_per_block: int, hint_blocks: int = 6) -> str:
    """LDM UNet/ControlNet key (without prefix) -> diffusers key."""
    hint_out = _split_top(key, {f"input_hint_block.{2 * hint_blocks + 2}":
                                "controlnet_cond_embedding.conv_out"})
    if hint_out is not None:
        return _join(*hint_out)
    top = _split_top(key, _TOP_FROM_LDM)
    if top is not None:
        return _join(*top)
    p = key.split(".")
    n = layers_per_block
    if p[0] == "input_blocks" and len(p) >= 3:
        i, slot, rest = int(p[1]), p[2], p[3:]
        b, l_ = (i - 1) // (n + 1), (i - 1) % (n + 1)
        if l_ == n and slot == "0" and rest[:1] == ["op"]:
            return _join("down_blocks", b, "downsamplers.0.conv", *rest[1:])
        if slot == "0":
            return _join("down_blocks", b, "resnets", l_, _resnet_from_ldm(rest))
        if slot == "1":
            return _join("down_blocks", b, "attentions", l_, *rest)
    elif p[0] == "middle_block" and len(p) >= 2:
        j, rest = int(p[1]), p[2:]
        if j in (0, 2):
            return _join("mid_block.resnets", j // 2, _resnet_from_ldm(rest))
        if j == 1:
            return _join("mid_block.attentions.0", *rest)
    elif p[0] == "output_blocks" and len(p) >= 3:
        i, slot, rest = int(p[1]), p[2], p[3:]
        b, l_ = i // (n + 1), i % (n + 1)
        if slot in ("1", "2") and rest[:1] == ["conv"]:
            return _join("up_blocks", b, "upsamplers.0.conv", *rest[1:])
        if slot == "0":
            return _join("up_blocks", b, "resnets", l_, _resnet_from_ldm(rest))
        if slot == "1":
            return _join("up_blocks", b, "attentions", l_, *rest)
    elif p[0] == "zero_convs" and len(p) >= 3 and p[2] == "0":
        return _join("controlnet_down_blocks", p[1], *p[3:])
    elif p[0] == "input_hint_block" and len(p) >= 2 and int(p[1]) % 2 == 0:
        return _join("controlnet_cond_embedding.blocks", int(p[1]) // 2 - 1, *p[2:])
    raise KeyError(f"no diffusers name for LDM UNet key {key!r}")


def layout_from_diffusers_keys(keys: Iterable[str]) -> UNetLayout:
    """Read layers_per_block, per-up-block attention and hint depth off diffusers key names."""
    keys = list(keys)
    resnets = {k.split(".")[3] for k in keys if k.startswith("down_blocks.0.resnets.")}
    up_blocks = sorted({int(k.split(".")[1]) for k in keys if k.startswith("up_blocks.")})
    up_attn = tuple(any(k.startswith(f"up_blocks.{b}.attentions.") for k in keys)
                    for b in up_blocks)
    hint = {k.split(".")[2] for k in keys if k.startswith("controlnet_cond_embedding.blocks.")}
    return UNetLayout(layers_per_block=len(resnets), up_attention=up_attn,
                      hint_blocks=len(hint) or 6)


def ldm_layers_per_block(keys: Iterable[str]) -> int:
    """ResBlocks per level in an LDM UNet: input blocks before the first Downsample."""
    keys = list(keys)
    first_op = min((int(k.split(".")[1]) for k in keys
                    if k.startswith("input_blocks.") and ".0.op." in k), default=None)
    if first_op is not None:
        return first_op - 1
    blocks = {int(k.split(".")[1]) for k in keys if k.startswith("input_blocks.")}
    return max(len(blocks) - 1, 1)  # single level: every non-stem block is a ResBlock


def ldm_hint_blocks(keys: Iterable[str]) -> int:
    """Convs between the first and last conv of a ControlNet hint encoder (SD: 6)."""
    idx = {int(k.split(".")[1]) for k in keys if k.startswith("input_hint_block.")}
    return max(len(idx) - 2, 0) if idx else 6
