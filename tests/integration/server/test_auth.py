"""Nobody gets in: with an API token every HTTP route and /ws need it (Bearer header, the login
cookie, or ?token= on a first visit); cross-site requests are refused even with the token; a
loopback server refuses DNS-rebound Host names; no CORS headers unless asked for; `lego serve
--listen` without a token does not start. Real uvicorn server, real websocket client."""
from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from comfy_compat.app import build_app
from comfy_compat.openapi import OPS
from comfy_compat.security import COOKIE, Security, bind_error
from lego_backend import cli
from tests.integration.server.live import LiveServer
from tests.unit.compat.fake_backend import FakeBackend, api_prompt

TOKEN = "s3cret-token-for-tests-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def secured(fake: FakeBackend) -> Iterator[LiveServer]:
    with LiveServer(build_app(fake, security=Security.for_bind("127.0.0.1", TOKEN))) as srv:
        (fake.config.models_dir / "checkpoints" / "fake.safetensors").write_bytes(b"x")
        yield srv


def _client(srv: LiveServer, **kw) -> httpx.Client:
    return httpx.Client(base_url=srv.url, timeout=20, follow_redirects=False, **kw)


def _ws(srv: LiveServer, query: str = "", **headers: str):
    return connect(srv.ws_url + query, additional_headers=headers, open_timeout=10)


def _refused(srv: LiveServer, query: str = "", **headers: str) -> int:
    with pytest.raises(InvalidStatus) as info:
        _ws(srv, query, **headers)
    return info.value.response.status_code


def test_every_http_route_needs_the_token(secured: LiveServer):
    with _client(secured) as http:
        for path in ("/api/system_stats", "/object_info", "/api/queue", "/api/userdata?dir=x",
                     "/", "/api/view?filename=a.png", "/extensions/lego/lego-defaults.js"):
            r = http.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "token" in r.json()["error"]
        r = http.post("/api/prompt", json={"prompt": api_prompt()})
        assert r.status_code == 401 and secured.http.get("/api/queue", headers=BEARER).json()[
            "queue_pending"] == []  # nothing was queued
        assert http.get("/api/system_stats", headers={"Authorization": "Bearer wrong"}
                        ).status_code == 401
        assert http.get("/api/system_stats", headers={"Authorization": TOKEN}).status_code == 401
        assert http.get("/api/system_stats", headers=BEARER).status_code == 200
        r = http.post("/api/prompt", json={"prompt": api_prompt()}, headers=BEARER)
        assert r.status_code == 200 and r.json()["prompt_id"]


def test_first_visit_token_sets_cookie_and_cleans_url(secured: LiveServer):
    with _client(secured) as http:
        r = http.get(f"/api/view?filename=a.png&token={TOKEN}&type=output")
        assert r.status_code == 303
        assert r.headers["location"] == "/api/view?filename=a.png&type=output"
        set_cookie = r.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE}=") and TOKEN not in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
        assert "Path=/" in set_cookie
        # the client kept the cookie: later requests need nothing else
        assert http.get("/api/system_stats").status_code == 200
        assert http.get("/api/view?filename=a.png").status_code == 404  # authorised, absent
    with _client(secured) as http:
        assert http.get("/?token=wrong").status_code == 401
        http.cookies.set(COOKIE, "forged")
        assert http.get("/api/system_stats").status_code == 401


