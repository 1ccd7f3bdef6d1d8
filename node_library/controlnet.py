"""ControlNet application: attaches a ControlNet (a separate service) and its hint image to
conditioning entries; the sampler calls the ControlNet service at each step."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from node_library.inputs import FLOAT, OUT, SOCKET
from node_library.spec import NodeOutput, NodeSpec
from node_library.values import CondEntry, ControlApply, ControlNetRef


def _attach(entries: tuple[CondEntry, ...], net: ControlNetRef, hint: Any, strength: float,
            start: float, end: float) -> tuple[CondEntry, ...]:
    return tuple(replace(e, control=ControlApply(net, hint, strength, start, end, e.control))
                 for e in entries)


def apply_old(ctx: Any, conditioning: tuple[CondEntry, ...], control_net: ControlNetRef,
              image: Any, strength: float) -> NodeOutput:
    if strength == 0:
        return NodeOutput((conditioning,))
    return NodeOutput((_attach(conditioning, control_net, image, strength, 0.0, 1.0),))


def apply_advanced(ctx: Any, positive: tuple[CondEntry, ...], negative: tuple[CondEntry, ...],
                   control_net: ControlNetRef, image: Any, strength: float,
                   start_percent: float, end_percent: float, vae: Any = None) -> NodeOutput:
    if strength == 0:
        return NodeOutput((positive, negative))
    return NodeOutput((_attach(positive, control_net, image, strength, start_percent, end_percent),
                       _attach(negative, control_net, image, strength, start_percent,
                               end_percent)))


SPECS = [
    NodeSpec("ControlNetApply", "Apply ControlNet (OLD)", "conditioning/controlnet",
             (SOCKET("conditioning", "CONDITIONING"), SOCKET("control_net", "CONTROL_NET"),
              SOCKET("image", "IMAGE"), FLOAT("strength", 1.0, 0.0, 10.0, step=0.01)),
             (OUT("CONDITIONING"),), apply_old, deprecated=True),
    NodeSpec("ControlNetApplyAdvanced", "Apply ControlNet", "conditioning/controlnet",
             (SOCKET("positive", "CONDITIONING"), SOCKET("negative", "CONDITIONING"),
              SOCKET("control_net", "CONTROL_NET"), SOCKET("image", "IMAGE"),
              FLOAT("strength", 1.0, 0.0, 10.0, step=0.01),
              FLOAT("start_percent", 0.0, 0.0, 1.0, step=0.001),
              FLOAT("end_percent", 1.0, 0.0, 1.0, step=0.001),
              SOCKET("vae", "VAE", section="optional")),
             (OUT("CONDITIONING", "positive"), OUT("CONDITIONING", "negative")),
             apply_advanced),
]
