"""GET /view (with preview= and channel=), POST /upload/image and /upload/mask."""
from __future__ import annotations

import io
import mimetypes
import os
import re
import struct
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute

from comfy_compat.errors import ClientError, simple_error
from comfy_compat.jsonresp import json_response
from comfy_compat.paths import is_plain_name, safe_join
from comfy_compat.routes.common import (
    backend,
    call,
    is_true,
    media_dir,
    parse_model,
    read_limited,
    settings,
    twin,
)
from comfy_compat.schemas import MaskRef
from lego_backend.errors import UnsafePathError

mimetypes.add_type("image/webp", ".webp")
_ANNOTATION = re.compile(r"^(.*) \[(output|input|temp)\]$")
_UNSAFE_INLINE = {".html", ".htm", ".js", ".mjs", ".css", ".svg", ".xml", ".xhtml"}
# what Pillow raises on garbage or hostile input
PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error,
                 Image.DecompressionBombError)
_PREVIEW_FORMATS = {"webp": "WEBP", "jpeg": "JPEG", "jpg": "JPEG"}


# --- /view ----------------------------------------------------------------------------------------
def _resolve_view(request: Request) -> Path:
    q = request.query_params
    filename = q.get("filename") or ""
    kind = q.get("type") or "output"
    m = _ANNOTATION.match(filename)
    if m:
        filename, kind = m.group(1), m.group(2)
    if not filename:
        raise simple_error(400, "filename is required")
    if filename.startswith(("/", "\\")) or ".." in filename:
        raise simple_error(400, "Invalid filename")
    base = media_dir(request, kind)
    try:
        path = safe_join(base, q.get("subfolder") or "", filename)
    except UnsafePathError:
        raise simple_error(403, "Forbidden subfolder") from None
    if not path.is_file():
        raise ClientError(404, {"error": "File not found"})
    return path


def _encode(path: Path, preview: str | None, channel: str, default_quality: int,
            max_pixels: int) -> tuple[bytes, str] | None:
    """Re-encoded bytes and MIME for preview/channel requests; None = serve the file as is
    (also for images over the pixel budget: never decoded here)."""
    try:
        img = Image.open(path)
        if img.size[0] * img.size[1] > max_pixels:
            return None
        img.load()
    except PILLOW_ERRORS:
        return None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if channel == "rgb":
        img = img.convert("RGB")
        has_alpha = False
    elif channel == "a":
        alpha = img.convert("RGBA").getchannel("A")
        img = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img.putalpha(alpha)
    elif img.mode not in ("RGB", "RGBA"):
        img = img.convert("RGBA" if has_alpha else "RGB")
    buf = io.BytesIO()
    if preview:
        fmt_name, _, quality_s = preview.partition(";")
        fmt = _PREVIEW_FORMATS.get(fmt_name.strip().lower(), "WEBP")
        try:
            quality = max(1, min(100, int(quality_s))) if quality_s else default_quality
        except ValueError:
            quality = default_quality
        if fmt == "JPEG" and (has_alpha or channel == "a"):
            fmt = "WEBP"  # JPEG has no alpha
        if fmt == "JPEG":
            img = img.convert("RGB")
        img.save(buf, format=fmt, quality=quality)
        return buf.getvalue(), "image/webp" if fmt == "WEBP" else "image/jpeg"
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue(), "image/png"


def _disposition(name: str) -> str:
    """`filename="..."` that survives quotes and non-latin-1 names (RFC 6266 filename*)."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"inline; filename=\"{ascii_name}\"; filename*=utf-8''{quote(name)}"


async def view(request: Request) -> Response:
    path = _resolve_view(request)
    preview = request.query_params.get("preview") or None
    channel = (request.query_params.get("channel") or "rgba").lower()
    if channel not in ("rgba", "rgb", "a"):
        raise simple_error(400, "channel must be rgba, rgb or a")
    if preview or channel != "rgba":
        encoded = await call(_encode, path, preview, channel, settings(request).preview_quality,
                             _max_pixels(request))
        if encoded is not None:
            data, mime = encoded
            return Response(data, media_type=mime,
                            headers={"Content-Disposition": _disposition(path.name)})
    ext = path.suffix.lower()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    disposition = "inline"
    image_fetch = request.headers.get("sec-fetch-dest") == "image"
    if ext in _UNSAFE_INLINE and not (ext == ".svg" and image_fetch):
        media_type, disposition = "application/octet-stream", "attachment"
    return FileResponse(path, media_type=media_type, filename=path.name,
                        content_disposition_type=disposition)


# --- uploads --------------------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, Any]:
    limit = settings(request).max_upload_size
    body = await read_limited(request, limit)
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    replay = Request(request.scope, receive)
    try:
        form = await replay.form(max_files=4, max_fields=32, max_part_size=limit)
    except (MultiPartException, ValueError, KeyError) as exc:  # malformed multipart
        raise simple_error(400, f"Invalid multipart form: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        out.setdefault(key, value)
    return out


def _store(folder: Path, name: str, data: bytes, overwrite: bool) -> str:
    """Write `data` as `folder/name`; without overwrite, an existing different file makes the
    name `stem (1).ext`, `stem (2).ext`... and identical content reuses the existing name."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, ext = os.path.splitext(name)
    path, n = folder / name, 0
    while not overwrite and path.exists():
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return path.name
        n += 1
        path = folder / f"{stem} ({n}){ext}"
    tmp = folder / f".upload-{uuid.uuid4().hex}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path.name


