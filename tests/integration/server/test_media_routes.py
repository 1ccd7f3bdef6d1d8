"""/view (bytes, annotations, preview re-encoding, channels, traversal) and /upload/image,
/upload/mask (naming, limits, refusal of non-images and escapes) on a real server."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.integration.server.live import LiveServer

pytestmark = pytest.mark.slow


def _png(color=(255, 0, 0, 128), size=(16, 12), mode="RGBA") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGBA" else color[:3]).save(buf, format="PNG")
    return buf.getvalue()


def _upload(srv: LiveServer, data: bytes, name: str = "a.png", path: str = "/api/upload/image",
            **fields: str):
    return srv.http.post(path, files={"image": (name, data, "image/png")}, data=fields)


def test_view_serves_files_and_refuses_escapes(server: LiveServer, tmp_path: Path):
    out = tmp_path / "output" / "sub"
    out.mkdir(parents=True)
    data = _png()
    (out / "a.png").write_bytes(data)
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "output" / "page.html").write_text("<script>alert(1)</script>")
    os.symlink(tmp_path / "secret.txt", tmp_path / "output" / "link.txt")
    os.symlink(tmp_path, tmp_path / "output" / "linkdir")
    get = server.http.get

    r = get("/view", params={"filename": "a.png", "subfolder": "sub"})
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "image/png"
    assert 'filename="a.png"' in r.headers["content-disposition"]
    r = get("/api/view", params={"filename": "a.png [output]", "type": "input", "subfolder": "sub"})
    assert r.content == data
    for params, status in (
            ({"filename": "../secret.txt"}, 400), ({"filename": "/etc/passwd"}, 400),
            ({"filename": "sub/../../secret.txt"}, 400),
            ({"filename": "secret.txt", "subfolder": "../"}, 403),
            ({"filename": "passwd", "subfolder": "/etc"}, 403),
            ({"filename": "link.txt"}, 403),
            ({"filename": "secret.txt", "subfolder": "linkdir"}, 403),
            ({"filename": "missing.png"}, 404), ({"filename": "a.png", "type": "bogus"}, 400),
            ({}, 400)):
        r = get("/api/view", params=params)
        assert r.status_code == status, (params, r.status_code)
        assert b"secret" not in r.content

    (out / 'ca"fé.png').write_bytes(data)
    for extra in ({}, {"preview": "webp"}, {"channel": "rgb"}):
        r = get("/api/view", params={"filename": 'ca"fé.png', "subfolder": "sub", **extra})
        assert r.status_code == 200 and "%22f%C3%A9" in r.headers["content-disposition"]

    r = get("/api/view", params={"filename": "page.html"})
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")


def test_view_preview_and_channels(server: LiveServer, tmp_path: Path):
    out = tmp_path / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "rgba.png").write_bytes(_png((10, 20, 30, 77)))
    (out / "rgb.png").write_bytes(_png((10, 20, 30, 255), mode="RGB"))
    get = server.http.get

    r = get("/api/view", params={"filename": "rgb.png", "preview": "jpeg;50"})
    assert r.headers["content-type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    r = get("/api/view", params={"filename": "rgb.png", "preview": "webp"})
    assert r.headers["content-type"] == "image/webp" and Image.open(io.BytesIO(r.content)).size \
        == (16, 12)
    r = get("/api/view", params={"filename": "rgba.png", "preview": "jpeg"})
    assert r.headers["content-type"] == "image/webp"  # alpha forces webp
    img = Image.open(io.BytesIO(get("/api/view", params={"filename": "rgba.png",
                                                          "channel": "rgb"}).content))
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (10, 20, 30)
    img = Image.open(io.BytesIO(get("/api/view", params={"filename": "rgba.png",
                                                          "channel": "a"}).content))
    assert img.mode == "RGBA" and img.getpixel((0, 0))[3] == 77
    assert get("/api/view", params={"filename": "rgba.png", "channel": "x"}).status_code == 400


def test_upload_image_naming_and_refusals(server: LiveServer, tmp_path: Path):
    inp = tmp_path / "input"
    a, b = _png((1, 2, 3, 255)), _png((4, 5, 6, 255))
    r = _upload(server, a)
    assert r.status_code == 200 and r.json() == {"name": "a.png", "subfolder": "", "type": "input"}
    assert (inp / "a.png").read_bytes() == a
    assert _upload(server, a).json()["name"] == "a.png"  # identical content: same name
    assert _upload(server, b).json()["name"] == "a (1).png"
    assert _upload(server, b).json()["name"] == "a (1).png"
    assert _upload(server, _png((7, 7, 7, 255))).json()["name"] == "a (2).png"
    assert _upload(server, b, overwrite="true").json()["name"] == "a.png"
    assert (inp / "a.png").read_bytes() == b
    r = _upload(server, a, path="/upload/image", subfolder="masks/x", type="temp")
    assert r.json() == {"name": "a.png", "subfolder": "masks/x", "type": "temp"}
    assert (tmp_path / "temp" / "masks" / "x" / "a.png").is_file()
    # the uploaded file shows up in LoadImage's combo
    info = server.http.get("/api/object_info/LoadImage").json()["LoadImage"]
    assert "a.png" in info["input"]["required"]["image"][0]

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for kwargs, status in (({"subfolder": "../escape"}, 400), ({"subfolder": "/abs"}, 400),
                           ({"name": "../evil.png"}, 400), ({"name": ".hidden.png"}, 400),
                           ({"type": "models"}, 400)):
        name = kwargs.pop("name", "ok.png")
        r = _upload(server, a, name=name, **kwargs)
        assert r.status_code == status, (kwargs, r.text)
    r = _upload(server, b"this is not an image", name="x.png")
    assert r.status_code == 400 and "image" in r.json()["error"]
    assert server.http.post("/api/upload/image", data={"type": "input"}).status_code == 400
    r = server.http.post("/api/upload/image", content=b"garbage",
                         headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 400
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_upload_size_limit(small_upload_server: LiveServer, tmp_path: Path):
    noise = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    r = _upload(small_upload_server, buf.getvalue(), name="big.png")
    assert r.status_code == 413
    assert not (tmp_path / "input" / "big.png").exists()
    # without Content-Length (chunked): the limit applies while streaming
    body = (b"--zz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"c.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + buf.getvalue() + b"\r\n--zz--\r\n")
    r = small_upload_server.http.post(
        "/api/upload/image", content=iter([body[:1000], body[1000:]]),
        headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 413 and "content-length" not in r.request.headers
    assert not (tmp_path / "input" / "c.png").exists()
    flags = small_upload_server.http.get("/api/features").json()
    assert flags["max_upload_size"] == 4096
    assert _upload(small_upload_server, _png(), name="small.png").status_code == 200


def test_upload_mask_applies_alpha_to_original(server: LiveServer, tmp_path: Path):
    assert _upload(server, _png((200, 100, 50, 255), size=(8, 8)), name="photo.png").status_code \
        == 200
    mask = _png((0, 0, 0, 40), size=(4, 4))
    r = server.http.post("/api/upload/mask", files={"image": ("photo-mask.png", mask, "image/png")},
                         data={"original_ref": '{"filename": "photo.png", "type": "input"}'})
    assert r.status_code == 200, r.text
    out = Image.open(tmp_path / "input" / r.json()["name"])
    assert out.size == (8, 8) and out.getpixel((3, 3)) == (200, 100, 50, 40)
    r = server.http.post("/api/upload/mask", files={"image": ("m.png", mask, "image/png")},
                         data={"original_ref": '{"filename": "../secret.png"}'})
    assert r.status_code == 400
    r = server.http.post("/api/upload/mask", files={"image": ("m.png", mask, "image/png")},
                         data={"original_ref": "not json"})
    assert r.status_code == 400
