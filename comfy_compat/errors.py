"""The ONLY place that knows ComfyUI's error shapes. Routes raise typed errors (the backend's
LegoError tree, or `ClientError` for protocol mistakes); the handlers registered by
`exception_handlers()` turn them into the JSON bodies and status codes ComfyUI clients expect.
A client mistake is always a 4xx, never a 500."""
from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from comfy_compat.jsonresp import json_response
from lego_backend.errors import (
    BackPressureError,
    DuplicatePromptError,
    GraphValidationError,
    NodeValidationErrors,
    UnsafePathError,
    ValidationReason,
)


class ClientError(Exception):
    """A request the protocol edge refuses; carries its status and ready-made JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


def reason(type_: str, message: str, details: str = "",
           extra_info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": type_, "message": message, "details": details, "extra_info": extra_info or {}}


def prompt_error(type_: str, message: str, details: str = "", status: int = 400,
                 extra_info: dict[str, Any] | None = None) -> ClientError:
    """POST /prompt style: {"error": {type, message, details, extra_info}, "node_errors": {}}."""
    return ClientError(status, {"error": reason(type_, message, details, extra_info),
                                "node_errors": {}})


def simple_error(status: int, message: str, **extra: Any) -> ClientError:
    """Style of the newer routes (jobs, userdata, uploads): {"error": "message", ...}."""
    return ClientError(status, {"error": message, **extra})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """{"error": "message"} as a response, for middleware that answers before any route runs
    (auth, origin checks)."""
    return json_response({"error": message}, status=status, headers=headers)


def render_node_errors(node_errors: dict[str, NodeValidationErrors]) -> dict[str, Any]:
    return {
        str(node_id): {
            "errors": [r.as_dict() if isinstance(r, ValidationReason) else r for r in ne.errors],
            "dependent_outputs": list(ne.dependent_outputs),
            "class_type": ne.class_type,
        }
        for node_id, ne in node_errors.items()
    }


def render_validation_error(exc: GraphValidationError) -> dict[str, Any]:
    return {"error": exc.error.as_dict(), "node_errors": render_node_errors(exc.node_errors)}


async def _client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    return json_response(exc.body, status=exc.status, headers=exc.headers)


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GraphValidationError)
    return json_response(render_validation_error(exc), status=400)


async def _duplicate(request: Request, exc: Exception) -> Response:
    return json_response({"error": "prompt_id already exists"}, status=409)


async def _back_pressure(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BackPressureError)
    retry = max(1, math.ceil(exc.retry_after_s))
    body = {"error": reason("back_pressure", str(exc) or "Server busy, retry later",
                            f"retry after {retry} s", {"retry_after_s": exc.retry_after_s}),
            "node_errors": {}}
    return json_response(body, status=429, headers={"Retry-After": str(retry)})


async def _unsafe_path(request: Request, exc: Exception) -> Response:
    return json_response({"error": f"Forbidden path: {exc}"}, status=403)


def exception_handlers() -> dict[Any, Any]:
    """For Starlette(exception_handlers=...)."""
    return {ClientError: _client_error, GraphValidationError: _validation,
            DuplicatePromptError: _duplicate, BackPressureError: _back_pressure,
            UnsafePathError: _unsafe_path}
