"""Fast JSON encoding for responses and websocket text frames (orjson, stdlib fallback for
values orjson refuses, e.g. integers beyond 64 bits)."""
from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response

_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_OPTS)
    except TypeError:
        return json.dumps(value, default=str).encode()


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


def json_response(value: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(value), status_code=status, headers=headers,
                    media_type="application/json")
