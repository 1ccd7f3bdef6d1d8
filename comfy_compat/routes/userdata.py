"""/users, /settings (persisted in <user_dir>/default/comfy.settings.json), /userdata and
/v2/userdata, all confined to the user's directory. Single-user: the Comfy-User header is
ignored, as ComfyUI does without --multi-user."""
from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute

from comfy_compat.errors import simple_error
from comfy_compat.jsonresp import json_response
from comfy_compat.paths import safe_join
from comfy_compat.routes.common import (
    backend,
    call,
    is_true,
    read_json,
    read_limited,
    settings,
    twin,
)
from lego_backend.errors import UnsafePathError

SETTINGS_FILE = "comfy.settings.json"
DEFAULT_USER = "default"
EMPTY_CSS = {"user.css"}  # the editor's index.html links it: answer an empty sheet, not a 404
# content types userdata may be served with; anything else is inert octet-stream
_SAFE_TYPES = {".json": "application/json", ".css": "text/css", ".txt": "text/plain",
               ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp"}


def init_user_dir(user_dir: Path) -> None:
    """Create what the editor lists at every page load (workflows/, subgraphs/, the node
    templates file), so a fresh install answers 200 instead of by-design 404s."""
    root = Path(user_dir) / DEFAULT_USER
    for sub in ("workflows", "subgraphs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    templates = root / "comfy.templates.json"
    if not templates.exists():
        templates.write_text("[]", encoding="utf-8")
    settings = root / "comfy.settings.json"
    if not settings.exists():
        # A new user lands on a graph that runs here (web/extension swaps the stock default),
        # not on the template browser, whose templates mostly need models this server lacks.
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}), encoding="utf-8")


def user_root(request: Request) -> Path:
    return Path(backend(request).config.user_dir) / DEFAULT_USER


def _lock(request: Request) -> asyncio.Lock:
    return request.app.state.settings_lock  # type: ignore[no-any-return]


def _user_path(request: Request, rel: str) -> Path:
    try:
        return safe_join(user_root(request), rel)
    except UnsafePathError:
        raise simple_error(403, "Forbidden path") from None


# --- /users, /settings ---------------------------------------------------------------------------
async def get_users(request: Request) -> Response:
    return json_response({"storage": "server", "migrated": True})


async def post_users(request: Request) -> Response:
    raise simple_error(400, "Multi-user mode is not enabled on this server")


def _load_settings(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_settings(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, indent=4), encoding="utf-8")
    os.replace(tmp, path)


async def get_settings(request: Request) -> Response:
    return json_response(await call(_load_settings, user_root(request) / SETTINGS_FILE))


async def get_setting(request: Request) -> Response:
    data = await call(_load_settings, user_root(request) / SETTINGS_FILE)
    return json_response(data.get(request.path_params["setting_id"]))


async def post_settings(request: Request) -> Response:
    update = await read_json(request, empty={})
    if not isinstance(update, dict):
        raise simple_error(400, "Settings must be a JSON object")
    await _update_settings(request, update)
    return Response(status_code=200)


async def post_setting(request: Request) -> Response:
    value = await read_json(request, empty=None)
    await _update_settings(request, {request.path_params["setting_id"]: value})
    return Response(status_code=200)


async def _update_settings(request: Request, update: dict[str, Any]) -> None:
    path = user_root(request) / SETTINGS_FILE
    async with _lock(request):
        data = await call(_load_settings, path)
        data.update(update)
        await call(_save_settings, path, data)


# --- /userdata ------------------------------------------------------------------------------------
def _info(root: Path, path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": path.relative_to(root).as_posix(), "size": st.st_size,
            "modified": st.st_mtime, "created": st.st_ctime}


def _list_dir(folder: Path, recurse: bool) -> list[Path]:
    if not recurse:
        return sorted(p for p in folder.iterdir() if p.is_file())
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(Path(root) / f for f in sorted(files))
    return found


async def list_userdata(request: Request) -> Response:
    q = request.query_params
    rel = q.get("dir")
    if not rel:
        raise simple_error(400, "dir is required")
    folder = _user_path(request, rel)
    if not folder.is_dir():
        raise simple_error(404, "Directory not found")
    files = await call(_list_dir, folder, is_true(q.get("recurse")))
    if is_true(q.get("full_info")):
        out: list[Any] = [{**_info(folder, f), "path": f.relative_to(folder).as_posix()}
                          for f in files]
    else:
        out = [f.relative_to(folder).as_posix() for f in files]
    if is_true(q.get("split")) and not is_true(q.get("full_info")):
        out = [[p, *p.split("/")] for p in out]
    return json_response(out)


