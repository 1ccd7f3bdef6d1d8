"""Helpers shared by the route modules: the /x + /api/x twins, body parsing with ComfyUI-style
400s, access to the backend and to the edge's settings."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from comfy_compat.errors import ClientError, prompt_error, simple_error
from lego_backend.backend_api import BackendAPI

M = TypeVar("M", bound=BaseModel)
DEFAULT_MAX_UPLOAD = 100 * 1024 * 1024
# Deeper JSON is refused: stored prompts are copied, hashed, echoed and written into PNGs by
# recursive code (json, copy.deepcopy), which a 1000-deep list would crash. The editor's
# workflows with nested subgraphs stay far below this.
MAX_JSON_DEPTH = 100


@dataclass(frozen=True)
class EdgeSettings:
    """Options of the protocol edge itself (not of the backend)."""

    max_upload_size: int = DEFAULT_MAX_UPLOAD  # bytes; bigger uploads get 413
    preview_quality: int = 90  # /view?preview=fmt without ';quality'


def backend(request: Request) -> BackendAPI:
    return request.app.state.backend  # type: ignore[no-any-return]


def settings(request: Request) -> EdgeSettings:
    return request.app.state.edge  # type: ignore[no-any-return]


def twin(path: str, endpoint: Callable[..., Any], methods: list[str]) -> list[BaseRoute]:
    """The route at `path` and at `/api{path}` (the modern editor always uses /api)."""
    return [Route(path, endpoint, methods=methods),
            Route("/api" + path, endpoint, methods=methods)]


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) more than `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise simple_error(413, f"Request body too large (max {limit} bytes)")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise simple_error(413, f"Request body too large (max {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, prompt_style: bool = False,
                    empty: Any = None) -> Any:
    """The request's JSON body; an empty body gives `empty`; invalid JSON is a 400."""
    raw = await read_limited(request, settings(request).max_upload_size)
    if not raw.strip():
        return empty
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if prompt_style:
            raise prompt_error("invalid_json", "Request body is not valid JSON", str(exc)) from None
        raise simple_error(400, f"Request body is not valid JSON: {exc}") from None
    if too_deep(data, MAX_JSON_DEPTH):
        message = f"Request body is nested more than {MAX_JSON_DEPTH} levels deep"
        if prompt_style:
            raise prompt_error("invalid_json", message, "")
        raise simple_error(400, message)
    return data


def too_deep(value: Any, limit: int) -> bool:
    """Whether lists/objects nest deeper than `limit` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in item
                         if isinstance(child, (list, dict)))
    return False


async def read_model(request: Request, model: type[M], *, prompt_style: bool = False,
                     empty_ok: bool = True) -> M:
    data = await read_json(request, prompt_style=prompt_style, empty={} if empty_ok else None)
    return parse_model(data, model, prompt_style=prompt_style)


def parse_model(data: Any, model: type[M], *, prompt_style: bool = False) -> M:
    if not isinstance(data, dict):
        if prompt_style:
            raise prompt_error("invalid_request", "Request body must be a JSON object",
                               type(data).__name__)
        raise simple_error(400, "Request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                            for e in exc.errors())
        if prompt_style:
            raise prompt_error("invalid_request", "Invalid request body", details) from None
        raise simple_error(400, f"Invalid request body: {details}") from None


def int_param(request: Request, name: str, default: int | None = None,
              minimum: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise simple_error(400, f"{name} must be an integer") from None
    if minimum is not None and value < minimum:
        raise simple_error(400, f"{name} must be >= {minimum}")
    return value


def is_true(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a backend call off the event loop (it may list files or take a lock)."""
    return await run_in_threadpool(fn, *args)


def media_dir(request: Request, kind: str) -> Path:
    """The directory behind a ComfyUI `type` (output | input | temp)."""
    cfg = backend(request).config
    dirs = {"output": cfg.output_dir, "input": cfg.input_dir, "temp": cfg.temp_dir}
    if kind not in dirs:
        raise ClientError(400, {"error": f"Invalid type: {kind!r}"})
    return Path(dirs[kind])
