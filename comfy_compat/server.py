"""Running the app under uvicorn. Binds to loopback unless told otherwise; listening on any other
address needs an API token (security.bind_error), which every request must then carry."""
from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from comfy_compat.app import build_app
from comfy_compat.routes.common import DEFAULT_MAX_UPLOAD
from comfy_compat.security import Security, bind_error, is_loopback
from lego_backend.backend_api import BackendAPI

log = logging.getLogger(__name__)


def serve(backend: BackendAPI, host: str = "127.0.0.1", port: int = 8188, *,
          auth_token: str | None = None, cors_origin: str | None = None,
          frontend_root: Path | None = None, max_upload_size: int = DEFAULT_MAX_UPLOAD,
          log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl-C); the app's lifespan starts and stops the backend.
    Raises ValueError (before binding anything) for an address that would be unprotected."""
    problem = bind_error(host, auth_token)
    if problem is not None:
        raise ValueError(problem)
    security = Security.for_bind(host, auth_token, cors_origin)
    app = build_app(backend, frontend_root=frontend_root, max_upload_size=max_upload_size,
                    security=security)
    if not is_loopback(host):
        log.warning("listening on %s: requests need the API token", host)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            ws_max_size=16 * 1024 * 1024, lifespan="on")
    uvicorn.Server(config).run()
