"""Point a downloaded classic template at the demo models and shrink it to test size: model
files -> demo files, pixel sizes / 8 (512 px -> 64 px), 2 sampling steps, stand-in input images
written under the names the template loads."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lego_backend.models.demo import DEMO_CHECKPOINT, DEMO_CONTROLNET, DEMO_LORA, DEMO_VAE
from lego_backend.models.demo_extra import DEMO_EMBEDDING, DEMO_UPSCALER

CLASSIC = Path(__file__).resolve().parents[2] / "data" / "workflows" / "classic"
SHRINK = 8  # templates are made for 512..1024 px; the demo models run at 64..128 px
STEPS = 2
MODEL_INPUTS = {  # (class_type, input) -> demo file name
    ("CheckpointLoaderSimple", "ckpt_name"): DEMO_CHECKPOINT,
    ("VAELoader", "vae_name"): DEMO_VAE,
    ("LoraLoader", "lora_name"): DEMO_LORA,
    ("LoraLoaderModelOnly", "lora_name"): DEMO_LORA,
    ("ControlNetLoader", "control_net_name"): DEMO_CONTROLNET,
    ("UpscaleModelLoader", "model_name"): DEMO_UPSCALER,
}
PIXEL_INPUTS = {  # class_type -> (input names scaled by 1/SHRINK, multiple, minimum)
    "EmptyLatentImage": (("width", "height"), 8, 16),
    "LatentUpscale": (("width", "height"), 8, 0),
    "ImageScale": (("width", "height"), 1, 0),
    "ConditioningSetArea": (("width", "height"), 8, 64),
    "ImagePadForOutpaint": (("left", "top", "right", "bottom", "feathering"), 8, 0),
}
DEMO_EMBEDDING_NAME = DEMO_EMBEDDING.removesuffix(".safetensors")


def template_names() -> list[str]:
    return sorted(p.stem for p in CLASSIC.glob("*.json"))


def load_template(name: str) -> dict[str, Any]:
    return json.loads((CLASSIC / f"{name}.json").read_text(encoding="utf-8"))


def _shrink(value: int, multiple: int, minimum: int) -> int:
    if value == 0:
        return 0
    return max(minimum, multiple * max(1, round(value / SHRINK / multiple)))


def remap_to_demo(prompt: dict[str, Any]) -> dict[str, Any]:
    """A copy of an API prompt that runs quickly on the demo models."""
    out = json.loads(json.dumps(prompt))
    for node in out.values():
        cls, inputs = node["class_type"], node["inputs"]
        for (ct, name), demo in MODEL_INPUTS.items():
            if ct == cls and isinstance(inputs.get(name), str):
                inputs[name] = demo
        if cls in PIXEL_INPUTS:
            names, multiple, minimum = PIXEL_INPUTS[cls]
            for name in names:
                if isinstance(inputs.get(name), int):
                    inputs[name] = _shrink(inputs[name], multiple, minimum)
        if cls == "ConditioningSetArea":  # offsets shrink with the canvas (no 64 px minimum)
            for name in ("x", "y"):
                if isinstance(inputs.get(name), int):
                    inputs[name] = _shrink(inputs[name], 8, 0)
        if cls == "ImageScaleToTotalPixels":
            inputs["megapixels"] = 0.01  # the node's minimum: about 100 x 100 px
        if cls in ("KSampler", "KSamplerAdvanced"):
            inputs["steps"] = STEPS
        if cls == "CLIPTextEncode" and isinstance(inputs.get("text"), str):
            inputs["text"] = re.sub(r"embedding:[^\s,()\[\]{}:]+",
                                    f"embedding:{DEMO_EMBEDDING_NAME}", inputs["text"])
    return out


def write_input_images(prompt: dict[str, Any], input_dir: Path) -> None:
    """A 96 x 64 RGBA stand-in for every image a LoadImage node names: a colour gradient with
    a transparent disc (the mask inpainting templates paint)."""
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    rgba = np.zeros((64, 96, 4), dtype=np.uint8)
    rgba[..., 0] = (xx / 95 * 255).astype(np.uint8)
    rgba[..., 1] = (yy / 63 * 255).astype(np.uint8)
    rgba[..., 2] = 128
    rgba[..., 3] = np.where((xx - 48) ** 2 + (yy - 32) ** 2 < 14 ** 2, 0, 255).astype(np.uint8)
    for node in prompt.values():
        if node["class_type"] == "LoadImage":
            path = input_dir / node["inputs"]["image"]
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(path)
