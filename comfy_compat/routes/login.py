"""/lego/login: a small form that takes the API token and sets the session cookie, so the stock
editor (whose requests carry no Authorization header) works on a server started with
--auth-token. The only route AuthGuard lets through without credentials."""
from __future__ import annotations

import html
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from comfy_compat.errors import simple_error
from comfy_compat.routes.common import read_limited, twin
from comfy_compat.security import Security, safe_next, same, set_cookie

MAX_FORM = 8192  # bytes of the login form body
_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "form-action 'self'; frame-ancestors 'none'"}


def _security(request: Request) -> Security:
    return request.app.state.security  # type: ignore[no-any-return]


def _page(next_url: str, message: str = "", status: int = 200) -> Response:
    note = f"<p class=err>{html.escape(message)}</p>" if message else ""
    body = f"""<!doctype html><html><head><meta charset=utf-8><title>LegoDiffusion login</title>
<meta name=viewport content="width=device-width">
<style>body{{font:16px system-ui;max-width:26em;margin:4em auto}}input{{font:inherit;width:100%;
margin:.4em 0;padding:.4em;box-sizing:border-box}}.err{{color:#b00}}</style></head><body>
<h1>LegoDiffusion</h1><p>This server needs its API token.</p>{note}
<form method=post action="/lego/login"><input type=hidden name=next value="{html.escape(next_url)}">
<label>Token <input type=password name=token autocomplete=current-password autofocus></label>
<input type=submit value="Log in"></form></body></html>"""
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


async def login_form(request: Request) -> Response:
    return _page(safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    raw = await read_limited(request, MAX_FORM)
    try:
        fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:  # too many fields
        raise simple_error(400, "Invalid login form") from None
    token = (fields.get("token") or [""])[0]
    next_url = safe_next((fields.get("next") or ["/"])[0])
    expected = _security(request).auth_token
    if expected is None:  # no token configured: nothing to log in to
        return RedirectResponse(next_url, 303)
    if not same(token, expected):
        return _page(next_url, "Wrong token.", status=401)
    response = RedirectResponse(next_url, 303)
    set_cookie(response, expected, request.url.scheme == "https")
    return response


def routes() -> list[BaseRoute]:
    return [*twin("/lego/login", login_form, ["GET"]), *twin("/lego/login", login, ["POST"])]
