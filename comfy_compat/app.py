"""Builds the Starlette app that speaks ComfyUI's protocol: every route at /x and /api/x, the
/ws fan-out, /templates, and the stock editor's static files at /. The lifespan starts and stops
the backend. Never imports torch."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from comfy_compat import templates
from comfy_compat.errors import exception_handlers
from comfy_compat.routes import (
    history,
    lego,
    login,
    media,
    object_info,
    prompt,
    system,
    userdata,
)
from comfy_compat.routes.common import DEFAULT_MAX_UPLOAD, EdgeSettings
from comfy_compat.security import AuthGuard, OriginGuard, Security
from comfy_compat.ws import Hub
from lego_backend.backend_api import BackendAPI
from web.frontend import frontend_root as installed_frontend_root

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
            "Expires": "0"}


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
              max_upload_size: int = DEFAULT_MAX_UPLOAD,
              security: Security | None = None) -> Starlette:
    security = security or Security()
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
        *system.routes(), *userdata.routes(), *templates.routes(), *lego.routes(), *login.routes(),
        *_frontend_routes(root),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers())
    # Outermost last: CORS answers preflights, then the origin/host check, then the token.
    if security.auth_token is not None:
        app.add_middleware(AuthGuard, token=security.auth_token)
    app.add_middleware(OriginGuard, security=security)
    if security.cors_origin is not None:
        app.add_middleware(CORSMiddleware, allow_origins=[security.cors_origin],
                           allow_methods=["*"], allow_headers=["*"], allow_credentials=True)
    state: Any = app.state
    state.backend = backend
    state.hub = hub
    state.edge = edge
    state.security = security
    state.settings_lock = asyncio.Lock()
    state.templates = templates.TemplateFiles()
    return app
