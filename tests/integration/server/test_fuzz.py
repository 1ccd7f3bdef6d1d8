"""Hostile input, property-based (hypothesis), against a real server in front of the real
Backend and compiler: random prompt graphs (real node classes and inputs, random types, links
to missing nodes and slots, cycles, huge and non-finite numbers, unicode, deep nesting, garbage
bodies) are answered 200 or a ComfyUI-style 400 {error, node_errors}, never 5xx; the bodies of
/queue, /history, /interrupt, /upload/image and /userdata likewise, and nothing is written
outside the server's folders. The server still runs a prompt afterwards."""
from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from comfy_compat.app import build_app
from comfy_compat.security import Security
from tests.integration.server.conftest import make_config
from tests.integration.server.live import LiveServer, txt2img

pytestmark = pytest.mark.slow
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
OK_PROMPT = {200, 400, 413, 429}


class Fuzzed:
    def __init__(self, server: LiveServer, root: Path, classes: dict[str, Any]):
        self.server = server
        self.root = root  # tmp dir holding output/ input/ temp/ data/
        self.classes = classes
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.accepted = 0
        self.statuses: dict[int, int] = {}

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


@pytest.fixture(scope="module")
def fz(tmp_path_factory: pytest.TempPathFactory, demo_models: Path) -> Iterator[Fuzzed]:
    from lego_backend.backend import Backend

    root = tmp_path_factory.mktemp("fuzz")
    (root / "input").mkdir()
    Image.new("RGB", (8, 8), "red").save(root / "input" / "red.png")
    app = build_app(Backend(make_config(root, demo_models, max_concurrent_prompts=1)),
                    security=Security.for_bind("127.0.0.1", None), max_upload_size=1 << 20)
    with LiveServer(app) as srv:
        f = Fuzzed(srv, root, srv.http.get("/api/object_info").json())
        yield f
        f.http.close()


# --- strategies ------------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]))
SPECIAL = st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e999", "", " ", "\x00",
                           "../../etc/passwd", "/etc/passwd", "C:\\Windows\\win.ini",
                           "%2e%2e%2f", "embedding:../../x", "😀" * 50, "a" * 10000])
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=40), SPECIAL)
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def graphs(draw: st.DrawFn, classes: list[str], info: dict[str, Any]) -> Any:
    ids = draw(st.lists(st.one_of(st.integers(0, 30).map(str), st.text(max_size=6)),
                        min_size=0, max_size=8, unique=True))

    def link() -> list[Any]:
        target = draw(st.one_of(st.sampled_from(ids) if ids else st.just("1"),
                                st.text(max_size=4), st.integers(-5, 10**12), NUMBERS,
                                st.none()))
        slot = draw(st.one_of(st.integers(-2, 12), NUMBERS, st.text(max_size=3)))
        return [target, slot] if draw(st.booleans()) else [target, slot, draw(SCALARS)]

    def value(spec: Any) -> Any:
        kind = draw(st.integers(0, 5))
        if kind == 0:
            return link()
        if kind == 1 and isinstance(spec, list) and spec and isinstance(spec[0], list) \
                and spec[0]:
            return draw(st.sampled_from(spec[0]))  # a valid combo choice
        if kind == 2 and isinstance(spec, list) and len(spec) > 1 and isinstance(spec[1], dict):
            lo, hi = spec[1].get("min"), spec[1].get("max")
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
                return draw(st.sampled_from([lo, hi, hi + 1, lo - 1, spec[1].get("default")]))
        return draw(JSON)

    prompt: dict[str, Any] = {}
    for nid in ids:
        shape = draw(st.integers(0, 9))
        if shape == 0:
            prompt[nid] = draw(JSON)  # not a node at all
            continue
        cls = draw(st.sampled_from(classes)) if shape > 1 else draw(st.text(max_size=12))
        required = info.get(cls, {}).get("input", {}).get("required", {})
        names = list(required) + draw(st.lists(st.text(max_size=6), max_size=2))
        inputs = {n: value(required.get(n)) for n in names if draw(st.integers(0, 4))}
        node: dict[str, Any] = {"class_type": cls, "inputs": inputs}
        if shape == 9:
            node = {"class_type": draw(SCALARS), "inputs": draw(JSON)}
        prompt[nid] = node
    return prompt


def bodies(classes: list[str], info: dict[str, Any]) -> st.SearchStrategy[Any]:
    prompt = st.one_of(graphs(classes, info), JSON)
    extra = st.fixed_dictionaries({}, optional={
        "client_id": SCALARS, "prompt_id": st.one_of(SCALARS, st.uuids().map(str)),
        "extra_data": JSON, "number": SCALARS, "front": SCALARS,
        "partial_execution_targets": st.one_of(JSON, st.lists(st.text(max_size=3)))})
    with_prompt = st.builds(lambda p, e: {"prompt": p, **e}, prompt, extra)
    return st.one_of(with_prompt, with_prompt, with_prompt, JSON)


