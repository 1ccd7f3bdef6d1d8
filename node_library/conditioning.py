"""Text conditioning nodes. CLIPTextEncode is a service step (text-encoder service); the others
only rearrange conditioning entries."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from node_library.inputs import FLOAT, INT, MAX_RESOLUTION, OUT, SOCKET, STRING
from node_library.spec import NodeOutput, NodeSpec
from node_library.values import ClipRef, CondEntry


def encode(ctx: Any, text: str, clip: ClipRef) -> NodeOutput:
    cond, pooled = ctx.call(clip.encoder, "encode", text=text, clip_skip=clip.clip_skip,
                            adapters=clip.adapters)
    return NodeOutput(((CondEntry(cond, pooled),),))


def set_last_layer(ctx: Any, clip: ClipRef, stop_at_clip_layer: int) -> NodeOutput:
    return NodeOutput((replace(clip, clip_skip=stop_at_clip_layer),))


def combine(ctx: Any, conditioning_1: tuple[CondEntry, ...],
            conditioning_2: tuple[CondEntry, ...]) -> NodeOutput:
    return NodeOutput((tuple(conditioning_1) + tuple(conditioning_2),))


def set_area(ctx: Any, conditioning: tuple[CondEntry, ...], width: int, height: int, x: int,
             y: int, strength: float) -> NodeOutput:
    return NodeOutput((tuple(replace(c, area=(height, width, y, x), strength=strength)
                             for c in conditioning),))


SPECS = [
    NodeSpec("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
             (STRING("text", multiline=True, dynamic_prompts=True,
                     tooltip="The text to be encoded."),
              SOCKET("clip", "CLIP", tooltip="The CLIP model used for encoding the text.")),
             (OUT("CONDITIONING", tooltip="A conditioning containing the embedded text used to "
                                          "guide the diffusion model."),),
             encode, description="Encodes a text prompt using a CLIP model into an embedding "
                                 "that can be used to guide the diffusion model towards "
                                 "generating specific images.",
             services=("text_encoder",)),
    NodeSpec("CLIPSetLastLayer", "CLIP Set Last Layer", "conditioning",
             (SOCKET("clip", "CLIP"), INT("stop_at_clip_layer", -1, -24, -1, step=1)),
             (OUT("CLIP"),), set_last_layer),
    NodeSpec("ConditioningCombine", "Conditioning (Combine)", "conditioning",
             (SOCKET("conditioning_1", "CONDITIONING"), SOCKET("conditioning_2", "CONDITIONING")),
             (OUT("CONDITIONING"),), combine),
    NodeSpec("ConditioningSetArea", "Conditioning (Set Area)", "conditioning",
             (SOCKET("conditioning", "CONDITIONING"),
              INT("width", 64, 64, MAX_RESOLUTION, step=8),
              INT("height", 64, 64, MAX_RESOLUTION, step=8),
              INT("x", 0, 0, MAX_RESOLUTION, step=8), INT("y", 0, 0, MAX_RESOLUTION, step=8),
              FLOAT("strength", 1.0, 0.0, 10.0, step=0.01)),
             (OUT("CONDITIONING"),), set_area),
]
