"""Session fixtures: the demo models are built once into a temp models dir; loaders write
derived files into a per-session cache. One CPU thread: the machine is shared."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lego_backend.models.demo import build_demo_models

    root = tmp_path_factory.mktemp("models")
    build_demo_models(root, seed=0)
    return root


@pytest.fixture(scope="session")
def demo_paths(models_dir: Path) -> dict[str, Path]:
    from lego_backend.models.demo import DEMO_FILES

    return {key: models_dir / rel for key, rel in DEMO_FILES.items()}


@pytest.fixture(scope="session")
def demo_modules() -> Any:
    from lego_backend.models.demo import build_demo_modules

    return build_demo_modules(seed=0)


def _assert_same_weights(expected: torch.nn.Module, got: torch.nn.Module) -> None:
    a, b = expected.state_dict(), got.state_dict()
    assert set(a) == set(b), sorted(set(a) ^ set(b))[:10]
    for key in a:
        assert b[key].dtype == torch.float32 or not b[key].is_floating_point(), key
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="session")
def same_weights() -> Any:
    """assert_same_weights(expected_module, loaded_module): equal keys and tensors, fp32."""
    return _assert_same_weights
