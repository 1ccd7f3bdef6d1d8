"""SDXL text-encode nodes (ComfyUI's comfy_extras.nodes_clip_sdxl): a prompt per text encoder
plus the size conditioning SDXL was trained with. On an SD1 CLIP they behave as ComfyUI's do:
the SD1 encoder reads `text_l` (CLIPTextEncodeSDXL) or `text`, and the sizes are carried but
unused by SD1 models."""
from __future__ import annotations

from typing import Any

from node_library.inputs import FLOAT, INT, MAX_RESOLUTION, OUT, SOCKET, STRING
from node_library.spec import NodeOutput, NodeSpec
from node_library.values import ClipRef, CondEntry, SizeCond

MODULE = "comfy_extras.nodes_clip_sdxl"
CATEGORY = "advanced/conditioning"


def _encode(ctx: Any, clip: ClipRef, text: str, text_l: str | None, size: SizeCond
            ) -> NodeOutput:
    args: dict[str, Any] = {"text": text, "clip_skip": clip.clip_skip, "adapters": clip.adapters}
    if clip.encoder.family == "sdxl":
        if text_l is not None:
            args["text_l"] = text_l
    elif text_l is not None:
        args["text"] = text_l  # an SD1 CLIP has only the "l" encoder
    cond, pooled = ctx.call(clip.encoder, "encode", **args)
    return NodeOutput(((CondEntry(cond, pooled, size=size),),))


def encode_sdxl(ctx: Any, clip: ClipRef, width: int, height: int, crop_w: int, crop_h: int,
                target_width: int, target_height: int, text_g: str, text_l: str) -> NodeOutput:
    return _encode(ctx, clip, text_g, text_l,
                   SizeCond(width, height, crop_w, crop_h, target_width, target_height))


def encode_refiner(ctx: Any, ascore: float, width: int, height: int, text: str,
                   clip: ClipRef) -> NodeOutput:
    # A base SDXL model reads width/height (crops 0, target = size); only refiner models,
    # not supported yet, would read the aesthetic score.
    return _encode(ctx, clip, text, None, SizeCond(width, height, aesthetic_score=ascore))


def _size(name: str, default: int) -> Any:
    return INT(name, default, 0, MAX_RESOLUTION)


TEXT: dict[str, Any] = {"multiline": True, "dynamic_prompts": True}

SPECS = [
    NodeSpec("CLIPTextEncodeSDXL", "CLIPTextEncodeSDXL", CATEGORY,
             (SOCKET("clip", "CLIP"), _size("width", 1024), _size("height", 1024),
              _size("crop_w", 0), _size("crop_h", 0), _size("target_width", 1024),
              _size("target_height", 1024), STRING("text_g", **TEXT), STRING("text_l", **TEXT)),
             (OUT("CONDITIONING"),), encode_sdxl, python_module=MODULE,
             services=("text_encoder",)),
    NodeSpec("CLIPTextEncodeSDXLRefiner", "CLIPTextEncodeSDXLRefiner", CATEGORY,
             (FLOAT("ascore", 6.0, 0.0, 1000.0, step=0.01), _size("width", 1024),
              _size("height", 1024), STRING("text", **TEXT), SOCKET("clip", "CLIP")),
             (OUT("CONDITIONING"),), encode_refiner, python_module=MODULE,
             services=("text_encoder",)),
]
