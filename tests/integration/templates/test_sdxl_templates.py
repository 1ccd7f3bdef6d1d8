"""The SDXL templates of the ComfyUI template corpus that use only core nodes (vendored in
tests/data/workflows/, MIT) convert from UI format, validate and run end to end on the tiny SDXL
demo checkpoint, after only the renames and shrinking a user with other model files and a small
machine would do: every checkpoint (SDXL base and refiner) -> the SDXL demo, pixel sizes / 8,
few steps. Base + refiner templates keep their hand-over point: the refiner pass still runs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from lego_backend.models.demo_sdxl import DEMO_SDXL_CHECKPOINT
from tests.integration.engine.helpers import make_backend, output_files, run
from tests.integration.templates.classic_remap import remap_to_demo

pytestmark = pytest.mark.slow

WORKFLOWS = Path(__file__).resolve().parents[2] / "data" / "workflows"
TEMPLATES = {  # vendored file -> sizes of the images it writes after the remap
    "template_image_sdxl_simple.json": [(128, 128)],
    "template_sdxl_simple_example.json": [(128, 128)],
    "template_sdxl_refiner_prompt_example.json": [(128, 128)],
}
ADVANCED_STEPS = 4  # KSamplerAdvanced: 25 steps, hand-over at 20 -> 4 steps, hand-over at 3


def remap_to_sdxl_demo(prompt: dict[str, Any]) -> dict[str, Any]:
    out = remap_to_demo(prompt)  # sizes / 8, 2 steps, ...; then the SDXL specifics
    for key, node in out.items():
        cls, inputs = node["class_type"], node["inputs"]
        if cls == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = DEMO_SDXL_CHECKPOINT
        if cls == "KSamplerAdvanced":
            old = prompt[key]["inputs"]["steps"]
            for name in ("start_at_step", "end_at_step"):
                value = inputs[name]
                if isinstance(value, int) and value < old:
                    inputs[name] = round(value * ADVANCED_STEPS / old)
            inputs["steps"] = ADVANCED_STEPS
    return out


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_sdxl_template_runs_on_the_sdxl_demo(name: str, tmp_path: Path,
                                             sdxl_models: Path) -> None:
    backend = make_backend(tmp_path, sdxl_models)
    workflow = json.loads((WORKFLOWS / name).read_text(encoding="utf-8"))
    prompt = remap_to_sdxl_demo(backend.convert_workflow(workflow))
    samplers = [n for n in prompt.values() if n["class_type"] == "KSamplerAdvanced"]
    if samplers:  # base then refiner: both passes have steps to run
        spans = sorted((n["inputs"]["start_at_step"], n["inputs"]["end_at_step"])
                       for n in samplers)
        assert spans[0] == (0, 3) and spans[1][0] == 3
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    sizes = []
    for path in output_files(backend, record):
        with Image.open(path) as im:
            sizes.append(im.size)
    assert sorted(sizes) == TEMPLATES[name]
    denoiser = next(s for s in backend.services.snapshot() if s["kind"] == "denoiser")
    assert denoiser["calls_run"] > 0
