"""Settings persisted on disk, /userdata and /v2/userdata round trips, confinement to the user
directory, on a real server."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.server.live import LiveServer

pytestmark = pytest.mark.slow


def test_settings_persist_per_user_on_disk(server: LiveServer, tmp_path: Path):
    http = server.http
    # a new user starts past the tutorial, on the runnable default graph
    assert http.get("/api/settings").json() == {"Comfy.TutorialCompleted": True}
    assert http.post("/api/settings", json={"Comfy.A": 1, "Comfy.B": "x"}).status_code == 200
    assert http.post("/settings/Comfy.C", json={"nested": [1, 2]}).status_code == 200
    assert http.get("/api/settings/Comfy.C").json() == {"nested": [1, 2]}
    assert http.get("/api/settings/Comfy.Missing").json() is None
    stored = json.loads((tmp_path / "data" / "user" / "default" / "comfy.settings.json")
                        .read_text())
    assert stored == {"Comfy.TutorialCompleted": True, "Comfy.A": 1, "Comfy.B": "x",
                      "Comfy.C": {"nested": [1, 2]}}
    assert http.post("/api/settings", json=[1]).status_code == 400
    assert http.get("/api/users").json() == {"storage": "server", "migrated": True}


def test_userdata_round_trip(server: LiveServer, tmp_path: Path):
    http, root = server.http, tmp_path / "data" / "user" / "default"
    # a fresh user dir answers the editor's page-load listings with 200
    assert http.get("/api/userdata", params={"dir": "workflows", "recurse": "true",
                                             "full_info": "true", "split": "false"}).json() == []
    assert http.get("/api/userdata/comfy.templates.json").json() == []

    r = http.post("/api/userdata/workflows%2Fa.json", content=b'{"x": 1}')
    assert r.status_code == 200 and r.json() == "workflows/a.json"
    assert (root / "workflows" / "a.json").read_bytes() == b'{"x": 1}'
    assert http.get("/api/userdata/workflows%2Fa.json").content == b'{"x": 1}'
    r = http.post("/api/userdata/workflows%2Fa.json?overwrite=false", content=b"{}")
    assert r.status_code == 409
    r = http.post("/api/userdata/workflows%2Fsub%2Fb.json?full_info=true", content=b"[]")
    assert r.json()["path"] == "workflows/sub/b.json" and r.json()["size"] == 2
    listing = http.get("/api/userdata", params={"dir": "workflows", "recurse": "true",
                                                "full_info": "true"}).json()
    assert sorted(e["path"] for e in listing) == ["a.json", "sub/b.json"]
    assert {"size", "modified", "created"} <= set(listing[0])
    assert http.get("/userdata", params={"dir": "workflows"}).json() == ["a.json"]
    assert http.get("/userdata", params={"dir": "workflows", "recurse": "true",
                                         "split": "true"}).json() == [
        ["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]]

    r = http.post("/api/userdata/workflows%2Fa.json/move/workflows%2Fc.json")
    assert r.status_code == 200 and r.json() == "workflows/c.json"
    assert not (root / "workflows" / "a.json").exists()
    r = http.post("/api/userdata/workflows%2Fc.json/move/workflows%2Fsub%2Fb.json"
                  "?overwrite=false")
    assert r.status_code == 409
    v2 = http.get("/api/v2/userdata", params={"path": "workflows"}).json()
    assert [(e["name"], e["type"]) for e in v2] == [("sub", "directory"), ("c.json", "file")]
    assert http.delete("/api/userdata/workflows%2Fc.json").status_code == 204
    assert http.get("/api/userdata/workflows%2Fc.json").status_code == 404
    assert http.delete("/api/userdata/workflows%2Fc.json").status_code == 404
    assert http.get("/api/userdata", params={"dir": "nothing"}).status_code == 404
    assert http.get("/api/userdata").status_code == 400
    assert http.get("/api/userdata/user.css").headers["content-type"].startswith("text/css")
    # a file used as a directory, html served inert
    assert http.post("/api/userdata/comfy.templates.json%2Fx", content=b"x").status_code == 400
    http.post("/api/userdata/page.html", content=b"<script>alert(1)</script>")
    r = http.get("/api/userdata/page.html")
    assert r.headers["content-type"] == "application/octet-stream"


def test_userdata_refuses_paths_outside_the_user_dir(server: LiveServer, tmp_path: Path):
    http = server.http
    (tmp_path / "data" / "secret.txt").write_text("secret")
    for r in (http.get("/api/userdata/..%2Fsecret.txt"),
              http.get("/api/userdata/..%2F..%2F..%2Fsecret.txt"),
              http.get("/api/userdata/%2Fetc%2Fpasswd"),
              http.get("/api/userdata", params={"dir": ".."}),
              http.get("/api/userdata", params={"dir": "/etc"}),
              http.get("/api/v2/userdata", params={"path": "../.."}),
              http.post("/api/userdata/..%2Fevil.txt", content=b"x"),
              http.post("/api/userdata/workflows%2F..%2F..%2Fevil.txt", content=b"x"),
              http.delete("/api/userdata/..%2Fsecret.txt"),
              http.post("/api/userdata/comfy.templates.json/move/..%2F..%2Fevil.json")):
        assert r.status_code == 403, (r.request.url, r.status_code)
        assert b"secret" not in r.content
    assert (tmp_path / "data" / "secret.txt").read_text() == "secret"
    assert not list(tmp_path.rglob("evil*"))
