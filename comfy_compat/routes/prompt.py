"""POST/GET /prompt, GET/POST /queue, POST /interrupt, POST /free."""
from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from comfy_compat.errors import prompt_error, render_node_errors
from comfy_compat.jsonresp import json_response
from comfy_compat.routes.common import backend, call, parse_model, read_json, read_model, twin
from comfy_compat.schemas import FreeBody, InterruptBody, PromptBody, QueueBody
from lego_backend.runtime.records import PromptRecord, PromptRequest

SENSITIVE_EXTRA = ("auth_token_comfy_org", "api_key_comfy_org")


def is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (ValueError, AttributeError, TypeError):
        return False


def is_ui_workflow(prompt: Any) -> bool:
    return isinstance(prompt, dict) and "nodes" in prompt and "links" in prompt


def public_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """extra_data without credentials (never echoed back to clients)."""
    return {k: v for k, v in extra.items() if k not in SENSITIVE_EXTRA}


def queue_item(rec: PromptRecord) -> list[Any]:
    """ComfyUI's queue tuple: [number, prompt_id, prompt, extra_data, outputs_to_execute]."""
    return [rec.number, rec.prompt_id, rec.prompt, public_extra(rec.extra_data),
            list(rec.outputs_to_execute)]


async def post_prompt(request: Request) -> Response:
    data = await read_json(request, prompt_style=True, empty={})
    body = parse_model(data, PromptBody, prompt_style=True)
    if not isinstance(data, dict) or "prompt" not in data or body.prompt is None:
        raise prompt_error("no_prompt", "No prompt provided", "No prompt provided")
    if body.prompt_id is not None and not is_canonical_uuid(body.prompt_id):
        raise prompt_error("invalid_prompt_id", "Invalid prompt_id format",
                           f"prompt_id must be a lowercase hyphenated UUID, got {body.prompt_id!r}")
    prompt = body.prompt
    if is_ui_workflow(prompt):
        try:
            prompt = await call(backend(request).convert_workflow, prompt)
        except NotImplementedError:
            raise prompt_error(
                "invalid_prompt", "UI-format workflows are not supported by this server yet",
                "Send the API format (editor: Workflow > Export (API))") from None
    if not isinstance(prompt, dict):
        raise prompt_error("invalid_prompt", "Cannot execute because the prompt is not a JSON "
                           "object.", type(prompt).__name__)
    extra = dict(body.extra_data or {})
    source = request.headers.get("comfy-usage-source")
    if source and "comfy_usage_source" not in extra:
        extra["comfy_usage_source"] = source
    req = PromptRequest(prompt=prompt, client_id=body.client_id, extra_data=extra,
                        prompt_id=body.prompt_id, number=body.number, front=bool(body.front),
                        partial_execution_targets=body.partial_execution_targets)
    result = await call(backend(request).submit, req)
    return json_response({"prompt_id": result.prompt_id, "number": result.number,
                          "node_errors": render_node_errors(result.node_errors)})


async def get_prompt(request: Request) -> Response:
    return json_response({"exec_info": {"queue_remaining": backend(request).queue_remaining()}})


async def get_queue(request: Request) -> Response:
    running, pending = await call(backend(request).queue_items)
    return json_response({"queue_running": [queue_item(r) for r in running],
                          "queue_pending": [queue_item(r) for r in pending]})


async def post_queue(request: Request) -> Response:
    body = await read_model(request, QueueBody)
    b = backend(request)
    if body.clear:
        await call(b.clear_queue)
    if body.delete:
        await call(b.delete_queued, [str(x) for x in body.delete])
    return Response(status_code=200)


async def post_interrupt(request: Request) -> Response:
    body = await read_model(request, InterruptBody)
    await call(backend(request).interrupt, body.prompt_id)
    return Response(status_code=200)


async def post_free(request: Request) -> Response:
    body = await read_model(request, FreeBody)
    await call(backend(request).free, body.unload_models, body.free_memory)
    return Response(status_code=200)


def routes() -> list[BaseRoute]:
    return [
        *twin("/prompt", post_prompt, ["POST"]),
        *twin("/prompt", get_prompt, ["GET"]),
        *twin("/queue", get_queue, ["GET"]),
        *twin("/queue", post_queue, ["POST"]),
        *twin("/interrupt", post_interrupt, ["POST"]),
        *twin("/free", post_free, ["POST"]),
    ]
