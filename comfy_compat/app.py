"""Builds the Starlette app that speaks ComfyUI's protocol: every route at /x and /api/x, the
/ws fan-out, /templates, and the stock editor's static files at /. The lifespan starts and stops
the backend. Never imports torch."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from comfy_compat import templates
from comfy_compat.errors import exception_handlers
from comfy_compat.routes import history, lego, media, object_info, prompt, system, userdata
from comfy_compat.routes.common import DEFAULT_MAX_UPLOAD, EdgeSettings
from comfy_compat.ws import Hub
from lego_backend.backend_api import BackendAPI
from web.frontend import frontend_root as installed_frontend_root

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
            "Expires": "0"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class OriginGuard:
    """Refuse cross-site requests to a loopback-bound server (a web page the user visits must
    not be able to queue prompts or read files): Origin host != Host on a loopback Host, or
    `Sec-Fetch-Site: cross-site`, is a 403."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._cross_site(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await Response("Forbidden: cross-origin request", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _cross_site(scope: Scope) -> bool:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if headers.get("sec-fetch-site") == "cross-site":
            return True
        origin, host = headers.get("origin"), headers.get("host")
        if not origin or not host:
            return False
        host_name = urlsplit("//" + host).hostname
        if host_name not in LOOPBACK:
            return False
        try:
            origin_name = urlsplit(origin).hostname
        except ValueError:
            return True
        return origin_name != host_name


def _frontend_routes(root: Path | None) -> list[BaseRoute]:
    if root is None or not (root / "index.html").is_file():
        async def missing(request: Request) -> Response:
            return HTMLResponse("<h1>LegoDiffusion</h1><p>The ComfyUI editor is not installed "
                                "(pip install comfyui-frontend-package). The API works.</p>")
        return [Route("/", missing, methods=["GET"])]

    async def index(request: Request) -> Response:
        return FileResponse(root / "index.html", media_type="text/html", headers=NO_CACHE)

    return [Route("/", index, methods=["GET"]),
            Mount("/", StaticFiles(directory=root, follow_symlink=False), name="frontend")]


def build_app(backend: BackendAPI, *, frontend_root: Path | None = None,
              max_upload_size: int = DEFAULT_MAX_UPLOAD) -> Starlette:
    edge = EdgeSettings(max_upload_size=max_upload_size)
    hub = Hub(backend, system.server_flags(max_upload_size))
    root = frontend_root if frontend_root is not None else installed_frontend_root()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.attach(asyncio.get_running_loop())
        await run_in_threadpool(backend.start)
        await run_in_threadpool(userdata.init_user_dir, backend.config.user_dir)
        try:
            yield
        finally:
            hub.detach()
            await run_in_threadpool(backend.stop)

    routes: list[BaseRoute] = [
        WebSocketRoute("/ws", hub.handle),
        WebSocketRoute("/api/ws", hub.handle),
        *prompt.routes(), *history.routes(), *object_info.routes(), *media.routes(),
        *system.routes(), *userdata.routes(), *templates.routes(), *lego.routes(),
        *_frontend_routes(root),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    app.add_middleware(OriginGuard)
    state: Any = app.state
    state.backend = backend
    state.hub = hub
    state.edge = edge
    state.settings_lock = asyncio.Lock()
    state.templates = templates.TemplateFiles()
    return app
