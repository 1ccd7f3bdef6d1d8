"""Image nodes: save/preview/load and simple pixel ops. IMAGE values are handles of
[B, H, W, C] tensors in 0..1 (ComfyUI's layout); MASK values are [B, H, W]."""
from __future__ import annotations

import random
from typing import Any

import torch

from lego_backend.errors import UnsafePathError
from node_library import image_io
from node_library.inputs import COMBO, FLOAT, HIDDEN, INT, MAX_RESOLUTION, OUT, SOCKET, STRING
from node_library.limits import check_pixels, ensure_pixels
from node_library.resize import fill_missing_side, upscale
from node_library.spec import InputSpec, NodeOutput, NodeSpec

IMAGE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP = ("disabled", "center")


def save_image(ctx: Any, images: Any, filename_prefix: str) -> NodeOutput:
    items = image_io.save_batch(ctx.tensor(images), ctx.output_dir, filename_prefix, "output", 4,
                                ctx.prompt, ctx.extra_pnginfo)
    return NodeOutput((), {"images": items})


def preview_image(ctx: Any, images: Any) -> NodeOutput:
    rng = random.Random()
    prefix = "ComfyUI_temp_" + "".join(rng.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    items = image_io.save_batch(ctx.tensor(images), ctx.temp_dir, prefix, "temp", 1,
                                ctx.prompt, ctx.extra_pnginfo)
    return NodeOutput((), {"images": items})


def _dirs(ctx: Any) -> dict[str, Any]:
    return {"input": ctx.input_dir, "output": ctx.output_dir, "temp": ctx.temp_dir}


def load_image(ctx: Any, image: str) -> NodeOutput:
    pixels, mask = image_io.load_image(image_io.resolve_image(image, _dirs(ctx)),
                                       getattr(ctx, "max_pixels", None))
    return NodeOutput((ctx.put(pixels), ctx.put(mask)))


def load_image_fingerprint(ctx: Any, image: str) -> str:
    """The file's hash: replacing the file under the same name re-runs the node."""
    try:
        return image_io.file_sha256(image_io.resolve_image(image, _dirs(ctx)))
    except (OSError, UnsafePathError):
        return "missing"


def load_image_check(ctx: Any, image: str) -> tuple[str, str] | None:
    try:
        path = image_io.resolve_image(image, _dirs(ctx))
    except UnsafePathError:
        return "image", f"Invalid image file: {image}"
    if not path.is_file():
        return "image", f"Invalid image file: {image}"
    try:
        width, height = image_io.image_size(path)
    except image_io.PILLOW_ERRORS:
        return "image", f"Invalid image file: {image} (not an image this server can read)"
    limit = getattr(ctx, "max_pixels", None)
    if limit is not None and width * height > limit:
        return "image", (f"{image} is {width}x{height} pixels, over this server's limit of "
                         f"{limit} (lego serve --max-pixels)")
    return None


def _scale(ctx: Any, image: Any, method: str, width: int, height: int, crop: str) -> Any:
    px = ctx.tensor(image)
    h, w = px.shape[1:3]
    if width == 0 and height == 0:
        return image
    width, height = fill_missing_side(w, h, width, height)
    ensure_pixels(ctx, width, height, px.shape[0])
    out = upscale(px.permute(0, 3, 1, 2), width, height, method, crop)
    return ctx.put(out.permute(0, 2, 3, 1).clamp(0, 1).contiguous())


def image_scale(ctx: Any, image: Any, upscale_method: str, width: int, height: int,
                crop: str) -> NodeOutput:
    return NodeOutput((_scale(ctx, image, upscale_method, width, height, crop),))


def image_scale_by(ctx: Any, image: Any, upscale_method: str, scale_by: float) -> NodeOutput:
    h, w = ctx.tensor(image).shape[1:3]
    return NodeOutput((_scale(ctx, image, upscale_method, round(w * scale_by),
                              round(h * scale_by), "disabled"),))


def empty_image(ctx: Any, width: int, height: int, batch_size: int, color: int) -> NodeOutput:
    rgb = torch.tensor([(color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF],
                       dtype=torch.float32) / 255.0
    return NodeOutput((ctx.put(rgb.expand(batch_size, height, width, 3).contiguous()),))


def image_invert(ctx: Any, image: Any) -> NodeOutput:
    return NodeOutput((ctx.put(1.0 - ctx.tensor(image)),))


_HIDDEN = (HIDDEN("prompt", "PROMPT"), HIDDEN("extra_pnginfo", "EXTRA_PNGINFO"))

SPECS = [
    NodeSpec("SaveImage", "Save Image", "image",
             (SOCKET("images", "IMAGE", tooltip="The images to save."),
              STRING("filename_prefix", "ComfyUI",
                     tooltip="The prefix for the file to save. This may include formatting "
                             "information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% "
                             "to include values from nodes."),
              *_HIDDEN),
             (), save_image, description="Saves the input images to your ComfyUI output "
                                         "directory.", output_node=True),
    NodeSpec("PreviewImage", "Preview Image", "image",
             (SOCKET("images", "IMAGE"), *_HIDDEN), (), preview_image,
             description="Saves the input images to your ComfyUI output directory.",
             output_node=True),
    NodeSpec("LoadImage", "Load Image", "image",
             (InputSpec("image", "COMBO", choices_from="input_images", image_upload=True),),
             (OUT("IMAGE"), OUT("MASK")), load_image,
             fingerprint=load_image_fingerprint, validate=load_image_check,
             validate_takes=("image",)),
    NodeSpec("ImageScale", "Upscale Image", "image/upscaling",
             (SOCKET("image", "IMAGE"), COMBO("upscale_method", IMAGE_METHODS),
              INT("width", 512, 0, MAX_RESOLUTION, step=1),
              INT("height", 512, 0, MAX_RESOLUTION, step=1), COMBO("crop", CROP)),
             (OUT("IMAGE"),), image_scale, validate=check_pixels),
    NodeSpec("ImageScaleBy", "Upscale Image By", "image/upscaling",
             (SOCKET("image", "IMAGE"), COMBO("upscale_method", IMAGE_METHODS),
              FLOAT("scale_by", 1.0, 0.01, 8.0, step=0.01)),
             (OUT("IMAGE"),), image_scale_by),
    NodeSpec("EmptyImage", "EmptyImage", "image",
             (INT("width", 512, 1, MAX_RESOLUTION, step=1),
              INT("height", 512, 1, MAX_RESOLUTION, step=1),
              INT("batch_size", 1, 1, 4096),
              INT("color", 0, 0, 0xFFFFFF, step=1, extra={"display": "color"})),
             (OUT("IMAGE"),), empty_image, validate=check_pixels),
    NodeSpec("ImageInvert", "Invert Image", "image",
             (SOCKET("image", "IMAGE"),), (OUT("IMAGE"),), image_invert),
]
