"""Shared fixtures: fixed torch threads (byte-determinism), offline hub, and the demo models
built once per test session into a temporary models root."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lego_backend import process_env

process_env.configure()  # offline, passive OpenMP waiting: as `lego` runs


@pytest.fixture(scope="session", autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)  # 1: byte-stable and no spin contention on 2 cores


@pytest.fixture(scope="session", autouse=True)
def _isolated_default_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Loaders called without cache_dir must not write into the user's ~/.cache."""
    old = os.environ.get("LEGO_CACHE_DIR")
    os.environ["LEGO_CACHE_DIR"] = str(tmp_path_factory.mktemp("default-cache"))
    yield
    if old is None:
        os.environ.pop("LEGO_CACHE_DIR", None)
    else:
        os.environ["LEGO_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A derived-files cache for loaders that are given one explicitly."""
    return tmp_path_factory.mktemp("lego-cache")


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root holding the demo checkpoint, LoRAs, ControlNet and VAE."""
    from lego_backend.models.demo import build_demo_models

    root = tmp_path_factory.mktemp("models")
    build_demo_models(root)
    return root


@pytest.fixture(scope="session")
def sdxl_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root holding only the tiny SDXL demo checkpoint (kept apart from demo_models,
    whose tests count that root's checkpoints)."""
    from lego_backend.models.demo_sdxl import build_sdxl_demo

    root = tmp_path_factory.mktemp("sdxl-models")
    build_sdxl_demo(root)
    return root
