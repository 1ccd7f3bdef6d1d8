"""The stock ComfyUI editor (comfyui-frontend-package) in real headless Chromium against our
server and the real backend: the page loads with no console errors and no failed /api requests,
a graph is queued by clicking Run, progress advances, the output image is displayed on the
SaveImage node and in the Media Assets sidebar. Screenshots: <tmp>/editor.png, <tmp>/assets.png.

The editor's built-in default graph (1.58: a Z-Image-Turbo graph) needs nodes and models this
server does not have; our editor extension (web/extension) replaces it on a first visit with the
classic text-to-image graph on the server's checkpoint. The test runs exactly what a new user
sees, then drops the PNG it produced onto the canvas and checks the graph comes back."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_compat.app import build_app
from lego_backend.config import BackendConfig
from tests.integration.server.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEFAULT_WORKFLOW = json.loads(
    (Path(__file__).resolve().parents[2] / "web" / "default_workflow.json").read_text())


def _require_browser() -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright (Python package) is not installed")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("comfyui_frontend_package") is None:
        pytest.skip("comfyui-frontend-package is not installed")


@pytest.fixture()
def editor_server(tmp_path: Path, demo_models: Path) -> Iterator[LiveServer]:
    _require_browser()
    from lego_backend.backend import Backend

    config = BackendConfig(models_dir=demo_models, output_dir=tmp_path / "output",
                           input_dir=tmp_path / "input", temp_dir=tmp_path / "temp",
                           data_dir=tmp_path / "data")
    with LiveServer(build_app(Backend(config))) as srv:
        yield srv


class PageLog:
    """Console errors, failed requests and HTTP error responses of one page."""

    def __init__(self, origin: str):
        self.origin = origin
        self.console_errors: list[str] = []
        self.failed: list[str] = []
        self.responded: dict[Any, int] = {}

    def attach(self, page: Any) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"pageerror: {exc}"))
        page.on("response", self._response)
        page.on("requestfailed", self._request_failed)

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.console_errors.append(f"{msg.text} @ {msg.location.get('url', '')}")

    def _response(self, response: Any) -> None:
        self.responded[response.request] = response.status
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.request.method} {response.url}")

    def _request_failed(self, request: Any) -> None:
        # Chromium reports an unread body of a completed 200 as ERR_ABORTED: not a failure
        if self.responded.get(request, 999) < 400:
            return
        self.failed.append(f"{request.failure} {request.method} {request.url}")

    def api_failures(self) -> list[str]:
        return [f for f in self.failed if f"{self.origin}/api/" in f or "/ws" in f]


def test_editor_loads_queues_and_shows_the_image(editor_server: LiveServer, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    srv = editor_server
    log = PageLog(srv.url)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1600, "height": 1000})
        try:
            page = context.new_page()
            log.attach(page)
            page.goto(srv.url + "/")
            # a first visit ends on the runnable default graph (the extension swaps the stock one)
            page.wait_for_function(
                "() => window.app?.graph?.nodes?.some(n => n.type === 'CheckpointLoaderSimple')",
                timeout=90_000)
            ckpt = srv.http.get("/api/models/checkpoints").json()[0]
            shown_ckpt = page.evaluate("""() => window.app.graph.nodes
                .find(n => n.type === 'CheckpointLoaderSimple').widgets[0].value""")
            assert shown_ckpt == ckpt
            steps = page.evaluate("""() => window.app.graph.nodes
                .find(n => n.type === 'KSampler').widgets.find(w => w.name === 'steps').value""")
            page.evaluate("""() => {
                window.__progress = [];
                window.app.api.addEventListener('progress',
                    e => window.__progress.push([e.detail.value, e.detail.max]));
            }""")

            with page.expect_response(lambda r: "/api/view?" in r.url and "type=output" in r.url,
                                      timeout=120_000) as view_info:
                page.get_by_role("button", name="Run").first.click()
                page.wait_for_function("() => window.__progress.length > 0", timeout=60_000)
            view = view_info.value
            progress = page.evaluate("() => window.__progress")
            assert [v for v, _ in progress] == sorted(v for v, _ in progress)
            assert progress[-1] == [steps, steps] and len(progress) >= 2

            # the SaveImage node fetched and shows exactly the saved file
            saved = sorted((tmp_path / "output").glob("ComfyUI_*.png"))
            assert view.status == 200 and saved and view.body() == saved[-1].read_bytes()
            shown = page.evaluate("""() => {
                const n = window.app.graph.nodes.find(x => x.type === 'SaveImage');
                const out = window.app.nodeOutputs?.[String(n.id)];
                return out?.images?.map(i => i.filename) ?? [];
            }""")
            assert shown == [saved[-1].name]

            page.evaluate("() => { const c = window.app.canvas; c.ds.scale = 0.8; "
                          "c.ds.offset = [40, 60]; c.setDirty(true, true); }")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "editor.png"))

            # the Media Assets sidebar (fed by /api/jobs) lists the generated image
            page.get_by_role("button", name="Assets").first.click()
            page.locator(f"img[src*='filename={saved[-1].name}']").first.wait_for(timeout=30_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(tmp_path / "assets.png"))

            # drop the produced PNG on an empty canvas: its embedded workflow comes back
            page.evaluate("() => window.app.loadGraphData({nodes: [], links: [], version: 0.4})")
            page.wait_for_function("() => window.app.graph.nodes.length === 0")
            page.evaluate("""async name => {
                const blob = await (await fetch('api/view?type=output&filename=' + name)).blob();
                const dt = new DataTransfer();
                dt.items.add(new File([blob], name, {type: 'image/png'}));
                const target = document.querySelector('canvas#graph-canvas')
                    ?? document.querySelector('canvas');
                for (const type of ['dragenter', 'dragover', 'drop']) {
                    target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                                              cancelable: true}));
                }
            }""", saved[-1].name)
            page.wait_for_function(
                "() => window.app.graph.nodes.some(n => n.type === 'KSampler')", timeout=30_000)
            restored = page.evaluate("""() => window.app.graph.nodes
                .filter(n => n.type === 'CLIPTextEncode').map(n => n.widgets[0].value).sort()""")
            expected = sorted(n["widgets_values"][0] for n in DEFAULT_WORKFLOW["nodes"]
                              if n["type"] == "CLIPTextEncode")
            assert restored == expected
        finally:
            context.close()

    assert log.console_errors == []
    assert log.api_failures() == []
    history = srv.http.get("/api/jobs", params={"status": "completed"}).json()["jobs"]
    assert len(history) == 1 and history[0]["preview_output"]["filename"] == saved[-1].name
