"""Who may talk to the server: the bind policy (loopback unless --listen, and then only with a
token), the API token check on HTTP and /ws, the cross-site Origin guard and the Host guard
against DNS rebinding. Pure ASGI middleware, so it also covers the websocket handshake and the
editor's static files; the login form that sets the cookie is routes/login.py."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from comfy_compat.errors import error_response

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_ENV = "LEGO_AUTH_TOKEN"
COOKIE = "lego_auth"
COOKIE_MAX_AGE = 30 * 24 * 3600
MIN_TOKEN_LEN = 16
LOGIN_PATHS = frozenset({"/lego/login", "/api/lego/login"})


def is_loopback(host: str) -> bool:
    """True for a loopback address, or a comma-separated list of only loopback addresses."""
    return all(h in LOOPBACK or h.startswith("127.") for h in listen_addresses(host))


def listen_addresses(host: str) -> list[str]:
    """`--listen 127.0.0.1,192.168.1.5` (ComfyUI's form): the addresses to bind, in order."""
    return [h.strip() for h in host.split(",") if h.strip()] or ["127.0.0.1"]


@dataclass(frozen=True)
class Security:
    """The edge's access policy (built once from the serve flags)."""

    auth_token: str | None = None  # required on every request when set
    # Host header names accepted (None = any). A loopback-bound server accepts only loopback
    # names, so a page on a DNS-rebound domain (evil.example -> 127.0.0.1) is refused.
    allowed_hosts: frozenset[str] | None = None
    cors_origin: str | None = None  # the one cross-site origin allowed (and sent CORS headers)

    @classmethod
    def for_bind(cls, host: str, token: str | None, cors_origin: str | None = None) -> Security:
        return cls(auth_token=token or None,
                   allowed_hosts=LOOPBACK | set(listen_addresses(host))
                   if is_loopback(host) else None,
                   cors_origin=cors_origin.rstrip("/") if cors_origin else None)


def bind_error(host: str, token: str | None) -> str | None:
    """Why this (address, token) pair must not start, or None. Listening beyond loopback without
    a token would let anyone on the network run prompts and read every file the server serves:
    refused rather than an auto-generated token, which would end up in logs."""
    if token is not None and len(token) < MIN_TOKEN_LEN:
        return (f"--auth-token must be at least {MIN_TOKEN_LEN} characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not is_loopback(host) and not token:
        return (f"listening on {host} needs an API token: pass --auth-token TOKEN or set "
                f"{TOKEN_ENV} (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return None


def cookie_value(token: str) -> str:
    """What the cookie holds: derived from the token, so the cookie jar never has the token."""
    return hmac.new(token.encode(), b"lego-session-v1", hashlib.sha256).hexdigest()


def same(a: str | None, b: str) -> bool:
    """Constant-time equality (a missing value never matches)."""
    return a is not None and hmac.compare_digest(a.encode("utf-8", "replace"), b.encode())


def set_cookie(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, cookie_value(token), max_age=COOKIE_MAX_AGE, path="/",
                        httponly=True, samesite="strict", secure=secure)


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site: '//x', 'http://x')."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _refuse_ws(send: Send) -> None:
    # Closing before accept makes the server answer the handshake with HTTP 403.
    await send({"type": "websocket.close", "code": 1008})


class OriginGuard:
    """Refuse cross-site requests (a page the user visits must not queue prompts or read files
    through the user's browser): an Origin whose host:port differs from Host, `Sec-Fetch-Site:
    cross-site`, or a Host name this server does not answer to (DNS rebinding) is a 403 on HTTP
    and on the websocket, token or not. Clients that send no Origin (curl, scripts) pass."""

    def __init__(self, app: ASGIApp, security: Security):
        self.app = app
        self.security = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.problem(Headers(scope=scope))
            if problem is not None:
                if scope["type"] == "websocket":
                    await _refuse_ws(send)
                    return
                await error_response(403, f"Forbidden: {problem}")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def problem(self, headers: Headers) -> str | None:
        host = (headers.get("host") or "").lower()
        allowed = self.security.allowed_hosts
        if allowed is not None and host and _hostname(host) not in allowed:
            return "host not allowed"
        origin = headers.get("origin")
        if origin is not None and origin.rstrip("/") == self.security.cors_origin:
            return None
        if headers.get("sec-fetch-site") == "cross-site":
            return "cross-site request"
        if origin is None:
            return None
        try:
            netloc = urlsplit(origin).netloc.lower()
        except ValueError:
            return "bad origin"
        if not host or netloc != host:
            return "cross-origin request"
        return None


def _hostname(host: str) -> str | None:
    try:
        return urlsplit("//" + host).hostname
    except ValueError:
        return None


class AuthGuard:
    """With a token configured, every request (HTTP and /ws) must carry it: `Authorization:
    Bearer TOKEN`, the `lego_auth` cookie, or `?token=TOKEN`. A GET with `?token=` sets the
    cookie (HttpOnly, SameSite=Strict) and redirects to the same URL without it, so the token
    leaves the address bar; a browser navigation without credentials goes to /lego/login."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token
        self.cookie = cookie_value(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in LOGIN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self._has_credentials(headers):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                          keep_blank_values=True)
        if same(dict(query).get("token"), self.token):
            if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
                await self._redirect_clean(scope, query)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await _refuse_ws(send)
            return
        await self._unauthorized(scope, headers)(scope, receive, send)

    def _has_credentials(self, headers: Headers) -> bool:
        scheme, _, value = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and same(value.strip(), self.token):
            return True
        cookies = _cookies(headers.get("cookie") or "")
        return same(cookies.get(COOKIE), self.cookie)

    def _redirect_clean(self, scope: Scope, query: list[tuple[str, str]]) -> Response:
        rest = urlencode([(k, v) for k, v in query if k != "token"])
        response = RedirectResponse(quote(scope["path"]) + ("?" + rest if rest else ""), 303)
        set_cookie(response, self.token, scope.get("scheme") == "https")
        return response

    @staticmethod
    def _unauthorized(scope: Scope, headers: Headers) -> Response:
        if scope["method"] == "GET" and "text/html" in (headers.get("accept") or ""):
            target = quote(scope["path"])
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            return RedirectResponse("/lego/login?" + urlencode({"next": target}), 303)
        return error_response(401, "Unauthorized: this server needs its API token "
                                   "(Authorization: Bearer TOKEN, or log in at /lego/login)",
                              {"WWW-Authenticate": 'Bearer realm="lego"'})


def _cookies(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name not in out:
            out[name] = value.strip().strip('"')
    return out
