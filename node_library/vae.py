"""VAE nodes: service steps on the VAE service."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from node_library.inputs import INT, OUT, SOCKET
from node_library.spec import NodeOutput, NodeSpec
from node_library.values import Latent, VaeRef


def _crop8(px: torch.Tensor) -> torch.Tensor:
    """Centre-crop [B,H,W,C] pixels to multiples of 8 (the VAE's downsampling factor)."""
    h, w = (px.shape[1] // 8) * 8, (px.shape[2] // 8) * 8
    if (h, w) == tuple(px.shape[1:3]):
        return px
    y, x = (px.shape[1] % 8) // 2, (px.shape[2] % 8) // 2
    return px[:, y:y + h, x:x + w, :]


def decode(ctx: Any, samples: Latent, vae: VaeRef) -> NodeOutput:
    return NodeOutput((ctx.call(vae.vae, "decode", latent=samples.samples),))


def encode(ctx: Any, pixels: Any, vae: VaeRef) -> NodeOutput:
    px = _crop8(ctx.tensor(pixels)[..., :3])
    return NodeOutput((Latent(ctx.call(vae.vae, "encode", image=ctx.put(px.contiguous()))),))


def encode_for_inpaint(ctx: Any, pixels: Any, vae: VaeRef, mask: Any,
                       grow_mask_by: int) -> NodeOutput:
    px = _crop8(ctx.tensor(pixels)[..., :3]).clone()
    h, w = px.shape[1:3]
    m = ctx.tensor(mask).reshape(-1, 1, *ctx.tensor(mask).shape[-2:]).float()
    m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    if grow_mask_by > 0:  # dilate so the seam around the hole is repainted too
        kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
        pad = (grow_mask_by - 1) // 2
        grown = torch.clamp(F.conv2d(m.round(), kernel, padding=pad), 0, 1)[..., :h, :w]
    else:
        grown = m
    keep = (1.0 - m.round()).squeeze(1)
    # Masked pixels become neutral grey so the VAE does not encode what is to be replaced.
    px = (px - 0.5) * keep.unsqueeze(-1) + 0.5
    latent = ctx.call(vae.vae, "encode", image=ctx.put(px.contiguous()))
    return NodeOutput((Latent(latent, noise_mask=ctx.put(grown.squeeze(1).contiguous())),))


SPECS = [
    NodeSpec("VAEDecode", "VAE Decode", "latent",
             (SOCKET("samples", "LATENT", tooltip="The latent to be decoded."),
              SOCKET("vae", "VAE", tooltip="The VAE model used for decoding the latent.")),
             (OUT("IMAGE", tooltip="The decoded image."),), decode,
             description="Decodes latent images back into pixel space images.",
             services=("vae",)),
    NodeSpec("VAEEncode", "VAE Encode", "latent",
             (SOCKET("pixels", "IMAGE"), SOCKET("vae", "VAE")), (OUT("LATENT"),), encode,
             services=("vae",)),
    NodeSpec("VAEEncodeForInpaint", "VAE Encode (for Inpainting)", "latent/inpaint",
             (SOCKET("pixels", "IMAGE"), SOCKET("vae", "VAE"), SOCKET("mask", "MASK"),
              INT("grow_mask_by", 6, 0, 64, step=1)),
             (OUT("LATENT"),), encode_for_inpaint, services=("vae",)),
]
