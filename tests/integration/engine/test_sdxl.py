"""SDXL graphs on the tiny SDXL demo checkpoint: text-to-image with CLIPTextEncodeSDXL and
CLIPTextEncode, determinism, size conditioning reaching the UNet (with ComfyUI's defaults), and
batch-invariance of SDXL prompts with different size conditioning run together."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lego_backend.models.demo_sdxl import DEMO_SDXL_CHECKPOINT
from tests.integration.engine.helpers import (
    make_backend,
    output_files,
    pixels,
    run,
    run_concurrently,
    txt2img,
)

pytestmark = pytest.mark.slow


def sdxl_prompt(text: str = "a red circle", seed: int = 42, size: int = 64, steps: int = 4,
                **sdxl: Any) -> dict[str, Any]:
    """txt2img on the SDXL demo; with `sdxl` keyword sizes the positive prompt goes through
    CLIPTextEncodeSDXL (text_g = text_l = text unless given), else CLIPTextEncode."""
    prompt = txt2img(text=text, seed=seed, size=size, steps=steps)
    prompt["4"]["inputs"]["ckpt_name"] = DEMO_SDXL_CHECKPOINT
    if sdxl:
        inputs = {"clip": ["4", 1], "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0,
                  "target_width": 1024, "target_height": 1024, "text_g": text, "text_l": text}
        inputs.update(sdxl)
        prompt["6"] = {"class_type": "CLIPTextEncodeSDXL", "inputs": inputs}
    return prompt


def _image(backend: Any, prompt: dict[str, Any]) -> np.ndarray:
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    files = output_files(backend, record)
    with Image.open(files[0]) as im:
        assert im.size == (prompt["5"]["inputs"]["width"], prompt["5"]["inputs"]["height"])
    return pixels(files[0])


def test_sdxl_txt2img_runs_and_is_deterministic(tmp_path: Path, sdxl_models: Path) -> None:
    prompt = sdxl_prompt(width=512, height=512, target_width=512, target_height=512,
                         text_l="a red circle, sharp")
    first = _image(make_backend(tmp_path / "a", sdxl_models), prompt)
    second = _image(make_backend(tmp_path / "b", sdxl_models), prompt)
    assert np.array_equal(first, second)
    assert first.std() > 1  # an image, not a flat fill


def test_size_conditioning_reaches_the_unet_with_comfyui_defaults(tmp_path: Path,
                                                                   sdxl_models: Path) -> None:
    backend = make_backend(tmp_path, sdxl_models)
    plain = _image(backend, sdxl_prompt(size=64))  # CLIPTextEncode: size = the latent's
    explicit = _image(backend, sdxl_prompt(size=64, width=64, height=64, target_width=64,
                                           target_height=64))
    assert np.array_equal(plain, explicit)
    cropped = _image(backend, sdxl_prompt(size=64, width=64, height=64, target_width=64,
                                          target_height=64, crop_w=32))
    assert np.abs(cropped - plain).max() > 0
    big = _image(backend, sdxl_prompt(size=64, width=1024, height=1024))
    assert np.abs(big - plain).max() > 0
    # text_l alone changes the picture too (CLIP-L half of the context)
    other_l = _image(backend, sdxl_prompt(size=64, width=64, height=64, target_width=64,
                                          target_height=64, text_l="a blue square"))
    assert np.abs(other_l - plain).max() > 0


def test_sdxl_prompts_with_different_sizes_batch_and_match_solo_runs(
        tmp_path: Path, sdxl_models: Path) -> None:
    prompts = [sdxl_prompt(text="a red circle", seed=7, steps=6, width=1024, height=768),
               sdxl_prompt(text="a green square", seed=8, steps=6, crop_w=64, crop_h=32)]
    solo = make_backend(tmp_path / "solo", sdxl_models)
    alone = [_image(solo, p) for p in prompts]
    live = make_backend(tmp_path / "live", sdxl_models)
    try:
        records = run_concurrently(live, prompts)
        assert all(r.status == "success" for r in records), [r.messages for r in records]
        denoiser = next(s for s in live.services.snapshot() if s["kind"] == "denoiser")
        assert denoiser["calls_run"] == 12
        assert denoiser["batches_run"] < 12, denoiser  # rows with different time_ids batched
        for rec, expected in zip(records, alone):
            got = pixels(output_files(live, rec)[0])
            assert np.abs(got - expected).max() <= 1  # <= 1/255 per channel
    finally:
        live.stop()


def test_sdxl_in_worker_processes_and_monolithic_mode_matches(tmp_path: Path,
                                                              sdxl_models: Path) -> None:
    """The SDXL text encoder is chosen by family in a worker process too, and SDXL's extra
    denoiser args cross the process boundary as handles like the rest."""
    import dataclasses

    from lego_backend.backend import Backend

    prompt = sdxl_prompt(seed=11, steps=3, width=512, height=512, text_l="sharp")
    expected = _image(make_backend(tmp_path / "ref", sdxl_models), prompt)
    base = make_backend(tmp_path / "proc", sdxl_models).config
    for changes in ({"replica_runtime": "process", "torch_threads": 1},
                    {"mode": "monolithic"}):
        backend = Backend(dataclasses.replace(base, **changes))
        try:
            got = _image(backend, prompt)
        finally:
            backend.stop()
        assert np.abs(got - expected).max() <= 1, changes
