"""Per-family latent facts: the VAE scaling factor and a cheap latent->RGB projection used for
live previews (no VAE call)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentFormat:
    channels: int
    scale_factor: float  # sampling happens on latent * scale_factor
    # [channels, 3] linear projection approximating the decoded colours (published SD1.x factors)
    rgb_factors: tuple[tuple[float, float, float], ...]

    def preview_rgb(self, latent: torch.Tensor) -> torch.Tensor:
        """[C, h, w] scaled latent -> [h, w, 3] uint8 image."""
        factors = torch.tensor(self.rgb_factors, dtype=latent.dtype)
        rgb = torch.einsum("chw,cr->hwr", latent[: self.channels], factors)
        return ((rgb + 1.0) / 2.0).clamp(0, 1).mul(255).round().to(torch.uint8)


SD15 = LatentFormat(4, 0.18215, ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                                 (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177)))

# SDXL's VAE: same shape, other scale; preview factors as published for SDXL latents.
SDXL = LatentFormat(4, 0.13025, ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
                                 (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)))

FORMATS = {"sd15": SD15, "sdxl": SDXL}


def latent_format(family: str) -> LatentFormat:
    return FORMATS.get(family, SD15)
