"""LegoDiffusion's own routes: the services view, the editor extension and its runnable default
graph. (/extensions lists the extension so the stock editor imports it.)"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from comfy_compat.jsonresp import json_response
from comfy_compat.openapi import build_openapi
from comfy_compat.routes.common import backend, call, twin

WEB = Path(__file__).resolve().parents[2] / "web"
EXTENSION_DIR = WEB / "extension"
EXTENSIONS = ["/extensions/lego/lego-defaults.js"]
# The trained demo model draws what the prompt says; the random-weight one (tests, old installs)
# is the fallback, then whatever checkpoint the user has.
DEMO_CHECKPOINTS = ("lego-demo-shapes.safetensors", "lego-demo-sd15.safetensors")


async def services(request: Request) -> Response:
    return json_response(await call(backend(request).services_report))


def _default_workflow(checkpoints: list[str]) -> dict[str, Any]:
    workflow = json.loads((WEB / "default_workflow.json").read_text(encoding="utf-8"))
    ckpt = next((c for c in DEMO_CHECKPOINTS if c in checkpoints), (checkpoints or [None])[0])
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple" and ckpt is not None:
            node["widgets_values"] = [ckpt]
    return workflow


async def default_workflow(request: Request) -> Response:
    checkpoints = await call(backend(request).list_models, "checkpoints") or []
    return json_response(_default_workflow(checkpoints))


async def extension_file(request: Request) -> Response:
    name = request.path_params["name"]
    path = EXTENSION_DIR / name
    if "/" in name or name.startswith(".") or not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, media_type="application/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


async def openapi(request: Request) -> Response:
    return json_response(build_openapi())


async def extensions(request: Request) -> Response:
    return json_response(EXTENSIONS)


def routes() -> list[BaseRoute]:
    return [
        *twin("/lego/services", services, ["GET"]),
        *twin("/lego/default_workflow", default_workflow, ["GET"]),
        *twin("/lego/openapi.json", openapi, ["GET"]),
        *twin("/extensions", extensions, ["GET"]),
        Route("/extensions/lego/{name}", extension_file, methods=["GET"]),
    ]
