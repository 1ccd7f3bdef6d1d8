"""Key layout of an SDXL single-file checkpoint (Stability's "sgm" layout, as ComfyUI users have
it) and the text-encoder mapping the SD1 layout does not need.

    model.diffusion_model.*                      UNet (LDM names, plus label_emb: ldm_keys.py)
    first_stage_model.*                          VAE (same layout as SD1)
    conditioner.embedders.0.transformer.*        CLIP ViT-L: transformers CLIPTextModel keys
    conditioner.embedders.1.model.*              OpenCLIP ViT-bigG, OpenCLIP's own names:

    OpenCLIP (embedders.1.model.)                transformers CLIPTextModelWithProjection
    token_embedding.weight                       text_model.embeddings.token_embedding.weight
    positional_embedding  (a bare parameter)     text_model.embeddings.position_embedding.weight
    transformer.resblocks.<i>.ln_1 / ln_2        text_model.encoder.layers.<i>.layer_norm1 / 2
    transformer.resblocks.<i>.attn.in_proj_*     ...self_attn.{q,k,v}_proj.*  (stacked q, k, v)
    transformer.resblocks.<i>.attn.out_proj      ...self_attn.out_proj
    transformer.resblocks.<i>.mlp.c_fc / c_proj  ...mlp.fc1 / fc2
    ln_final                                     text_model.final_layer_norm
    text_projection  [hidden, proj] (x @ P)      text_projection.weight [proj, hidden] (transposed)
    logit_scale                                  (not used by the text tower)
"""
from __future__ import annotations

import torch

CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_PREFIX = "conditioner.embedders."

_LAYER_TO_OPENCLIP = {
    "layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
    "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
}
_TOP_TO_OPENCLIP = {
    "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
    "text_model.embeddings.position_embedding.weight": "positional_embedding",
    "text_model.final_layer_norm.weight": "ln_final.weight",
    "text_model.final_layer_norm.bias": "ln_final.bias",
}


def _rooted(key: str) -> str:
    """transformers >= 5.6 flattened CLIPTextModel (no `text_model.`); the projection model
    still has it. Accept both."""
    if key.startswith(("text_model.", "text_projection.")):
        return key
    return "text_model." + key


def open_clip_from_transformers(state: dict[str, torch.Tensor],
                                logit_scale: float = 4.6052) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection state dict -> OpenCLIP text-tower tensors (no prefix).
    q, k and v projections are stacked into `in_proj_*`, as nn.MultiheadAttention stores them;
    `logit_scale` (ln 100, CLIP's trained value) is written because real files carry it."""
    state = {_rooted(k): v for k, v in state.items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    layers = sorted({int(k.split(".")[3]) for k in state
                     if k.startswith("text_model.encoder.layers.")})
    for i in layers:
        src = f"text_model.encoder.layers.{i}."
        dst = f"transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [state.pop(src + f"self_attn.{p}_proj.{kind}") for p in ("q", "k", "v")])
        for hf, oc in _LAYER_TO_OPENCLIP.items():
            for kind in ("weight", "bias"):
                out[dst + f"{oc}.{kind}"] = state.pop(src + f"{hf}.{kind}")
    for hf, oc in _TOP_TO_OPENCLIP.items():
        out[oc] = state.pop(hf)
    out["text_projection"] = state.pop("text_projection.weight").T.contiguous()
    if state:
        raise KeyError(f"no OpenCLIP name for {sorted(state)[:5]}")
    out["logit_scale"] = torch.tensor(logit_scale)
    return out