def test_login_form_sets_cookie_and_browser_navigation_goes_to_it(secured: LiveServer):
    with _client(secured) as http:
        r = http.get("/?x=1", headers={"Accept": "text/html,*/*"})
        assert r.status_code == 303 and r.headers["location"] == "/lego/login?next=%2F%3Fx%3D1"
        page = http.get("/lego/login?next=/%3Fx%3D1")
        assert page.status_code == 200 and 'type=password name=token' in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert re.search(r'name=next value="/\?x=1"', page.text)
        bad = http.post("/lego/login", data={"token": "nope", "next": "/"})
        assert bad.status_code == 401 and "Wrong token" in bad.text
        assert COOKIE not in http.cookies
        ok = http.post("/lego/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert ok.status_code == 303 and ok.headers["location"] == "/"  # never off-site
        assert http.get("/api/settings").status_code == 200
    with _client(secured) as http:
        ok = http.post("/api/lego/login", data={"token": TOKEN, "next": "/?x=1"})
        assert ok.headers["location"] == "/?x=1" and http.get("/object_info").status_code == 200


def test_websocket_needs_the_token_and_runs_a_prompt_with_it(secured: LiveServer):
    assert _refused(secured) == 403
    assert _refused(secured, "?clientId=a&token=wrong") == 403
    assert _refused(secured, Authorization="Bearer wrong") == 403
    cookie = httpx.Client(base_url=secured.url)
    cookie.post("/lego/login", data={"token": TOKEN})
    for query, headers in (("?clientId=h", BEARER), (f"?clientId=q&token={TOKEN}", {}),
                           ("?clientId=c", {"Cookie": f"{COOKIE}={cookie.cookies[COOKIE]}"})):
        with _ws(secured, query, **headers) as ws:
            first = json.loads(ws.recv(timeout=10))
            assert first["type"] == "status" and first["data"]["sid"] == query[10:11]
    cookie.close()
    with _ws(secured, "?clientId=run", **BEARER) as ws:
        ws.recv(timeout=10)
        r = secured.http.post("/api/prompt", headers=BEARER,
                              json={"prompt": api_prompt(steps=2), "client_id": "run"})
        pid = r.json()["prompt_id"]
        seen = []
        while not seen or seen[-1] != "execution_success":
            msg = ws.recv(timeout=20)
            if isinstance(msg, str) and json.loads(msg)["data"].get("prompt_id") == pid:
                seen.append(json.loads(msg)["type"])
        assert "progress" in seen and "executed" in seen


def test_cross_site_is_refused_even_with_the_token(secured: LiveServer):
    evil = {"Origin": "http://evil.example", **BEARER}
    with _client(secured) as http:
        assert http.post("/api/prompt", json={"prompt": api_prompt()}, headers=evil
                         ).status_code == 403
        # same host name, other port: another local web app is another origin
        other_port = {"Origin": f"http://127.0.0.1:{secured.port + 1}", **BEARER}
        assert http.post("/api/interrupt", headers=other_port).status_code == 403
        assert http.get("/api/settings", headers={"Sec-Fetch-Site": "cross-site", **BEARER}
                        ).status_code == 403
        same = {"Origin": secured.url, **BEARER}
        assert http.post("/api/interrupt", headers=same).status_code == 200
        r = http.get("/api/settings", headers=same)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    assert _refused(secured, Origin="http://evil.example", **BEARER) == 403


def test_loopback_server_refuses_dns_rebound_host(fake: FakeBackend):
    with LiveServer(build_app(fake, security=Security.for_bind("127.0.0.1", None))) as srv:
        assert srv.http.get("/api/system_stats").status_code == 200  # no token on loopback
        r = srv.http.get("/api/system_stats", headers={"Host": f"rebound.example:{srv.port}"})
        assert r.status_code == 403 and "host" in r.json()["error"]
        assert srv.http.get("/api/system_stats", headers={"Host": f"localhost:{srv.port}"}
                            ).status_code == 200
        sock = socket.create_connection(("127.0.0.1", srv.port))
        with pytest.raises(InvalidStatus) as info:  # the browser sends the rebound name as Host
            connect(f"ws://rebound.example:{srv.port}/ws", sock=sock, open_timeout=10)
        assert info.value.response.status_code == 403
        sock.close()


def test_cors_only_for_the_named_origin(fake: FakeBackend):
    app = build_app(fake, security=Security.for_bind("127.0.0.1", TOKEN,
                                                     cors_origin="https://app.example/"))
    with LiveServer(app) as srv, _client(srv) as http:
        pre = http.options("/api/prompt", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == "https://app.example"
        r = http.get("/api/system_stats", headers={"Origin": "https://app.example", **BEARER})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert http.get("/api/system_stats", headers={"Origin": "https://app.example"}
                        ).status_code == 401  # CORS does not replace the token
        assert http.get("/api/system_stats", headers={"Origin": "https://other.example",
                                                      **BEARER}).status_code == 403


def test_listen_needs_a_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]):
    started: list[dict] = []
    monkeypatch.setattr("comfy_compat.server.serve",
                        lambda backend, **kw: started.append(kw))
    monkeypatch.setattr("lego_backend.backend.Backend",
                        lambda config: SimpleNamespace(claim_data_dir=lambda: None))
    monkeypatch.setenv("LEGO_HOME", str(tmp_path))
    monkeypatch.delenv("LEGO_AUTH_TOKEN", raising=False)
    assert cli.main(["serve", "--listen"]) == 2
    assert "--auth-token" in capsys.readouterr().err and not started
    assert cli.main(["serve", "--host", "0.0.0.0"]) == 2
    assert cli.main(["serve", "--listen", "--auth-token", "short"]) == 2
    assert "at least 16" in capsys.readouterr().err and not started

    assert cli.main(["serve", "--listen", "--auth-token", TOKEN, "--port", "9"]) == 0
    assert started[-1]["host"] == "0.0.0.0" and started[-1]["auth_token"] == TOKEN
    monkeypatch.setenv("LEGO_AUTH_TOKEN", TOKEN)
    assert cli.main(["serve", "--listen", "192.0.2.1"]) == 0
    assert started[-1]["host"] == "192.0.2.1" and started[-1]["auth_token"] == TOKEN
    monkeypatch.delenv("LEGO_AUTH_TOKEN")
    assert cli.main(["serve", "--max-upload-size", "2.5"]) == 0  # loopback: no token needed
    assert started[-1]["host"] == "127.0.0.1" and started[-1]["auth_token"] is None
    assert started[-1]["max_upload_size"] == int(2.5 * 1024 * 1024)
    assert bind_error("::1", None) is None and bind_error("10.0.0.1", None)


def test_every_documented_operation_needs_the_token(secured: LiveServer):
    with _client(secured) as http:
        for op in OPS:
            path = re.sub(r"\{[^}]+\}", "x", op.path)
            r = http.request(op.method.upper(), path)
            if op.path == "/lego/login":  # the form itself (an empty POST is a wrong token)
                assert "text/html" in r.headers["content-type"], (op.method, path)
            else:
                assert r.status_code == 401, (op.method, path, r.status_code)
