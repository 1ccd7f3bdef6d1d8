"""GET /templates/{file}: workflow templates from `comfyui-workflow-templates-core` (manifest
and asset resolution) + `comfyui-workflow-templates-json` (index.json and workflow JSONs), and
media packages when present. Only file names listed in the manifest are served, so a request
cannot name arbitrary paths. Without the packages every request is a 404 (the editor then shows
an empty template list)."""
from __future__ import annotations

import importlib
import mimetypes
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from comfy_compat.routes.common import call


class TemplateFiles:
    """file name -> template id, built on first use from the installed manifest."""

    def __init__(self) -> None:
        self._index: dict[str, str] | None = None
        self._loader: Any = None

    def _load(self) -> dict[str, str]:
        if self._index is None:
            index: dict[str, str] = {}
            try:
                self._loader = importlib.import_module("comfyui_workflow_templates_core")
                for entry in self._loader.iter_templates():
                    for asset in entry.assets:
                        index.setdefault(asset.filename, entry.template_id)
            except (ImportError, OSError, ValueError, KeyError):
                index = {}
            self._index = index
        return self._index

    def resolve(self, filename: str) -> Path | None:
        template_id = self._load().get(filename)
        if template_id is None or self._loader is None:
            return None
        try:
            path = Path(self._loader.get_asset_path(template_id, filename))
        except (FileNotFoundError, KeyError, ModuleNotFoundError):
            return None
        return path if path.is_file() else None


async def serve_template(request: Request) -> Response:
    files: TemplateFiles = request.app.state.templates
    path = await call(files.resolve, request.path_params["filename"])
    if path is None:
        return Response("Not found", status_code=404, media_type="text/plain")
    media_type = "application/json" if path.suffix == ".json" else (
        mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    return FileResponse(path, media_type=media_type,
                        headers={"Cache-Control": "no-cache"} if path.name.startswith("index")
                        else None)


def routes() -> list[BaseRoute]:
    return [Route("/templates/{filename:path}", serve_template, methods=["GET"])]
