"""System and editor-support routes: /system_stats, /features, /extensions, /i18n,
/node_replacements, /global_subgraphs, /workflow_templates, and the /internal/* sub-app
(no /api twin, as in ComfyUI)."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from comfy_compat.jsonresp import json_response
from comfy_compat.routes.common import backend, call, media_dir, settings, twin
from web.frontend import REQUIRED_FRONTEND_VERSION

# The ComfyUI server version whose protocol this edge implements (reported as comfyui_version).
COMFYUI_COMPAT_VERSION = "0.3.64"
TEMPLATES_PACKAGE = "comfyui-workflow-templates-core"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _memory() -> tuple[int, int]:
    """(total, available) RAM in bytes."""
    try:
        info: dict[str, int] = {}
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
        return info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
    except (OSError, KeyError, ValueError, IndexError):
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return 0, 0


def server_flags(max_upload_size: int) -> dict[str, Any]:
    """What /features returns and the websocket sends in reply to the client's feature_flags."""
    return {"supports_preview_metadata": True, "max_upload_size": max_upload_size,
            "node_replacements": True, "assets": False}


async def system_stats(request: Request) -> Response:
    total, free = _memory()
    templates = _version(TEMPLATES_PACKAGE)
    return json_response({
        "system": {
            "os": sys.platform,
            "ram_total": total,
            "ram_free": free,
            "comfyui_version": COMFYUI_COMPAT_VERSION,
            "lego_version": _version("lego-diffusion"),
            "required_frontend_version": REQUIRED_FRONTEND_VERSION,
            "installed_templates_version": templates,
            "required_templates_version": templates,
            "python_version": sys.version,
            "pytorch_version": _version("torch"),  # metadata only: the edge never imports torch
            "embedded_python": False,
            # No paid API nodes here; this flag also stops the editor's release check against
            # api.comfy.org (the server may have no internet).
            "argv": [*sys.argv, "--disable-api-nodes"],
        },
        "devices": [{"name": f"cpu ({platform.machine()})", "type": "cpu", "index": None,
                     "vram_total": total, "vram_free": free,
                     "torch_vram_total": 0, "torch_vram_free": 0}],
    })


async def features(request: Request) -> Response:
    return json_response(server_flags(settings(request).max_upload_size))


def _constant(value: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        return json_response(value)
    return endpoint


async def global_subgraph(request: Request) -> Response:
    return json_response(None)


# --- /internal (no /api twin) ------------------------------------------------------------------
async def internal_logs(request: Request) -> Response:
    return json_response("")


async def internal_logs_raw(request: Request) -> Response:
    return json_response({"entries": [], "size": {"cols": 120, "rows": 40}})


async def internal_logs_subscribe(request: Request) -> Response:
    return Response(status_code=200)


async def internal_folder_paths(request: Request) -> Response:
    return json_response(await call(backend(request).model_folders))


def _files_newest_first(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    entries = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            entries.append((path.stat().st_mtime, path.relative_to(folder).as_posix()))
    return [rel for _, rel in sorted(entries, reverse=True)]


async def internal_files(request: Request) -> Response:
    folder = media_dir(request, request.path_params["kind"])
    return json_response(await call(_files_newest_first, folder))


def routes() -> list[BaseRoute]:
    return [
        *twin("/system_stats", system_stats, ["GET"]),
        *twin("/features", features, ["GET"]),
        *twin("/i18n", _constant({}), ["GET"]),
        *twin("/node_replacements", _constant({}), ["GET"]),
        *twin("/global_subgraphs", _constant({}), ["GET"]),
        *twin("/global_subgraphs/{subgraph_id}", global_subgraph, ["GET"]),
        *twin("/workflow_templates", _constant({}), ["GET"]),
        Route("/internal/logs", internal_logs, methods=["GET"]),
        Route("/internal/logs/raw", internal_logs_raw, methods=["GET"]),
        Route("/internal/logs/subscribe", internal_logs_subscribe, methods=["PATCH"]),
        Route("/internal/folder_paths", internal_folder_paths, methods=["GET"]),
        Route("/internal/files/{kind}", internal_files, methods=["GET"]),
    ]
