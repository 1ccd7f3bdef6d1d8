"""VAE service: pixels <-> latents. LATENT values hold raw VAE latents (ComfyUI's convention);
the denoiser side applies the family's scaling factor."""
from __future__ import annotations

from typing import Any

import torch

from lego_backend.models import loading
from lego_backend.services.fast_modules import direct_attention
from lego_backend.services.protocol import ModelService, ServiceCall, module_bytes


class VaeService(ModelService):
    """ops: decode(latent [B,4,h,w]) -> image handle [B,H,W,3] in 0..1;
    encode(image [B,H,W,3] 0..1) -> latent handle (distribution mean: deterministic)."""

    model: Any = None

    def load(self) -> None:
        # A checkpoint's own VAE and a standalone VAE file load differently.
        if self.spec.source == "file":
            self.model = loading.load_vae(self.spec.path)
        else:
            self.model = loading.load_checkpoint_vae(self.spec.path)
        self.model.eval().requires_grad_(False)
        direct_attention(self.model)

    def unload(self) -> None:
        self.model = None
        super().unload()

    def resident_bytes(self) -> int:
        return module_bytes(self.model) if self.loaded else 0

    @torch.inference_mode()
    def _run(self, calls: list[ServiceCall]) -> list[Any]:
        out = []
        for c in calls:
            if c.op == "decode":
                z = self.store.get(c.args["latent"]).float()
                img = self.model.decode(z, return_dict=False)[0]
                img = ((img + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).contiguous()
                out.append(self.store.put(img))
            elif c.op == "encode":
                px = self.store.get(c.args["image"])[..., :3].permute(0, 3, 1, 2).float()
                dist = self.model.encode(px * 2.0 - 1.0).latent_dist
                out.append(self.store.put(dist.mean.contiguous()))
            else:
                raise ValueError(f"VAE has no op {c.op!r}")
        return out
