"""The demo LoRA, written twice with the same content: kohya layout and diffusers/peft layout.

Targets: every attention projection and feed-forward output of the UNet's transformer blocks,
the 1x1-conv proj_in/proj_out around them, one 3x3 ResBlock conv (LoCon style), and the CLIP
attention + MLP linears. Up matrices are scaled so that scale * up @ down has about the same
spread as the weight it is added to: merged at strength 1 the LoRA visibly changes an image.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch

from lego_backend.models.lora import LoraDelta
from lego_backend.models.safetensors_io import save_tensors

RANK = 4
ALPHA = 2.0  # scale alpha / rank = 0.5: exercises the alpha handling of both layouts
_UNET_SUFFIXES = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q",
                  "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ff.net.2")
_UNET_EXTRA = ("proj_in", "proj_out")
_UNET_CONV = "down_blocks.0.resnets.0.conv1"
_TEXT_SUFFIXES = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                  "self_attn.out_proj", "mlp.fc1", "mlp.fc2")


def _targets(module: torch.nn.Module, suffixes: tuple[str, ...]) -> list[str]:
    return sorted(name for name, _ in module.named_modules() if name.endswith(suffixes))


def _make_delta(weight: torch.Tensor, gen: torch.Generator) -> LoraDelta:
    out_f, in_f = weight.shape[0], weight.shape[1]
    kernel = tuple(weight.shape[2:])  # () for Linear, (kh, kw) for Conv2d
    down = torch.randn((RANK, in_f, *kernel), generator=gen)
    # var(delta) = scale^2 * rank * var(up) * var(down); pick var(up) for std(delta) = std(W)
    up_std = float(weight.std()) / ((ALPHA / RANK) * math.sqrt(RANK))
    up = torch.randn((out_f, RANK, *(1 for _ in kernel)), generator=gen) * up_std
    return LoraDelta(down=down, up=up, alpha=ALPHA)


def demo_lora_deltas(unet: torch.nn.Module, text_encoder: torch.nn.Module, seed: int
                     ) -> dict[str, dict[str, LoraDelta]]:
    """The normalised content of the demo LoRA (component -> module path -> delta)."""
    gen = torch.Generator().manual_seed(seed + 100)
    unet_paths = _targets(unet, _UNET_SUFFIXES) + [
        n for n in _targets(unet, _UNET_EXTRA) if ".attentions." in n] + [_UNET_CONV]
    out: dict[str, dict[str, LoraDelta]] = {"unet": {}, "text_encoder": {}}
    for path in unet_paths:
        out["unet"][path] = _make_delta(unet.get_submodule(path).weight, gen)
    for path in _targets(text_encoder, _TEXT_SUFFIXES):
        out["text_encoder"][path.removeprefix("text_model.")] = _make_delta(
            text_encoder.get_submodule(path).weight, gen)
    return out


def kohya_tensors(deltas: Mapping[str, Mapping[str, LoraDelta]]) -> dict[str, torch.Tensor]:
    """kohya layout: lora_unet_<path_with_underscores>.lora_down.weight / lora_up / alpha.
    Text encoder paths are written `text_model.`-rooted, as kohya names them."""
    out: dict[str, torch.Tensor] = {}
    for comp, prefix, root in (("unet", "lora_unet_", ""), ("text_encoder", "lora_te_",
                                                             "text_model.")):
        for path, d in deltas.get(comp, {}).items():
            name = prefix + (root + path).replace(".", "_")
            out[f"{name}.lora_down.weight"] = d.down
            out[f"{name}.lora_up.weight"] = d.up
            out[f"{name}.alpha"] = torch.tensor(d.alpha, dtype=torch.float32)
    return out


def peft_tensors(deltas: Mapping[str, Mapping[str, LoraDelta]]) -> dict[str, torch.Tensor]:
    """diffusers/peft layout: unet.<path>.lora_A.weight / lora_B.weight (alpha in metadata)."""
    out: dict[str, torch.Tensor] = {}
    for comp, root in (("unet", ""), ("text_encoder", "text_model.")):
        for path, d in deltas.get(comp, {}).items():
            out[f"{comp}.{root}{path}.lora_A.weight"] = d.down
            out[f"{comp}.{root}{path}.lora_B.weight"] = d.up
    return out


def peft_metadata(deltas: Mapping[str, Mapping[str, LoraDelta]]) -> dict[str, str]:
    """diffusers' `lora_adapter_metadata`: the peft LoraConfig per component, prefixed."""
    meta: dict[str, object] = {}
    for comp, items in deltas.items():
        meta[f"{comp}.r"] = RANK
        meta[f"{comp}.lora_alpha"] = ALPHA
        meta[f"{comp}.target_modules"] = sorted(items)
    return {"lora_adapter_metadata": json.dumps(meta, indent=2, sort_keys=True)}


def write_demo_loras(unet: torch.nn.Module, text_encoder: torch.nn.Module, kohya_path: Path,
                     peft_path: Path, seed: int, metadata: Mapping[str, str]) -> None:
    """Write the same LoRA content in both layouts."""
    deltas = demo_lora_deltas(unet, text_encoder, seed)
    base = {**metadata, "lego.lora.rank": str(RANK), "lego.lora.alpha": str(ALPHA)}
    save_tensors(kohya_tensors(deltas), kohya_path, {**base, "ss_network_dim": str(RANK),
                                                     "ss_network_alpha": str(ALPHA)})
    save_tensors(peft_tensors(deltas), peft_path, {**base, **peft_metadata(deltas)})
