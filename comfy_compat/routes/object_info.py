"""/object_info, /models, /experiment/models (model library), /embeddings, /view_metadata."""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from comfy_compat.errors import simple_error
from comfy_compat.jsonresp import json_response
from comfy_compat.paths import safe_join
from comfy_compat.routes.common import backend, call, twin
from lego_backend.errors import UnsafePathError

HIDDEN_FOLDERS = ("configs", "custom_nodes")
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


async def object_info(request: Request) -> Response:
    return json_response(await call(backend(request).object_info))


async def object_info_class(request: Request) -> Response:
    info = await call(backend(request).object_info)
    name = request.path_params["node_class"]
    return json_response({name: info[name]} if name in info else {})


async def models(request: Request) -> Response:
    folders = await call(backend(request).model_folders)
    return json_response(list(folders))


async def models_in(request: Request) -> Response:
    names = await call(backend(request).list_models, request.path_params["folder"])
    if names is None:
        raise simple_error(404, "Unknown model folder")
    return json_response(names)


async def experiment_models(request: Request) -> Response:
    folders = await call(backend(request).model_folders)
    return json_response([{"name": k, "folders": v} for k, v in folders.items()
                          if k not in HIDDEN_FOLDERS])


def _locate(dirs: list[str], name: str) -> tuple[int, Path] | None:
    for index, d in enumerate(dirs):
        try:
            path = safe_join(Path(d), name)
        except UnsafePathError:
            continue
        if path.exists():
            return index, path
    return None


def _model_entries(request: Request, folder: str) -> list[dict[str, Any]] | None:
    b = backend(request)
    names = b.list_models(folder)
    if names is None:
        return None
    dirs = b.model_folders().get(folder, [])
    entries = []
    for name in names:
        found = _locate(dirs, name)
        entry: dict[str, Any] = {"name": name, "pathIndex": found[0] if found else 0}
        if found is not None:
            st = found[1].stat()
            entry.update(modified=st.st_mtime, created=st.st_ctime, size=st.st_size)
        entries.append(entry)
    return entries


async def experiment_models_in(request: Request) -> Response:
    entries = await call(_model_entries, request, request.path_params["folder"])
    if entries is None:
        raise simple_error(404, "Unknown model folder")
    return json_response(entries)


async def experiment_preview(request: Request) -> Response:
    return Response(status_code=404)  # no model preview images


async def embeddings(request: Request) -> Response:
    names = await call(backend(request).list_models, "embeddings") or []
    return json_response([n.rsplit(".", 1)[0] if "." in n else n for n in names])


def _safetensors_metadata(request: Request, folder: str, filename: str) -> Any:
    b = backend(request)
    names = b.list_models(folder)
    if names is None or filename not in names or not filename.endswith(".safetensors"):
        return None
    found = _locate(b.model_folders().get(folder, []), filename)
    if found is None or not found[1].is_file():
        return None
    with open(found[1], "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            return None
        (length,) = struct.unpack("<Q", head)
        if length > MAX_SAFETENSORS_HEADER:
            return None
        try:
            header = json.loads(f.read(length))
        except ValueError:
            return None
    return header.get("__metadata__") if isinstance(header, dict) else None


async def view_metadata(request: Request) -> Response:
    filename = request.query_params.get("filename", "")
    meta = await call(_safetensors_metadata, request, request.path_params["folder"], filename)
    if meta is None:
        return Response(status_code=404)
    return json_response(meta)


def routes() -> list[BaseRoute]:
    return [
        *twin("/object_info", object_info, ["GET"]),
        *twin("/object_info/{node_class}", object_info_class, ["GET"]),
        *twin("/models", models, ["GET"]),
        *twin("/models/{folder}", models_in, ["GET"]),
        *twin("/experiment/models", experiment_models, ["GET"]),
        *twin("/experiment/models/{folder}", experiment_models_in, ["GET"]),
        *twin("/experiment/models/preview/{folder}/{index}/{filename:path}", experiment_preview,
              ["GET"]),
        *twin("/embeddings", embeddings, ["GET"]),
        *twin("/view_metadata/{folder}", view_metadata, ["GET"]),
    ]
