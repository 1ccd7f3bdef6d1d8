"""schemathesis over the server's own OpenAPI document (comfy_compat/openapi.py), against a real
server on 127.0.0.1 in front of the real Backend: every operation, schema-valid and
schema-violating requests, no 5xx and no hang (each call has a timeout); afterwards the server
still answers and still runs a prompt. Also: the document covers every route and the shipped
docs/openapi.json is current."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.routing import Route

from comfy_compat.app import build_app
from comfy_compat.openapi import OPS, build_openapi
from comfy_compat.security import Security
from tests.integration.server.conftest import make_config
from tests.integration.server.live import LiveServer, txt2img
from tests.unit.compat.fake_backend import FakeBackend

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
schema = schemathesis.openapi.from_dict(build_openapi())
CALL_TIMEOUT = 15  # seconds; a request slower than this counts as a hang
stats = {"calls": 0, "by_status": {}}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, demo_models: Path) -> Iterator[LiveServer]:
    from lego_backend.backend import Backend

    tmp = tmp_path_factory.mktemp("schemathesis")
    app = build_app(Backend(make_config(tmp, demo_models)),
                    security=Security.for_bind("127.0.0.1", None), max_upload_size=1 << 20)
    with LiveServer(app) as srv:
        yield srv


@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx(case: schemathesis.Case, live: LiveServer) -> None:
    response = case.call(base_url=live.url, timeout=CALL_TIMEOUT)
    stats["calls"] += 1
    stats["by_status"][response.status_code] = stats["by_status"].get(response.status_code, 0) + 1
    assert response.status_code < 500, (case.method, case.formatted_path, case.body,
                                        case.query, response.text[:500])


def test_server_still_answers_and_runs_prompts(live: LiveServer) -> None:
    assert stats["calls"] > len(OPS), stats  # the fuzzing above did run
    assert live.http.get("/api/system_stats").status_code == 200
    live.http.post("/api/queue", json={"clear": True})
    live.http.post("/api/interrupt")
    with live.ws("after-fuzz") as ws:
        r = live.http.post("/api/prompt", json={"prompt": txt2img(steps=2),
                                                "client_id": "after-fuzz"})
        assert r.status_code == 200, r.text
        ws.until_done(r.json()["prompt_id"], timeout=120)
    rec = live.http.get(f"/api/history/{r.json()['prompt_id']}").json()
    assert rec[r.json()["prompt_id"]]["status"]["status_str"] == "success"
    print(f"schemathesis: {stats['calls']} calls, statuses {sorted(stats['by_status'].items())}")


def test_document_covers_every_route(tmp_path: Path) -> None:
    app = build_app(FakeBackend(make_config(tmp_path, tmp_path / "models")))
    routes = {(m.lower(), r.path) for r in app.routes if isinstance(r, Route)
              for m in (r.methods or ()) if m != "HEAD"}
    documented = {(op.method, op.path) for op in OPS}
    bare = {(m, p) for m, p in routes if not p.startswith("/api/")}
    assert bare == documented


def test_shipped_document_is_current() -> None:
    assert json.loads(DOC.read_text()) == build_openapi(), (
        "docs/openapi.json is stale: python -m comfy_compat.openapi > docs/openapi.json")


def test_document_is_served(live: LiveServer) -> None:
    r = live.http.get("/lego/openapi.json")
    assert r.status_code == 200 and r.json()["paths"]["/api/prompt"]["post"]["requestBody"]
