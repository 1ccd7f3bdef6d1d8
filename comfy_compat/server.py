"""Running the app under uvicorn. Binds to loopback unless told otherwise; listening on any other
address needs an API token (security.bind_error), which every request must then carry."""
from __future__ import annotations

import logging
import socket
from pathlib import Path

import uvicorn

from comfy_compat.app import build_app
from comfy_compat.routes.common import DEFAULT_MAX_UPLOAD
from comfy_compat.security import Security, bind_error, is_loopback, listen_addresses
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
    addresses = listen_addresses(host)
    config = uvicorn.Config(app, host=addresses[0], port=port, log_level=log_level,
                            ws_max_size=16 * 1024 * 1024, lifespan="on")
    server = uvicorn.Server(config)
    if len(addresses) == 1:
        server.run()
        return
    # uvicorn binds one host itself; for several, one listening socket each, all served by the
    # same app (and so the same backend and websocket hub).
    sockets = [_bound_socket(a, port) for a in addresses]
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


def _bound_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:  # "::" next to "0.0.0.0" must not claim IPv4 too
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((address.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock
