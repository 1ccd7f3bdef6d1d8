"""The server's OpenAPI 3.1 document: one row per route (what a client sends, what it gets),
request bodies from the pydantic models in schemas.py. Served at /lego/openapi.json, shipped as
docs/openapi.json (`python -m comfy_compat.openapi > docs/openapi.json`), and what the
schemathesis test fuzzes. Every JSON route also answers at /api/<path>; the document lists the
/api form, which the editor uses. The /ws websocket is described in `info.description`."""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from comfy_compat import schemas

VERSION = "0.1.0"
_JSON = "application/json"
_ANY: dict[str, Any] = {}


@dataclass(frozen=True)
class Op:
    method: str
    path: str  # Starlette form ({name} or {name:path}); /api twin added unless bare
    summary: str
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, JSON type, required)
    body: type[BaseModel] | str | None = None  # a model, "json", "form", "login", "bytes"
    ok: str = _JSON  # media type of the 200 answer ("" = empty body)
    bare: bool = False  # no /api twin (ComfyUI's /internal, static files)


_STR, _INT, _BOOL = "string", "integer", "boolean"
OPS: tuple[Op, ...] = (
    Op("post", "/prompt", "Queue a prompt (API format or UI workflow)", body=schemas.PromptBody),
    Op("get", "/prompt", "Queue size"),
    Op("get", "/queue", "Running and pending prompts"),
    Op("post", "/queue", "Drop pending prompts", body=schemas.QueueBody, ok=""),
    Op("post", "/interrupt", "Interrupt the running prompt", body=schemas.InterruptBody, ok=""),
    Op("post", "/free", "Unload models / free cached outputs", body=schemas.FreeBody, ok=""),
    Op("get", "/history", "Finished prompts",
       query=(("max_items", _INT, False), ("offset", _INT, False))),
    Op("post", "/history", "Forget finished prompts", body=schemas.HistoryBody, ok=""),
    Op("get", "/history/{prompt_id}", "One finished prompt"),
    Op("get", "/jobs", "Jobs (queue and history) for the editor's panel",
       query=(("status", _STR, False), ("sort_by", _STR, False), ("sort_order", _STR, False),
              ("limit", _INT, False), ("offset", _INT, False), ("workflow_id", _STR, False))),
    Op("post", "/jobs/cancel", "Cancel jobs", body=schemas.JobsCancelBody),
    Op("get", "/jobs/{job_id}", "One job with outputs and workflow"),
    Op("post", "/jobs/{job_id}/cancel", "Cancel one job"),
    Op("get", "/object_info", "Every node class: inputs, outputs, categories"),
    Op("get", "/object_info/{node_class}", "One node class"),
    Op("get", "/models", "Model folder names"),
    Op("get", "/models/{folder}", "Model files in a folder"),
    Op("get", "/experiment/models", "Model folders for the model library"),
    Op("get", "/experiment/models/{folder}", "Model files with sizes and dates"),
    Op("get", "/experiment/models/preview/{folder}/{index}/{filename:path}",
       "Model preview image (none here: 404)", ok="image/webp"),
    Op("get", "/embeddings", "Textual inversion names"),
    Op("get", "/view_metadata/{folder}", "A safetensors file's __metadata__",
       query=(("filename", _STR, True),)),
    Op("get", "/view", "An output, input or temp file (optionally re-encoded)",
       query=(("filename", _STR, True), ("type", _STR, False), ("subfolder", _STR, False),
              ("preview", _STR, False), ("channel", _STR, False)), ok="image/png"),
    Op("post", "/upload/image", "Upload an image to input/ (or temp/, output/)", body="form"),
    Op("post", "/upload/mask", "Upload a mask onto an existing image's alpha", body="form"),
    Op("get", "/system_stats", "Versions, RAM, devices"),
    Op("get", "/features", "Server feature flags"),
    Op("get", "/i18n", "Node translations (none)"),
    Op("get", "/node_replacements", "Node replacements (none)"),
    Op("get", "/global_subgraphs", "Server subgraphs (none)"),
    Op("get", "/global_subgraphs/{subgraph_id}", "One server subgraph (none)"),
    Op("get", "/workflow_templates", "Custom node templates (none)"),
    Op("get", "/internal/logs", "Server log (empty)", bare=True),
    Op("get", "/internal/logs/raw", "Server log entries (none)", bare=True),
    Op("patch", "/internal/logs/subscribe", "Log subscription (accepted, no logs)", bare=True,
       ok=""),
    Op("get", "/internal/folder_paths", "Model folder paths", bare=True),
    Op("get", "/internal/files/{kind}", "Files of input/, output/ or temp/", bare=True),
    Op("get", "/users", "User storage mode (single user)"),
    Op("post", "/users", "Create a user (refused: single user)", body="json"),
    Op("get", "/settings", "All editor settings"),
    Op("post", "/settings", "Update editor settings", body="json", ok=""),
    Op("get", "/settings/{setting_id}", "One editor setting"),
    Op("post", "/settings/{setting_id}", "Set one editor setting", body="json", ok=""),
    Op("get", "/userdata", "Files in a user-data folder",
       query=(("dir", _STR, True), ("recurse", _BOOL, False), ("full_info", _BOOL, False),
              ("split", _BOOL, False))),
    Op("get", "/userdata/{file:path}", "A user-data file (name URL-encoded)",
       ok="application/octet-stream"),
    Op("post", "/userdata/{file:path}", "Write a user-data file (or FILE/move/DEST)",
       query=(("overwrite", _BOOL, False), ("full_info", _BOOL, False)), body="bytes"),
    Op("delete", "/userdata/{file:path}", "Delete a user-data file", ok=""),
    Op("get", "/v2/userdata", "User-data folder listing", query=(("path", _STR, False),)),
    Op("get", "/user.css", "User stylesheet (empty)", ok="text/css"),
    Op("get", "/templates/{filename:path}", "Workflow template files", bare=True),
    Op("get", "/lego/services", "Model services, replicas, queues and batching"),
    Op("get", "/lego/default_workflow", "A runnable default graph for this server"),
    Op("get", "/lego/openapi.json", "This document"),
    Op("get", "/lego/login", "Token login form", ok="text/html"),
    Op("post", "/lego/login", "Log in: sets the session cookie and redirects", body="login",
       ok="text/html"),
    Op("get", "/extensions", "Editor extensions to load"),
    Op("get", "/extensions/lego/{name}", "This server's editor extension", bare=True,
       ok="application/javascript"),
    Op("get", "/", "The ComfyUI editor", bare=True, ok="text/html"),
)

_ERROR = {"type": "object", "properties": {"error": {}, "node_errors": {"type": "object"}},
          "required": ["error"]}
# An API-format prompt: node id -> {class_type, inputs}; an input is a value or [node_id, slot].
_API_PROMPT = {"type": "object", "additionalProperties": {
    "type": "object", "required": ["class_type", "inputs"],
    "properties": {"class_type": {"type": "string"}, "inputs": {
        "type": "object", "additionalProperties": {}}}}}
_FORM = {"type": "object", "required": ["image"], "properties": {
    "image": {"type": "string", "format": "binary"}, "type": {"type": "string"},
    "subfolder": {"type": "string"}, "overwrite": {"type": "string"},
    "original_ref": {"type": "string"}}}
_LOGIN = {"type": "object", "properties": {"token": {"type": "string"},
                                           "next": {"type": "string"}}}
_DESCRIPTION = (
    "ComfyUI-compatible API of LegoDiffusion. Each path also answers without the /api prefix. "
    "Websocket: GET /ws?clientId=ID (or /api/ws) streams {type, data} JSON messages (status, "
    "execution_start, execution_cached, executing, progress, executed, execution_success, "
    "execution_error, execution_interrupted) and binary preview frames. Client mistakes are "
    "4xx: POST /prompt answers {error: {type, message, details, extra_info}, node_errors}, "
    "other routes {error: message}; 413 past the body limit, 429 with Retry-After past the "
    "queue limits. A server started with --auth-token needs it on every request and on /ws.")


def _api_path(op: Op) -> str:
    path = re.sub(r"\{(\w+):path\}", r"{\1}", op.path)
    return path if op.bare or op.path.startswith("/api/") else "/api" + path


def _body(op: Op) -> dict[str, Any] | None:
    if op.body is None:
        return None
    if isinstance(op.body, type):
        ref = {"$ref": f"#/components/schemas/{op.body.__name__}"}
        return {"required": False, "content": {_JSON: {"schema": ref}}}
    content = {"json": {_JSON: {"schema": _ANY}},
               "form": {"multipart/form-data": {"schema": _FORM}},
               "login": {"application/x-www-form-urlencoded": {"schema": _LOGIN}},
               "bytes": {"application/octet-stream": {"schema": {"type": "string",
                                                                  "format": "binary"}}}}
    return {"required": op.body == "form", "content": content[op.body]}


def _operation(op: Op) -> dict[str, Any]:
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in re.findall(r"\{(\w+)(?::path)?\}", op.path)]
    params += [{"name": name, "in": "query", "required": required, "schema": {"type": typ}}
               for name, typ, required in op.query]
    ok: dict[str, Any] = {"description": "OK"}
    if op.ok:
        ok["content"] = {op.ok: {"schema": _ANY}}
    error = {"$ref": "#/components/responses/ClientError"}
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{op.method}_{re.sub(r'[^a-z0-9]+', '_', op.path.lower()).strip('_')}",
        "parameters": params,
        "responses": {"200": ok, "400": error, "401": error, "403": error, "404": error,
                      "413": error, "429": error},
    }
    body = _body(op)
    if body is not None:
        out["requestBody"] = body
    return out


def _components() -> dict[str, Any]:
    models = [schemas.PromptBody, schemas.QueueBody, schemas.HistoryBody, schemas.InterruptBody,
              schemas.FreeBody, schemas.JobsCancelBody, schemas.MaskRef]
    out: dict[str, Any] = {"Error": _ERROR, "ApiPrompt": _API_PROMPT}
    for model in models:
        out[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    prompt = out["PromptBody"]["properties"]["prompt"]
    prompt["anyOf"] = [{"$ref": "#/components/schemas/ApiPrompt"},
                       {"type": "object", "description": "UI workflow (nodes, links)"}]
    return out


def build_openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS:
        paths.setdefault(_api_path(op), {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "LegoDiffusion", "version": VERSION, "description": _DESCRIPTION},
        "paths": paths,
        "components": {"schemas": _components(), "responses": {"ClientError": {
            "description": "Client mistake", "content": {_JSON: {"schema": {
                "$ref": "#/components/schemas/Error"}}}}}, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "lego_auth"},
            "query": {"type": "apiKey", "in": "query", "name": "token"}}},
        # {} first: a loopback server without --auth-token needs nothing
        "security": [{}, {"bearer": []}, {"cookie": []}, {"query": []}],
    }


def main() -> int:
    sys.stdout.write(json.dumps(build_openapi(), indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