# --- the properties ---------------------------------------------------------------------------
def _post_prompt(fz: Fuzzed, raw: bytes) -> int:
    r = fz.http.post("/api/prompt", content=raw, headers={"Content-Type": "application/json"})
    fz.count(r.status_code)
    assert r.status_code in OK_PROMPT, (r.status_code, raw[:300], r.text[:300])
    body = r.json()
    if r.status_code == 200:
        fz.accepted += 1
        assert isinstance(body["prompt_id"], str) and isinstance(body["node_errors"], dict)
        # keep the queue empty: accepted random graphs must not pile up or run for long
        fz.http.post("/api/queue", json={"clear": True})
        fz.http.post("/api/interrupt")
    elif r.status_code == 400:
        assert set(body) == {"error", "node_errors"}, body
        assert {"type", "message"} <= set(body["error"]) and isinstance(body["node_errors"], dict)
    return r.status_code


def test_random_prompts_are_200_or_400(fz: Fuzzed) -> None:
    classes = sorted(fz.classes)

    @settings(FUZZ, max_examples=250)
    @given(bodies(classes, fz.classes))
    def run(body: Any) -> None:
        _post_prompt(fz, json.dumps(body, allow_nan=False).encode())

    run()
    assert fz.statuses.get(400, 0) > 50, fz.statuses


def test_hand_picked_hostile_prompts(fz: Fuzzed) -> None:
    chain = {"0": {"class_type": "EmptyLatentImage",
                   "inputs": {"width": 64, "height": 64, "batch_size": 1}}}
    for i in range(1, 4000):  # a 4000-deep chain of links (compile must not recurse per node)
        chain[str(i)] = {"class_type": "LatentUpscaleBy", "inputs": {
            "samples": [str(i - 1), 0], "upscale_method": "nearest-exact", "scale_by": 1.0}}
    chain["ckpt"] = {"class_type": "CheckpointLoaderSimple",
                     "inputs": {"ckpt_name": "lego-demo-sd15.safetensors"}}
    chain["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3999", 0],
                                                          "vae": ["ckpt", 2]}}
    chain["out"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "x",
                                                          "images": ["dec", 0]}}
    cycle = txt2img()
    cycle["3"]["inputs"]["latent_image"] = ["8", 0]  # KSampler <- VAEDecode <- KSampler
    deep: Any = 1
    for _ in range(900):  # deep, yet within what json.dumps (the client) can encode
        deep = [deep]
    deep_150: Any = {}
    for _ in range(150):
        deep_150 = {"a": deep_150}
    raws = [
        json.dumps({"prompt": chain}).encode(),
        json.dumps({"prompt": cycle}).encode(),
        json.dumps({"prompt": {str(i): {"class_type": "SaveImage", "inputs": {}}
                               for i in range(6000)}}).encode(),  # past MAX_NODES
        b'{"prompt": ' + b"[" * 100000 + b"]" * 100000 + b"}",  # nesting past any parser
        b'{"prompt": {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": NaN}}}}',
        b'{"prompt": {"1": {"class_type": "KSampler", "inputs": {"seed": 1e999}}}}',
        b'{"prompt": {"1": {"class_type": "KSampler", "inputs": {"seed": '
        + b"9" * 5000 + b"}}}}",
        b'{"prompt": {"1": {"class_type": "SaveImage", "inputs": {"x": ' + b"[" * 1000
        + b"]" * 1000 + b"}}}}",
        json.dumps({"prompt": {**txt2img(), "junk": {"class_type": "SaveImage", "inputs": {
            "images": ["8", 0], "filename_prefix": "x", "extra": deep_150}}}}).encode(),
        json.dumps({"prompt": txt2img(), "extra_data": {"x": deep_150}}).encode(),
        b'{"prompt": "\xff\xfe"}', b"\x00\x01", b"null", b"[]", b'"x"', b"{" * 3,
    ]
    for inputs in ({"width": 2**40, "height": 2**40, "batch_size": 2**40},
                   {"width": -(2**63), "height": 64, "batch_size": 1},
                   {"width": [deep], "height": {"__value__": [1]}, "batch_size": 1}):
        p = txt2img()
        p["5"]["inputs"] = inputs
        raws.append(json.dumps({"prompt": p}).encode())
    for name in ("../../etc/passwd", "/etc/passwd", "..\\..\\x.safetensors", "a\x00b",
                 "checkpoints/../../x.safetensors", "x" * 5000):
        p = txt2img()
        p["4"]["inputs"]["ckpt_name"] = name
        raws.append(json.dumps({"prompt": p}).encode())
    coerced = txt2img()  # ComfyUI coerces numeric strings and floats for INT inputs
    coerced["5"]["inputs"] = {"width": 64.0, "height": "64", "batch_size": True}
    statuses = [_post_prompt(fz, raw) for raw in raws]
    assert statuses[0] == 200  # a 4000-deep chain is a valid graph
    assert statuses[1:] == [400] * (len(raws) - 1), statuses
    assert _post_prompt(fz, json.dumps({"prompt": coerced}).encode()) == 200