def _split_raw(request: Request) -> tuple[str, str | None]:
    """(file, move destination or None) from the still-encoded path: file names arrive
    URL-encoded ('workflows%2Fa.json'), so '/move/' can only be found before decoding."""
    raw = request.scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path
    _, _, rest = text.partition("/userdata/")
    rest = rest.split("?", 1)[0]
    parts = rest.split("/")
    if len(parts) == 3 and parts[1] == "move":
        return unquote(parts[0]), unquote(parts[2])
    return unquote(rest), None


async def get_userdata(request: Request) -> Response:
    rel, _ = _split_raw(request)
    path = _user_path(request, rel)
    if not path.is_file():
        if rel in EMPTY_CSS:
            return Response("", media_type="text/css")
        raise simple_error(404, "File not found")
    # never served as something a browser would render or run (html, js, svg...)
    media_type = _SAFE_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return FileResponse(path, media_type=media_type)


async def post_userdata(request: Request) -> Response:
    rel, dest = _split_raw(request)
    overwrite = request.query_params.get("overwrite", "true").lower() != "false"
    full_info = is_true(request.query_params.get("full_info"))
    root = user_root(request)
    if dest is not None:
        return await _move(request, rel, dest, overwrite, full_info)
    path = _user_path(request, rel)
    if not rel or path == root:
        raise simple_error(400, "File name required")
    body = await read_limited(request, settings(request).max_upload_size)
    if path.exists() and not overwrite:
        raise simple_error(409, "File already exists")
    if path.is_dir():
        raise simple_error(400, "Path is a directory")
    try:
        await call(_write, path, body)
    except OSError as exc:
        raise simple_error(400, f"Cannot write {rel}: {exc.strerror}") from None
    return json_response(_info(root, path) if full_info else path.relative_to(root).as_posix())


def _write(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)


async def _move(request: Request, rel: str, dest: str, overwrite: bool,
                full_info: bool) -> Response:
    root = user_root(request)
    src, dst = _user_path(request, rel), _user_path(request, dest)
    if not src.is_file():
        raise simple_error(404, "Source file not found")
    if dst.exists() and not overwrite:
        raise simple_error(409, "Destination file already exists")
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    except OSError as exc:
        raise simple_error(400, f"Cannot move {rel}: {exc.strerror}") from None
    return json_response(_info(root, dst) if full_info else dst.relative_to(root).as_posix())


async def delete_userdata(request: Request) -> Response:
    rel, _ = _split_raw(request)
    path = _user_path(request, rel)
    if not path.is_file():
        raise simple_error(404, "File not found")
    path.unlink()
    return Response(status_code=204)


async def list_userdata_v2(request: Request) -> Response:
    root = user_root(request)
    rel = request.query_params.get("path", "")
    if not root.is_dir():
        return json_response([])
    folder = _user_path(request, rel)
    if not folder.is_dir():
        raise simple_error(404, "Directory not found")
    entries = []
    for child in sorted(folder.iterdir(), key=lambda p: (not p.is_dir(), p.name.lower())):
        entry: dict[str, Any] = {"name": child.name, "path": child.relative_to(root).as_posix(),
                                 "type": "directory" if child.is_dir() else "file"}
        if child.is_file():
            st = child.stat()
            entry.update(size=st.st_size, modified=st.st_mtime)
        entries.append(entry)
    return json_response(entries)


async def user_css(request: Request) -> Response:
    return Response("", media_type="text/css")


def routes() -> list[BaseRoute]:
    return [
        *twin("/users", get_users, ["GET"]),
        *twin("/users", post_users, ["POST"]),
        *twin("/settings", get_settings, ["GET"]),
        *twin("/settings", post_settings, ["POST"]),
        *twin("/settings/{setting_id}", get_setting, ["GET"]),
        *twin("/settings/{setting_id}", post_setting, ["POST"]),
        *twin("/userdata", list_userdata, ["GET"]),
        *twin("/userdata/{file:path}", get_userdata, ["GET"]),
        *twin("/userdata/{file:path}", post_userdata, ["POST"]),
        *twin("/userdata/{file:path}", delete_userdata, ["DELETE"]),
        *twin("/v2/userdata", list_userdata_v2, ["GET"]),
        *twin("/user.css", user_css, ["GET"]),
    ]
