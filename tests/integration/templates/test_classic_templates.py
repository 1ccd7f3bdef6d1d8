"""The classic SD1.x ComfyUI templates (tests/data/workflows/classic/) convert from UI format,
validate and run end to end on the demo models, after only the renames and shrinking a user
with other model files and a small machine would do (classic_remap.py)."""
from __future__ import annotations

import pytest
from PIL import Image

from tests.integration.engine.helpers import make_backend, output_files, run
from tests.integration.templates.classic_remap import (
    load_template,
    remap_to_demo,
    template_names,
    write_input_images,
)

pytestmark = pytest.mark.slow

# Sizes of every image written (SaveImage and PreviewImage), sorted, after remap_to_demo.
EXPECTED_SIZES = {
    "2_pass_pose_worship": [(128, 128), (192, 192)],  # 1024 -> 1536 latent upscale, / 8
    "area_composition": [(88, 160), (136, 240)],
    "controlnet_example": [(96, 64), (128, 128)],  # Canny preview of the 96 x 64 input
    "default": [(64, 64)],
    "depth_controlnet": [(128, 128)],
    "embedding_example": [(96, 96)],
    "esrgan_example": [(64, 64), (256, 256)],  # the 4x demo upscaler
    "hiresfix_esrgan_workflow": [(64, 64), (128, 128)],
    "hiresfix_latent_workflow": [(64, 64), (96, 96)],
    "image2image": [(120, 80)],  # 0.01 MP of 96 x 64 = 125 x 84, cropped to the VAE's 8 px grid
    "inpaint_example": [(120, 80)],
    "inpaint_model_outpainting": [(136, 104)],  # 125 x 84 + padding 8 / 8 / 8 / 16
    "latent_upscale_different_prompt_model": [(64, 64), (96, 96)],
    "lora": [(96, 96)],
    "lora_multiple": [(128, 128)],
    "mixing_controlnets": [(128, 128)],
}
NAMES = template_names()
if not NAMES:
    pytest.skip("classic templates not vendored in tests/data/workflows/classic/",
                allow_module_level=True)


def test_the_corpus_is_the_one_expected() -> None:
    assert NAMES == sorted(EXPECTED_SIZES)


@pytest.mark.parametrize("name", NAMES)
def test_classic_template_runs_on_the_demo_models(name, tmp_path, demo_models) -> None:
    backend = make_backend(tmp_path, demo_models)
    prompt = remap_to_demo(backend.convert_workflow(load_template(name)))
    write_input_images(prompt, backend.config.input_dir)
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    files = output_files(backend, record)
    sizes = []
    for path in files:
        with Image.open(path) as im:
            sizes.append(im.size)
    assert sorted(sizes) == EXPECTED_SIZES[name]