@st.composite
def uploads(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    png = io.BytesIO()
    Image.new("RGB", (draw(st.integers(1, 16)), draw(st.integers(1, 16)))).save(png, "PNG")
    content = draw(st.one_of(st.just(png.getvalue()), st.binary(max_size=256),
                             st.just(png.getvalue()[:40])))
    name = draw(st.one_of(st.sampled_from(["a.png", "../a.png", "/etc/x.png", "..", ".",
                                           ".hidden.png", "a/b.png", "a\\b.png", "",
                                           "😀.png", "con.png", "a" * 300 + ".png"]),
                          st.text(max_size=20)))
    fields = draw(st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["input", "output", "temp", "models", "", "../x"]),
        "subfolder": st.one_of(st.sampled_from(["", "sub", "../..", "/tmp", "a/../../b",
                                                "sub/../sub", "%2e%2e"]), st.text(max_size=10)),
        "overwrite": st.sampled_from(["true", "false", "1", "x", ""]),
        "original_ref": st.one_of(st.just('{"filename": "red.png"}'), st.text(max_size=20),
                                  JSON.map(json.dumps))}))
    return {"image": (name, content, "image/png")}, fields


def _files_outside(root: Path) -> set[str]:
    """Every file under `root`'s parent that is not inside the server's own folders."""
    allowed = [root / d for d in ("input", "output", "temp", "data")]
    out = set()
    for dirpath, _dirs, files in os.walk(root.parent):
        for f in files:
            p = Path(dirpath) / f
            if not any(p.is_relative_to(a) for a in allowed):
                out.add(str(p))
    return out


def test_random_bodies_of_other_routes(fz: Fuzzed) -> None:
    before = _files_outside(fz.root)

    @settings(FUZZ, max_examples=150)
    @given(st.sampled_from(["/api/queue", "/api/history", "/api/interrupt", "/api/free",
                            "/api/jobs/cancel", "/api/settings"]),
           st.one_of(JSON.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)))
    def json_routes(path: str, raw: bytes) -> None:
        r = fz.http.post(path, content=raw, headers={"Content-Type": "application/json"})
        fz.count(r.status_code)
        assert r.status_code in (200, 400), (path, raw[:200], r.status_code, r.text[:300])
        if r.status_code == 400:
            assert "error" in r.json()

    @settings(FUZZ, max_examples=120)
    @given(uploads(), st.sampled_from(["/api/upload/image", "/api/upload/mask"]))
    def upload_routes(form: tuple[dict[str, Any], dict[str, Any]], path: str) -> None:
        files, data = form
        r = fz.http.post(path, files=files, data=data)
        fz.count(r.status_code)
        assert r.status_code in (200, 400, 403, 404, 413), (path, data, r.status_code, r.text)
        if r.status_code == 200:
            body = r.json()
            assert "/" not in body["name"] and "\\" not in body["name"]
            folder = fz.root / body["type"] / body["subfolder"]
            assert (folder / body["name"]).resolve().is_relative_to(fz.root.resolve())

    @settings(FUZZ, max_examples=150)
    @given(st.lists(st.one_of(st.sampled_from(["..", ".", "", "%2e%2e", "..%2f..", "/",
                                               "workflows", "a.json", "move", "\\.."]),
                              st.text(max_size=8)), min_size=1, max_size=4),
           st.booleans(), st.sampled_from(["GET", "POST", "DELETE"]), st.binary(max_size=32))
    def userdata_routes(parts: list[str], encode: bool, method: str, body: bytes) -> None:
        rel = "/".join(quote(p, safe="" if encode else "./%\\") for p in parts)
        r = fz.http.request(method, f"/api/userdata/{rel}", content=body)
        fz.count(r.status_code)
        assert r.status_code < 500, (method, rel, r.status_code, r.text[:300])

    json_routes()
    upload_routes()
    userdata_routes()
    assert _files_outside(fz.root) == before


def test_server_still_runs_a_prompt(fz: Fuzzed) -> None:
    srv = fz.server
    srv.http.post("/api/queue", json={"clear": True})
    with srv.ws("after-fuzz") as ws:
        r = srv.http.post("/api/prompt", json={"prompt": txt2img(steps=2),
                                               "client_id": "after-fuzz"})
        assert r.status_code == 200, r.text
        ws.until_done(r.json()["prompt_id"], timeout=120)
    hist = srv.http.get(f"/api/history/{r.json()['prompt_id']}").json()
    assert hist[r.json()["prompt_id"]]["status"]["status_str"] == "success"
    print(f"fuzz statuses {sorted(fz.statuses.items())}, accepted prompts {fz.accepted}")
    assert sum(fz.statuses.values()) > 500
