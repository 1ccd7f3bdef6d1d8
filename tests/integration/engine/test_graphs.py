"""txt2img, img2img, LoRA, ControlNet and latent-upscale graphs on the demo models at 64 px:
image size and count, PNG metadata, byte-determinism, and that a LoRA really changes pixels."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.integration.engine.helpers import make_backend, output_files, pixels, run, txt2img

pytestmark = pytest.mark.slow


@pytest.fixture()
def backend(tmp_path, demo_models):
    return make_backend(tmp_path, demo_models)


def test_txt2img_writes_png_with_metadata_and_is_byte_deterministic(backend):
    workflow = {"nodes": [], "links": [], "version": 0.4}
    record, _rec = run(backend, txt2img(batch=2), {"extra_pnginfo": {"workflow": workflow}})
    assert record.status == "success", record.messages
    files = output_files(backend, record)
    assert [f.name for f in files] == ["test_00001_.png", "test_00002_.png"]
    with Image.open(files[0]) as im:
        assert im.size == (64, 64)
        assert json.loads(im.text["prompt"])["3"]["class_type"] == "KSampler"
        assert json.loads(im.text["workflow"]) == workflow
    # the same prompt again is fully cached: no new file
    again, rec2 = run(backend, txt2img(batch=2))
    assert "Executing" not in rec2.types()
    assert output_files(backend, again) == files
    # a fresh backend (cold cache) gives identical bytes, saved under the next counter
    fresh = make_backend(backend.config.output_dir.parent, backend.config.models_dir)
    rerun, _ = run(fresh, txt2img(batch=2), {"extra_pnginfo": {"workflow": workflow}})
    new_files = output_files(fresh, rerun)
    assert [f.name for f in new_files] == ["test_00003_.png", "test_00004_.png"]
    assert new_files[0].read_bytes() == files[0].read_bytes()
    assert new_files[1].read_bytes() == files[1].read_bytes()
    # the two images of one batch have different noise
    assert not np.array_equal(pixels(files[0]), pixels(files[1]))


def test_seed_changes_image(backend):
    a, _ = run(backend, txt2img(seed=1))
    b, _ = run(backend, txt2img(seed=2))
    assert not np.array_equal(pixels(output_files(backend, a)[0]),
                              pixels(output_files(backend, b)[0]))


def _with_lora(prompt, name="lego-demo-lora.safetensors", strength=1.0):
    prompt = dict(prompt)
    prompt["10"] = {"class_type": "LoraLoader", "inputs": {
        "model": ["4", 0], "clip": ["4", 1], "lora_name": name,
        "strength_model": strength, "strength_clip": strength}}
    prompt["3"] = {**prompt["3"], "inputs": {**prompt["3"]["inputs"], "model": ["10", 0]}}
    for nid in ("6", "7"):
        prompt[nid] = {**prompt[nid], "inputs": {**prompt[nid]["inputs"], "clip": ["10", 1]}}
    return prompt


@pytest.mark.parametrize("lora", ["lego-demo-lora.safetensors", "lego-demo-lora-peft.safetensors"])
def test_lora_changes_image_and_removing_it_restores_exact_bytes(backend, lora):
    base, _ = run(backend, txt2img(seed=7))
    base_file = output_files(backend, base)[0]
    with_lora, _ = run(backend, _with_lora(txt2img(seed=7), lora))
    lora_file = output_files(backend, with_lora)[0]
    diff = np.abs(pixels(base_file) - pixels(lora_file)).mean()
    assert diff > 2.0, f"LoRA barely changed the image (mean abs diff {diff})"
    backend.cache.clear()  # force a real re-run of the base graph
    again, _ = run(backend, txt2img(seed=7))
    again_file = output_files(backend, again)[0]
    assert again_file != base_file
    assert np.array_equal(pixels(again_file), pixels(base_file))


def test_img2img_keeps_size_and_follows_input(backend):
    src = backend.config.input_dir / "src.png"
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, :32] = (255, 0, 0)
    Image.fromarray(arr).save(src)
    prompt = txt2img(seed=3)
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": "src.png"}}
    prompt["11"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"].update(latent_image=["11", 0], denoise=0.5)
    del prompt["5"]
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    with Image.open(output_files(backend, record)[0]) as im:
        assert im.size == (64, 64)
    # changing the input file under the same name re-runs LoadImage (file hash in the key)
    Image.fromarray(255 - arr).save(src)
    _record2, rec2 = run(backend, prompt)
    executing = [e.node for e in rec2.events if type(e).__name__ == "Executing"]
    assert "10" in executing


def test_controlnet_changes_image(backend):
    hint = backend.config.input_dir / "hint.png"
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[16:48, 16:48] = 255
    Image.fromarray(arr).save(hint)
    base, _ = run(backend, txt2img(seed=5))
    prompt = txt2img(seed=5)
    prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": "hint.png"}}
    prompt["11"] = {"class_type": "ControlNetLoader",
                    "inputs": {"control_net_name": "lego-demo-controlnet.safetensors"}}
    prompt["12"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
        "positive": ["6", 0], "negative": ["7", 0], "control_net": ["11", 0],
        "image": ["10", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
    prompt["3"]["inputs"].update(positive=["12", 0], negative=["12", 1])
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    diff = np.abs(pixels(output_files(backend, base)[0]) -
                  pixels(output_files(backend, record)[0])).mean()
    assert diff > 1.0


def test_hires_fix_latent_upscale_doubles_size(backend):
    prompt = txt2img(seed=9)
    prompt["10"] = {"class_type": "LatentUpscale", "inputs": {
        "samples": ["3", 0], "upscale_method": "nearest-exact", "width": 128, "height": 128,
        "crop": "disabled"}}
    prompt["11"] = {"class_type": "KSampler", "inputs": {
        **prompt["3"]["inputs"], "latent_image": ["10", 0], "denoise": 0.5}}
    prompt["8"]["inputs"]["samples"] = ["11", 0]
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    with Image.open(output_files(backend, record)[0]) as im:
        assert im.size == (128, 128)
