"""Node definitions with ComfyUI's class names, inputs and outputs."""
from __future__ import annotations

from node_library.registry import NodeRegistry


def build_registry() -> NodeRegistry:
    """Every node this server offers. Imported lazily: node modules pull in torch."""
    from node_library import (
        canny,
        conditioning,
        conditioning_sdxl,
        controlnet,
        image,
        latent,
        loaders,
        outpaint,
        sampling,
        upscale,
        vae,
    )

    registry = NodeRegistry()
    for module in (loaders, conditioning, conditioning_sdxl, sampling, latent, vae, image,
                   controlnet, upscale, outpaint, canny):
        for spec in module.SPECS:
            registry.add(spec)
    return registry
