"""The trained demo model shipped inside the package: `lego-demo-shapes.safetensors`, a tiny
SD1.5-architecture checkpoint that draws coloured shapes on coloured backgrounds from text
(trained by `lego demo train`, lego_backend/demo_train/). It is the default model of `make serve`
and of the example workflows; `lego demo-models` copies it into `checkpoints/` so it is listed
and loaded like any user checkpoint. The random-weight demo models (demo.py) stay for tests."""
from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

DEMO_SHAPES = "lego-demo-shapes.safetensors"
DEMO_SHAPES_REL = f"checkpoints/{DEMO_SHAPES}"


def shipped_checkpoint() -> Path:
    """Where the package holds the trained checkpoint."""
    return Path(str(resources.files("lego_backend.models").joinpath("weights", DEMO_SHAPES)))


def demo_shapes_present(models_dir: Path) -> bool:
    """True when the installed copy exists and matches the shipped file's size."""
    target = Path(models_dir) / DEMO_SHAPES_REL
    source = shipped_checkpoint()
    return target.is_file() and (not source.is_file()
                                 or target.stat().st_size == source.stat().st_size)


def install_demo_shapes(models_dir: Path) -> Path | None:
    """Copy the shipped checkpoint into `models_dir/checkpoints/` (a copy, not a link, so the
    models folder stands alone); None when this package was built without it."""
    source = shipped_checkpoint()
    if not source.is_file():
        return None
    target = Path(models_dir) / DEMO_SHAPES_REL
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    shutil.copyfile(source, tmp)
    tmp.replace(target)
    return target
