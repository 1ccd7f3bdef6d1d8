"""The shipped demo model: a plain single-file SD checkpoint in the package, loaded by the same
loader as user checkpoints, that draws what held-out prompts ask for through the engine."""
from __future__ import annotations

from pathlib import Path

import pytest

from lego_backend.demo_train.engine_run import SamplerSettings
from lego_backend.demo_train.evaluate_model import evaluate_checkpoint
from lego_backend.models.demo_shapes import (
    DEMO_SHAPES,
    demo_shapes_present,
    install_demo_shapes,
    shipped_checkpoint,
)
from lego_backend.models.detect import detect_checkpoint
from lego_backend.models.safetensors_io import read_header
from lego_backend.models.store import ModelStore

MAX_BYTES = 25 * 1024 * 1024


def test_shipped_checkpoint_is_a_small_original_layout_sd15_file() -> None:
    path = shipped_checkpoint()
    assert path.is_file() and path.stat().st_size <= MAX_BYTES
    header = read_header(path)
    assert {k.split(".")[0] for k in header.shapes} == {"model", "first_stage_model",
                                                         "cond_stage_model"}
    # the real CLIP vocabulary and 77 positions: users type ordinary prompts
    emb = "cond_stage_model.transformer.text_model.embeddings"
    assert header.shapes[f"{emb}.token_embedding.weight"][0] == 49408
    assert header.shapes[f"{emb}.position_embedding.weight"][0] == 77
    assert detect_checkpoint(path).family == "sd15"


def test_demo_models_installs_it_where_checkpoint_loaders_look(tmp_path: Path) -> None:
    assert not demo_shapes_present(tmp_path)
    installed = install_demo_shapes(tmp_path)
    assert installed is not None and installed.read_bytes() == shipped_checkpoint().read_bytes()
    assert demo_shapes_present(tmp_path)
    assert DEMO_SHAPES in ModelStore(tmp_path).list("checkpoints")


@pytest.mark.slow
def test_it_draws_held_out_prompts_through_the_engine() -> None:
    """10 prompts whose (colour, background, shape) combination training never showed: the
    colours and the place are what the prompt says (measured 10/10 backgrounds, shape colours
    and positions; random weights score about 1/8 on colours and 1/5 on position). The kind
    of shape is not asserted: it is at chance (docs/demo-model.md)."""
    result = evaluate_checkpoint(shipped_checkpoint(), count=10, settings=SamplerSettings())
    rates = result.accuracy.rates()
    assert rates["background"] >= 0.9, result.accuracy.failures
    assert rates["colour"] >= 0.8, result.accuracy.failures
    assert rates["position"] >= 0.8, result.accuracy.failures


def test_editor_default_graph_prefers_the_trained_model() -> None:
    from comfy_compat.routes.lego import _default_workflow

    def chosen(checkpoints: list[str]) -> str:
        graph = _default_workflow(checkpoints)
        node = next(n for n in graph["nodes"] if n["type"] == "CheckpointLoaderSimple")
        return node["widgets_values"][0]

    assert chosen(["lego-demo-sd15.safetensors", DEMO_SHAPES, "mine.safetensors"]) == DEMO_SHAPES
    assert chosen(["lego-demo-sd15.safetensors", "mine.safetensors"]) == \
        "lego-demo-sd15.safetensors"
    assert chosen(["mine.safetensors"]) == "mine.safetensors"


def test_examples_and_editor_default_name_the_trained_model_at_its_size() -> None:
    import json

    repo = Path(__file__).resolve().parents[3]
    example = json.loads((repo / "examples/workflows/txt2img.json").read_text())
    assert example["4"]["inputs"]["ckpt_name"] == DEMO_SHAPES
    assert example["5"]["inputs"]["width"] == example["5"]["inputs"]["height"] == 64
    editor = json.loads((repo / "web/default_workflow.json").read_text())
    loader = next(n for n in editor["nodes"] if n["type"] == "CheckpointLoaderSimple")
    assert loader["widgets_values"] == [DEMO_SHAPES]
