"""Running the app under uvicorn. Binds to loopback unless told otherwise: the server has no
authentication, so exposing it on a network is an explicit choice (--host 0.0.0.0)."""
from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from comfy_compat.app import build_app
from comfy_compat.routes.common import DEFAULT_MAX_UPLOAD
from lego_backend.backend_api import BackendAPI

log = logging.getLogger(__name__)


def serve(backend: BackendAPI, host: str = "127.0.0.1", port: int = 8188, *,
          frontend_root: Path | None = None, max_upload_size: int = DEFAULT_MAX_UPLOAD,
          log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C); the app's lifespan starts and stops the backend."""
    app = build_app(backend, frontend_root=frontend_root, max_upload_size=max_upload_size)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach this address can run prompts", host)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            ws_max_size=16 * 1024 * 1024, lifespan="on")
    uvicorn.Server(config).run()
