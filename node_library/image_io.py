"""Writing and reading image files the way ComfyUI does: counters that never overwrite, prompt and
workflow PNG text chunks, input images with their alpha as a mask."""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin

from lego_backend.errors import UnsafePathError

_COUNTER = re.compile(r"^(?P<stem>.*)_(?P<n>\d{5})_\.png$")


def expand_prefix(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    subs = {"%width%": str(width), "%height%": str(height), "%year%": str(now.tm_year),
            "%month%": f"{now.tm_mon:02d}", "%day%": f"{now.tm_mday:02d}",
            "%hour%": f"{now.tm_hour:02d}", "%minute%": f"{now.tm_min:02d}",
            "%second%": f"{now.tm_sec:02d}"}
    for key, value in subs.items():
        prefix = prefix.replace(key, value)
    return prefix


def save_folder(root: Path, prefix: str) -> tuple[Path, str, str]:
    """Split `a/b/name` into (folder inside root, subfolder text, file stem); refuse escapes."""
    rel = Path(os.path.normpath(prefix))
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafePathError("Saving image outside the output folder is not allowed. "
                              f"filename_prefix: {prefix}")
    folder = (root / rel.parent).resolve()
    if not folder.is_relative_to(root.resolve()):
        raise UnsafePathError("Saving image outside the output folder is not allowed. "
                              f"filename_prefix: {prefix}")
    sub = "" if str(rel.parent) == "." else rel.parent.as_posix()
    return folder, sub, rel.name


def next_counter(folder: Path, stem: str) -> int:
    highest = 0
    if folder.is_dir():
        for entry in folder.iterdir():
            m = _COUNTER.match(entry.name)
            if m and m.group("stem") == stem:
                highest = max(highest, int(m.group("n")))
    return highest + 1


def to_pil(image: torch.Tensor) -> Image.Image:
    """One [H, W, C] image in 0..1 -> 8-bit PIL image."""
    arr = np.clip(image.detach().cpu().float().numpy() * 255.0, 0, 255).round().astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = arr[..., 0]
    return Image.fromarray(arr)


def png_info(prompt: dict[str, Any] | None,
             extra_pnginfo: dict[str, Any] | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    return info


def save_batch(images: torch.Tensor, root: Path, prefix: str, kind: str, compress_level: int,
               prompt: dict[str, Any] | None,
               extra_pnginfo: dict[str, Any] | None) -> list[dict[str, str]]:
    """Save [B, H, W, C] images as `<prefix>_NNNNN_.png`; returns ComfyUI ui image items."""
    prefix = expand_prefix(prefix, images.shape[2], images.shape[1])
    folder, sub, stem = save_folder(root, prefix)
    folder.mkdir(parents=True, exist_ok=True)
    counter = next_counter(folder, stem.replace("%batch_num%", "0"))
    items = []
    for batch_num, image in enumerate(images):
        name_stem = stem.replace("%batch_num%", str(batch_num))
        # Write under a temporary name of our own, then publish it: a crash never leaves half
        # a PNG behind, and concurrent prompts never write into each other's file.
        tmp = folder / f".{name_stem}.{uuid.uuid4().hex[:12]}.png.tmp"
        to_pil(image).save(tmp, format="PNG", pnginfo=png_info(prompt, extra_pnginfo),
                           compress_level=compress_level)
        while not publish(tmp, folder / f"{name_stem}_{counter:05}_.png"):
            counter += 1  # another prompt took this number since we looked
        items.append({"filename": f"{name_stem}_{counter:05}_.png", "subfolder": sub,
                      "type": kind})
        counter += 1
    return items


def publish(tmp: Path, final: Path) -> bool:
    """Give a fully written file its final name unless that name exists (an output is never
    overwritten); False if it was taken."""
    try:
        os.link(tmp, final)  # atomic, and refuses an existing name
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: check, then rename
        if final.exists():
            return False
        os.replace(tmp, final)
        return True
    os.unlink(tmp)
    return True


def annotated(name: str) -> tuple[str, str | None]:
    """`file.png [output]` -> ("file.png", "output")."""
    for kind in ("input", "output", "temp"):
        tag = f" [{kind}]"
        if name.endswith(tag):
            return name[: -len(tag)], kind
    return name, None


def resolve_image(name: str, dirs: dict[str, Path]) -> Path:
    """Find an image named as LoadImage's combo names it, confined to its folder."""
    name, kind = annotated(name)
    root = dirs[kind or "input"].resolve()
    rel = Path(os.path.normpath(name))
    if rel.is_absolute() or ".." in rel.parts:
        raise UnsafePathError(f"Invalid image file: {name}")
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        raise UnsafePathError(f"Invalid image file: {name}")
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# what Pillow raises on garbage or hostile files
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error,
                 Image.DecompressionBombError)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding it."""
    with Image.open(path) as img:
        return img.size


def load_image(path: Path, max_pixels: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (IMAGE [1, H, W, 3] in 0..1, MASK [1, H, W] = 1 - alpha, or zeros 64x64 if no alpha).
    An image of more than `max_pixels` pixels is refused before it is decoded (a small file can
    declare a huge canvas: a decompression bomb)."""
    with Image.open(path) as img:
        if max_pixels is not None and img.size[0] * img.size[1] > max_pixels:
            raise ValueError(f"{path.name} is {img.size[0]}x{img.size[1]} pixels, over this "
                             f"server's limit of {max_pixels} (lego serve --max-pixels)")
        img = ImageOps.exif_transpose(img)
        has_alpha = "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info)
        rgba = img.convert("RGBA")
    arr = np.asarray(rgba).astype(np.float32) / 255.0
    image = torch.from_numpy(arr[..., :3].copy()).unsqueeze(0)
    if has_alpha:
        mask = 1.0 - torch.from_numpy(arr[..., 3].copy()).unsqueeze(0)
    else:
        mask = torch.zeros(1, 64, 64)
    return image, mask


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def list_input_images(input_dir: Path) -> list[str]:
    """Image names under `input_dir`; a symlink leading out of it is never offered (LoadImage
    would refuse it anyway: resolve_image)."""
    if not input_dir.is_dir():
        return []
    root = input_dir.resolve()
    return sorted(p.relative_to(input_dir).as_posix() for p in input_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith(".") and p.resolve().is_relative_to(root))
