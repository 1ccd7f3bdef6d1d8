"""Path traversal and symlink escapes, and "no pickle is ever loaded", against a real server in
front of the real Backend: model names in prompts (relative escapes, absolute paths, a symlink
inside the models dir that points outside), LoadImage names, uploads through symlinked folders
and onto symlinked files, /userdata through a symlinked folder; pickle files in every model
folder are never offered and never unpickled (a booby-trapped pickle would create a file)."""
from __future__ import annotations

import builtins
import io
import os
import pickle
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from comfy_compat.app import build_app
from comfy_compat.security import Security
from tests.integration.server.conftest import make_config
from tests.integration.server.live import CKPT, LiveServer, txt2img

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
PICKLE_FILES = {"checkpoints": "evil.ckpt", "loras": "evil.pt", "vae": "evil.bin",
                "upscale_models": "evil.pth", "controlnet": "evil.pkl", "embeddings": "evil.pt"}


class _Trap:
    """Unpickling this calls open(marker, "w"): proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.marker), "w"))


def _png(color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture()
def hostile(tmp_path: Path, demo_models: Path) -> Iterator[tuple[LiveServer, Path]]:
    """A models root with the demo models, pickle traps in every folder and symlinks leading
    out of it; an outside folder with a real checkpoint and a secret image."""
    from lego_backend.backend import Backend

    models, outside = tmp_path / "models", tmp_path / "outside"
    shutil.copytree(demo_models, models, symlinks=True)
    outside.mkdir()
    shutil.copyfile(models / "checkpoints" / CKPT, outside / "real.safetensors")
    (outside / "secret.png").write_bytes(_png())
    for folder, name in PICKLE_FILES.items():
        (models / folder).mkdir(exist_ok=True)
        (models / folder / name).write_bytes(pickle.dumps(_Trap(tmp_path / f"PWNED-{folder}")))
    os.symlink(outside / "real.safetensors", models / "checkpoints" / "linked.safetensors")
    os.symlink(outside, models / "loras" / "linkdir")
    (tmp_path / "input").mkdir()
    os.symlink(outside / "secret.png", tmp_path / "input" / "secret-link.png")
    os.symlink(outside, tmp_path / "input" / "outdir")
    app = build_app(Backend(make_config(tmp_path, models)),
                    security=Security.for_bind("127.0.0.1", None))
    with LiveServer(app) as srv:
        yield srv, tmp_path


def _errors(r: Any) -> list[str]:
    assert r.status_code == 400, r.text
    body = r.json()
    return [e["type"] for ne in body["node_errors"].values() for e in ne["errors"]] or [
        body["error"]["type"]]


def test_model_names_cannot_leave_the_models_dir(hostile: tuple[LiveServer, Path]):
    srv, tmp = hostile
    checkpoints = srv.http.get("/api/models/checkpoints").json()
    assert CKPT in checkpoints and "linked.safetensors" not in checkpoints
    combo = srv.http.get("/api/object_info/CheckpointLoaderSimple").json()[
        "CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    assert "linked.safetensors" not in combo
    assert not [n for n in srv.http.get("/api/models/loras").json() if "linkdir" in n]
    names = ["../../etc/passwd", "/etc/passwd", str(tmp / "outside" / "real.safetensors"),
             "../outside/real.safetensors", "..\\outside\\real.safetensors",
             "linked.safetensors", "C:\\Windows\\win.ini", "checkpoints/../../x.safetensors"]
    for name in names:
        p = txt2img()
        p["4"]["inputs"]["ckpt_name"] = name
        assert _errors(srv.http.post("/api/prompt", json={"prompt": p})) == [
            "value_not_in_list"], name
    p = txt2img()
    p["10"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "lora_name": "linkdir/../../outside/x",
        "strength_model": 1.0, "strength_clip": 1.0}}
    p["3"]["inputs"]["model"] = ["10", 0]
    assert "value_not_in_list" in _errors(srv.http.post("/api/prompt", json={"prompt": p}))


def test_load_image_and_view_refuse_symlinks_out_of_input(hostile: tuple[LiveServer, Path]):
    srv, tmp = hostile
    combo = srv.http.get("/api/object_info/LoadImage").json()["LoadImage"]["input"][
        "required"]["image"][0]
    assert not [n for n in combo if "secret" in n or n.startswith("outdir")], combo
    for name in ("secret-link.png", "outdir/secret.png", "../outside/secret.png",
                 str(tmp / "outside" / "secret.png"), "../../outside/secret.png [input]"):
        prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
                  "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
        r = srv.http.post("/api/prompt", json={"prompt": prompt})
        assert r.status_code == 400, (name, r.text)
    for params in ({"filename": "secret-link.png", "type": "input"},
                   {"filename": "secret.png", "subfolder": "outdir", "type": "input"}):
        r = srv.http.get("/api/view", params=params)
        assert r.status_code == 403 and r.content != _png(), params


def test_uploads_do_not_follow_symlinks_out(hostile: tuple[LiveServer, Path]):
    srv, tmp = hostile
    secret = (tmp / "outside" / "secret.png").read_bytes()
    other = _png((1, 2, 3))
    r = srv.http.post("/api/upload/image", files={"image": ("x.png", other, "image/png")},
                      data={"subfolder": "outdir"})
    assert r.status_code == 400 and not (tmp / "outside" / "x.png").exists()
    for overwrite in ("true", "false"):  # onto a symlinked file: the link, never its target
        r = srv.http.post("/api/upload/image", data={"overwrite": overwrite},
                          files={"image": ("secret-link.png", other, "image/png")})
        assert r.status_code == 200, r.text
        assert (tmp / "outside" / "secret.png").read_bytes() == secret
    user = tmp / "data" / "user" / "default"
    os.symlink(tmp / "outside", user / "outlink")
    http = srv.http
    for r in (http.get("/api/userdata/outlink%2Fsecret.png"),
              http.get("/api/userdata", params={"dir": "outlink"}),
              http.post("/api/userdata/outlink%2Fnew.json", content=b"{}"),
              http.delete("/api/userdata/outlink%2Fsecret.png"),
              http.post("/api/userdata/comfy.settings.json/move/outlink%2Fs.json")):
        assert r.status_code == 403, (r.request.url, r.status_code)
    assert sorted(p.name for p in (tmp / "outside").iterdir()) == ["real.safetensors",
                                                                   "secret.png"]


def test_pickle_files_are_never_offered_nor_unpickled(hostile: tuple[LiveServer, Path]):
    srv, tmp = hostile
    info = srv.http.get("/api/object_info").json()
    listed = re.findall(r"evil\.\w+", srv.http.get("/api/object_info").text)
    assert listed == [] and info
    for folder in PICKLE_FILES:
        assert not [n for n in srv.http.get(f"/api/models/{folder}").json() if "evil" in n]
    loaders = {"CheckpointLoaderSimple": ("ckpt_name", "evil.ckpt", {}),
               "VAELoader": ("vae_name", "evil.bin", {}),
               "UpscaleModelLoader": ("model_name", "evil.pth", {}),
               "ControlNetLoader": ("control_net_name", "evil.pkl", {})}
    for cls, (inp, name, extra) in loaders.items():
        prompt = {"1": {"class_type": cls, "inputs": {inp: name, **extra}},
                  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                              "filename_prefix": "x"}}}
        r = srv.http.post("/api/prompt", json={"prompt": prompt})
        assert r.status_code == 400, (cls, r.text)
    # embedding:evil in a prompt's text: evil.pt exists, but only NAME.safetensors is read
    with srv.ws("pk") as ws:
        r = srv.http.post("/api/prompt", json={"prompt": txt2img(text="embedding:evil a cat"),
                                               "client_id": "pk"})
        assert r.status_code == 200, r.text
        ws.until_done(r.json()["prompt_id"], timeout=120)
    assert not list(tmp.glob("PWNED-*"))


def test_no_code_path_can_unpickle():
    """The source never calls an unpickling loader (torch.load, pickle.load(s), numpy with
    allow_pickle, torch.jit.load): safetensors is the only weights format read."""
    banned = re.compile(r"\btorch\.load\(|\bpickle\.loads?\(|\bjoblib\.load\(|"
                        r"allow_pickle\s*=\s*True|\btorch\.jit\.load\(|\bdill\.load")
    # The one exception, not a file format: the cluster's driver<->actor step channel frames
    # messages as Ray's own RPC does (pickle), and answers only a peer that first sent the
    # actor's random token (tests/unit/cluster/test_direct.py: never answered without it).
    channel = ROOT / "lego_backend" / "cluster" / "direct.py"
    assert "hmac.compare_digest(token, self._token)" in channel.read_text(encoding="utf-8")
    hits = []
    for package in ("lego_backend", "comfy_compat", "node_library", "web"):
        for path in (ROOT / package).rglob("*.py"):
            if path == channel:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if banned.search(line.split("#", 1)[0]):
                    hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []
