"""Loader nodes: cheap. They resolve files and hash them (weights identity) and return service
references; weights load when a service first runs."""
from __future__ import annotations

from typing import Any

from lego_backend.models import loading
from lego_backend.services.protocol import AdapterRef, ServiceSpec
from node_library.inputs import COMBO, FLOAT, OUT, SOCKET
from node_library.spec import NodeOutput, NodeSpec
from node_library.values import ClipRef, ControlNetRef, ModelRef, VaeRef


def _file(ctx: Any, folder: str, name: str) -> tuple[Any, str]:
    path = ctx.models.resolve(folder, name)
    return path, ctx.models.identity(path)


def load_checkpoint(ctx: Any, ckpt_name: str) -> NodeOutput:
    path, ident = _file(ctx, "checkpoints", ckpt_name)
    info = loading.detect_checkpoint(path)
    model = ModelRef(ServiceSpec("denoiser", ident, path, family=info.family),
                     prediction_type=info.prediction_type)
    clip = ClipRef(ServiceSpec("text_encoder", ident, path, family=info.family))
    vae = VaeRef(ServiceSpec("vae", ident, path, family=info.family))
    return NodeOutput((model, clip, vae))


def load_vae(ctx: Any, vae_name: str) -> NodeOutput:
    path, ident = _file(ctx, "vae", vae_name)
    return NodeOutput((VaeRef(ServiceSpec("vae", ident, path, source="file")),))


def _adapter(ctx: Any, lora_name: str, strength: float) -> AdapterRef:
    path, ident = _file(ctx, "loras", lora_name)
    return AdapterRef(ident, path, float(strength))


def load_lora(ctx: Any, model: ModelRef, clip: ClipRef, lora_name: str,
              strength_model: float, strength_clip: float) -> NodeOutput:
    # Strength 0 leaves that side untouched (same service, same bytes), as in ComfyUI.
    if strength_model != 0:
        model = model.with_adapter(_adapter(ctx, lora_name, strength_model))
    if strength_clip != 0:
        clip = clip.with_adapter(_adapter(ctx, lora_name, strength_clip))
    return NodeOutput((model, clip))


def load_lora_model_only(ctx: Any, model: ModelRef, lora_name: str,
                         strength_model: float) -> NodeOutput:
    if strength_model != 0:
        model = model.with_adapter(_adapter(ctx, lora_name, strength_model))
    return NodeOutput((model,))


def load_controlnet(ctx: Any, control_net_name: str) -> NodeOutput:
    path, ident = _file(ctx, "controlnet", control_net_name)
    return NodeOutput((ControlNetRef(ServiceSpec("controlnet", ident, path, source="file")),))


STRENGTH = {"step": 0.01}

SPECS = [
    NodeSpec("CheckpointLoaderSimple", "Load Checkpoint", "loaders",
             (COMBO("ckpt_name", choices_from="checkpoints",
                    tooltip="The name of the checkpoint (model) to load."),),
             (OUT("MODEL", tooltip="The model used for denoising latents."),
              OUT("CLIP", tooltip="The CLIP model used for encoding text prompts."),
              OUT("VAE", tooltip="The VAE model used for encoding and decoding images to and "
                                 "from latent space.")),
             load_checkpoint, description="Loads a diffusion model checkpoint, diffusion models "
                                          "are used to denoise latents."),
    NodeSpec("VAELoader", "Load VAE", "loaders",
             (COMBO("vae_name", choices_from="vae"),), (OUT("VAE"),), load_vae),
    NodeSpec("LoraLoader", "Load LoRA", "loaders",
             (SOCKET("model", "MODEL", tooltip="The diffusion model the LoRA will be applied to."),
              SOCKET("clip", "CLIP", tooltip="The CLIP model the LoRA will be applied to."),
              COMBO("lora_name", choices_from="loras", tooltip="The name of the LoRA."),
              FLOAT("strength_model", 1.0, -100.0, 100.0, **STRENGTH),
              FLOAT("strength_clip", 1.0, -100.0, 100.0, **STRENGTH)),
             (OUT("MODEL", tooltip="The modified diffusion model."),
              OUT("CLIP", tooltip="The modified CLIP model.")),
             load_lora, description="LoRAs are used to modify diffusion and CLIP models, "
                                    "altering the way in which latents are denoised."),
    NodeSpec("LoraLoaderModelOnly", "LoraLoaderModelOnly", "loaders",
             (SOCKET("model", "MODEL"), COMBO("lora_name", choices_from="loras"),
              FLOAT("strength_model", 1.0, -100.0, 100.0, **STRENGTH)),
             (OUT("MODEL"),), load_lora_model_only),
    NodeSpec("ControlNetLoader", "Load ControlNet Model", "loaders",
             (COMBO("control_net_name", choices_from="controlnet"),),
             (OUT("CONTROL_NET"),), load_controlnet),
]
