"""Fixtures: a real uvicorn server on 127.0.0.1 in front of the real Backend (demo models),
or in front of the FakeBackend for behaviours the real one does not have (back pressure,
UI workflows the fake cannot convert)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_compat.app import build_app
from lego_backend.config import BackendConfig
from tests.integration.server.live import LiveServer
from tests.unit.compat.fake_backend import FakeBackend


def make_config(tmp: Path, models: Path, **overrides: Any) -> BackendConfig:
    return BackendConfig(models_dir=models, output_dir=tmp / "output", input_dir=tmp / "input",
                         temp_dir=tmp / "temp", data_dir=tmp / "data", **overrides)


@pytest.fixture()
def server(tmp_path: Path, demo_models: Path) -> Iterator[LiveServer]:
    from lego_backend.backend import Backend

    with LiveServer(build_app(Backend(make_config(tmp_path, demo_models)))) as srv:
        yield srv


@pytest.fixture()
def serial_server(tmp_path: Path, demo_models: Path) -> Iterator[LiveServer]:
    """One prompt at a time (ComfyUI's executor): later prompts stay pending."""
    from lego_backend.backend import Backend

    config = make_config(tmp_path, demo_models, max_concurrent_prompts=1)
    with LiveServer(build_app(Backend(config))) as srv:
        yield srv


@pytest.fixture()
def small_upload_server(tmp_path: Path, demo_models: Path) -> Iterator[LiveServer]:
    from lego_backend.backend import Backend

    app = build_app(Backend(make_config(tmp_path, demo_models)), max_upload_size=4096)
    with LiveServer(app) as srv:
        yield srv


@pytest.fixture()
def fake(tmp_path: Path) -> FakeBackend:
    return FakeBackend(make_config(tmp_path, tmp_path / "models"))


@pytest.fixture()
def fake_server(fake: FakeBackend) -> Iterator[LiveServer]:
    with LiveServer(build_app(fake)) as srv:
        yield srv

