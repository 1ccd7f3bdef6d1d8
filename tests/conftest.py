"""Shared fixtures: fixed torch threads (byte-determinism), offline hub, and the demo models
built once per test session into a temporary models root."""
from __future__ import annotations

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


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root holding the demo checkpoint, LoRAs, ControlNet and VAE."""
    from lego_backend.models.demo import build_demo_models

    root = tmp_path_factory.mktemp("models")
    build_demo_models(root)
    return root
