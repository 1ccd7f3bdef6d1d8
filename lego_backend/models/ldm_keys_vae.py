"""Key names of the SD VAE and CLIP text encoder, original (LDM) layout versus diffusers /
transformers layout, and the prefixes a ComfyUI single-file checkpoint puts before each part.

    LDM (first_stage_model.*)             diffusers AutoencoderKL
    {enc,dec}.norm_out                    {enc,dec}.conv_norm_out
    encoder.down.<i>.block.<j>            encoder.down_blocks.<i>.resnets.<j>
    encoder.down.<i>.downsample.conv      encoder.down_blocks.<i>.downsamplers.0.conv
    decoder.up.<n-1-i>.block.<j>          decoder.up_blocks.<i>.resnets.<j>   (LDM counts up
    decoder.up.<n-1-i>.upsample.conv      decoder.up_blocks.<i>.upsamplers.0.conv  from the bottom)
    {enc,dec}.mid.block_<j+1>             {enc,dec}.mid_block.resnets.<j>
    {enc,dec}.mid.attn_1.{norm,q,k,v,proj_out}   ...mid_block.attentions.0.{group_norm,to_q,to_k,
                                          to_v,to_out.0}  (LDM: 1x1 conv weights, diffusers: linear)
    nin_shortcut                          conv_shortcut
  CLIP (cond_stage_model.transformer.*): the transformers CLIPTextModel keys, `text_model.`-rooted.
"""
from __future__ import annotations

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
CONTROLNET_PREFIX = "control_model."

_ATTN_TO_LDM = {
    "group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out",
    # names of diffusers' pre-0.14 attention block, still found in old standalone VAE files
    "query": "q", "key": "k", "value": "v", "proj_attn": "proj_out",
}
_ATTN_PROJECTIONS = ("q", "k", "v", "proj_out")


def _split(key: str, table: dict[str, str]) -> tuple[str, str] | None:
    for src in sorted(table, key=len, reverse=True):
        if key == src or key.startswith(src + "."):
            return table[src], key[len(src) + 1:]
    return None


def _vae_side_to_ldm(side: str, p: list[str], num_blocks: int) -> str:
    if p[0] == "conv_norm_out":
        return ".".join([side, "norm_out", *p[1:]])
    if p[0] in ("conv_in", "conv_out"):
        return ".".join([side, *p])
    if p[0] == "mid_block":
        if p[1] == "resnets":
            rest = ["nin_shortcut" if x == "conv_shortcut" else x for x in p[3:]]
            return ".".join([side, "mid", f"block_{int(p[2]) + 1}", *rest])
        if p[1] == "attentions":
            hit = _split(".".join(p[3:]), _ATTN_TO_LDM)
            if hit is not None:
                return ".".join([side, "mid", "attn_1", hit[0], hit[1]]).rstrip(".")
    if p[0] in ("down_blocks", "up_blocks"):
        i = int(p[1])
        level, word = (i, "down") if p[0] == "down_blocks" else (num_blocks - 1 - i, "up")
        if p[2] == "resnets":
            rest = ["nin_shortcut" if x == "conv_shortcut" else x for x in p[4:]]
            return ".".join([side, word, str(level), "block", p[3], *rest])
        if p[2] in ("downsamplers", "upsamplers"):
            sampler = "downsample" if word == "down" else "upsample"
            return ".".join([side, word, str(level), sampler, *p[4:]])
    raise KeyError(f"no LDM name for VAE key {'.'.join([side, *p])!r}")


def vae_key_to_ldm(key: str, num_blocks: int) -> str:
    """diffusers AutoencoderKL key -> LDM VAE key (without `first_stage_model.`)."""
    p = key.split(".")
    if p[0] in ("quant_conv", "post_quant_conv"):
        return key
    if p[0] in ("encoder", "decoder"):
        return _vae_side_to_ldm(p[0], p[1:], num_blocks)
    raise KeyError(f"no LDM name for VAE key {key!r}")


def vae_state_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A whole diffusers VAE state dict in LDM layout (attention projections become 1x1 convs,
    as in the original files)."""
    num_blocks = len({k.split(".")[2] for k in state if k.startswith("encoder.down_blocks.")})
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        new = vae_key_to_ldm(key, num_blocks)
        is_attn_proj = ".mid.attn_1." in new and new.split(".")[-2] in _ATTN_PROJECTIONS
        if is_attn_proj and new.endswith(".weight") and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]
        out[new] = tensor
    return out


def clip_key_to_ldm(key: str) -> str:
    """transformers CLIPTextModel key (flattened since transformers 5.6, or `text_model.`-rooted
    before) -> key under `cond_stage_model.transformer.`."""
    return key if key.startswith("text_model.") else "text_model." + key