def _check_image(data: bytes, max_pixels: int) -> None:
    """A readable image of at most `max_pixels` pixels (judged from its header: a few KB of PNG
    can declare a canvas whose decoding would take gigabytes)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            img.verify()
    except PILLOW_ERRORS:  # garbage input
        raise simple_error(400, "Uploaded file is not an image this server can read") from None
    if width * height > max_pixels:
        raise simple_error(400, f"Uploaded image is {width}x{height} pixels, over this server's "
                                f"limit of {max_pixels} (lego serve --max-pixels)")


def _max_pixels(request: Request) -> int:
    return int(backend(request).config.max_pixels)


async def _upload_target(request: Request, form: dict[str, Any]
                         ) -> tuple[UploadFile, bytes, str, str, Path, bool]:
    image = form.get("image")
    if not isinstance(image, UploadFile) or not image.filename:
        raise simple_error(400, "No image file in the 'image' field")
    name = image.filename
    if not is_plain_name(name) or name.startswith("."):
        raise simple_error(400, "Invalid file name")
    kind = str(form.get("type") or "input")
    subfolder = str(form.get("subfolder") or "")
    try:
        folder = safe_join(media_dir(request, kind), subfolder)
    except UnsafePathError:
        raise simple_error(400, "Invalid subfolder") from None
    data = await image.read()
    if len(data) > settings(request).max_upload_size:
        raise simple_error(413, "Upload too large")
    return image, data, kind, subfolder, folder, is_true(str(form.get("overwrite") or ""))


async def upload_image(request: Request) -> Response:
    form = await _form(request)
    image, data, kind, subfolder, folder, overwrite = await _upload_target(request, form)
    _check_image(data, _max_pixels(request))
    name = await call(_store, folder, image.filename, data, overwrite)
    return json_response({"name": name, "subfolder": subfolder, "type": kind})


def _apply_mask(original: Path, mask_bytes: bytes, max_pixels: int) -> bytes:
    with Image.open(original) as src:
        if src.size[0] * src.size[1] > max_pixels:
            raise ValueError("original image over the pixel budget")
        base = src.convert("RGBA")
    with Image.open(io.BytesIO(mask_bytes)) as m:
        mask = m.getchannel("A") if "A" in m.getbands() else m.convert("L")
    if mask.size != base.size:
        mask = mask.resize(base.size, Image.Resampling.LANCZOS)
    base.putalpha(mask)
    buf = io.BytesIO()
    base.save(buf, format="PNG", compress_level=4)
    return buf.getvalue()


async def upload_mask(request: Request) -> Response:
    form = await _form(request)
    image, data, kind, subfolder, folder, overwrite = await _upload_target(request, form)
    _check_image(data, _max_pixels(request))
    try:
        ref = parse_model(orjson.loads(str(form.get("original_ref") or "")), MaskRef)
    except orjson.JSONDecodeError:
        raise simple_error(400, "original_ref must be a JSON object") from None
    try:
        original = safe_join(media_dir(request, ref.type), ref.subfolder, ref.filename)
    except UnsafePathError:
        raise simple_error(400, "Invalid original_ref path") from None
    if not original.is_file():
        raise simple_error(404, "Original image not found")
    try:
        merged = await call(_apply_mask, original, data, _max_pixels(request))
    except PILLOW_ERRORS:
        raise simple_error(400, "Original image cannot be read") from None
    name = await call(_store, folder, image.filename, merged, overwrite)
    return json_response({"name": name, "subfolder": subfolder, "type": kind})


def routes() -> list[BaseRoute]:
    return [
        *twin("/view", view, ["GET"]),
        *twin("/upload/image", upload_image, ["POST"]),
        *twin("/upload/mask", upload_mask, ["POST"]),
    ]
