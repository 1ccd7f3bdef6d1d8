"""The project's own classic-shape workflows (tests/data/workflows/lego_classic/, UI format, one
per classic SD1.x template) convert the way POST /prompt and `lego run` convert them, validate,
and run end to end on the demo models after classic_remap's renames and shrinking. Besides the
images each one writes, the editor features they use are checked by what a user would notice:
the primitive's seed is the one used, a bypassed LoRA has no effect, a muted save writes nothing,
the subgraph's second pass runs with the denoise set outside it, inpainting leaves the unmasked
part alone, LoRAs and embeddings change the picture."""
from __future__ import annotations

import copy
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from comfy_compat.app import build_app
from lego_backend.backend import Backend
from lego_backend.models.demo import DEMO_CHECKPOINT
from tests.integration.engine.helpers import make_backend, output_files, pixels, run
from tests.integration.server.conftest import make_config
from tests.integration.server.live import LiveServer
from tests.integration.templates.classic_remap import remap_to_demo, write_input_images

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parents[2] / "data" / "workflows" / "lego_classic"
# Sizes of every image written (SaveImage and PreviewImage), sorted, after remap_to_demo (/8).
EXPECTED_SIZES = {
    "2_pass_pose": [(64, 64), (96, 96)],  # 512 -> 768 latent upscale
    "area_composition": [(96, 64), (144, 96)],  # 768 x 512, then 1.5x
    "controlnet_example": [(64, 64), (96, 64)],  # + the Canny preview of the 96 x 64 input
    "default": [(64, 64)],
    "depth_controlnet": [(64, 64)],
    "embedding_example": [(64, 64)],
    "esrgan_example": [(64, 64), (256, 256)],  # the 4x demo upscaler
    "hiresfix_esrgan_workflow": [(64, 64), (128, 128)],  # the muted 4x save writes nothing
    "hiresfix_latent_workflow": [(64, 64), (96, 96)],
    "image2image": [(120, 80)],  # 0.01 MP of 96 x 64 = 125 x 84, on the VAE's 8 px grid
    "inpaint_example": [(96, 64)],
    "inpaint_model_outpainting": [(144, 88)],  # 120 x 80 + padding 8 / 0 / 16 / 8
    "latent_upscale_different_prompt_model": [(64, 64), (96, 96)],
    "lora": [(64, 96)],
    "lora_multiple": [(64, 64)],
    "mixing_controlnets": [(64, 64)],
}
NAMES = sorted(p.stem for p in HERE.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))


def ui_node(workflow: dict[str, Any], title: str) -> dict[str, Any]:
    return next(n for n in workflow["nodes"] if n.get("title") == title)


def of_type(prompt: dict[str, Any], class_type: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in prompt.items() if v["class_type"] == class_type}


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, demo_models: Path) -> Backend:
    return make_backend(tmp_path_factory.mktemp("lego-classic"), demo_models)


def convert(backend: Backend, workflow: dict[str, Any]) -> dict[str, Any]:
    """UI -> API exactly as POST /prompt and `lego run` do, then remapped to the demo models."""
    prompt = remap_to_demo(backend.convert_workflow(workflow))
    write_input_images(prompt, backend.config.input_dir)
    return prompt


def render(backend: Backend, prompt: dict[str, Any]) -> list[Path]:
    record, _ = run(backend, prompt)
    assert record.status == "success", record.messages
    return output_files(backend, record)


def test_every_classic_shape_has_a_workflow() -> None:
    assert NAMES == sorted(EXPECTED_SIZES)


def test_the_files_are_what_build_py_writes(tmp_path, monkeypatch) -> None:
    """The committed JSON is regenerated output, not hand-edited drift."""
    from tests.data.workflows.lego_classic import build

    monkeypatch.setattr(build, "HERE", tmp_path)
    build.main()
    for name in NAMES:
        assert json.loads((tmp_path / f"{name}.json").read_text()) == load(name), name


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_on_the_demo_models(name, backend) -> None:
    files = render(backend, convert(backend, load(name)))
    sizes = []
    for path in files:
        with Image.open(path) as im:
            sizes.append(im.size)
    assert sorted(sizes) == EXPECTED_SIZES[name]


def test_editor_only_nodes_vanish_and_the_primitive_seed_is_used(backend) -> None:
    prompt = backend.convert_workflow(load("default"))
    assert sorted(v["class_type"] for v in prompt.values()) == sorted([
        "CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
        "KSampler", "VAEDecode", "SaveImage"])  # no Note, Reroute or PrimitiveNode
    (sampler,) = of_type(prompt, "KSampler").values()
    assert sampler["inputs"]["seed"] == 20240611  # the primitive's, not the widget's own 777
    (ckpt_id,) = of_type(prompt, "CheckpointLoaderSimple")
    (decode,) = of_type(prompt, "VAEDecode").values()
    assert decode["inputs"]["vae"] == [ckpt_id, 2]  # through the reroute

    # The seed the primitive holds is the one that reaches the sampler: changing it in the
    # editor file changes the picture; changing the sampler's shadowed widget does not.
    base = pixels(render(backend, convert(backend, load("default")))[0])
    shadowed = load("default")
    next(n for n in shadowed["nodes"] if n["type"] == "KSampler")["widgets_values"][0] = 1
    assert np.array_equal(pixels(render(backend, convert(backend, shadowed))[0]), base)
    reseeded = load("default")
    ui_node(reseeded, "Shared seed")["widgets_values"][0] = 1
    assert not np.array_equal(pixels(render(backend, convert(backend, reseeded))[0]), base)


def test_a_lora_changes_the_picture_and_a_bypassed_one_does_not(backend) -> None:
    with_lora = load("lora")
    bypassed = copy.deepcopy(with_lora)
    ui_node(bypassed, "Style LoRA")["mode"] = 4
    plain_prompt = convert(backend, bypassed)
    assert not of_type(plain_prompt, "LoraLoader")
    (ckpt_id,) = of_type(plain_prompt, "CheckpointLoaderSimple")
    (sampler,) = of_type(plain_prompt, "KSampler").values()
    assert sampler["inputs"]["model"] == [ckpt_id, 0]  # the bypass hands the model through
    lora_px = pixels(render(backend, convert(backend, with_lora))[0])
    plain_px = pixels(render(backend, plain_prompt)[0])
    assert np.abs(lora_px - plain_px).mean() > 1.0

    # lora_multiple's third LoRA is bypassed in the file: two LoRAs run, the chain skips it,
    # and switching it on changes the picture.
    chain = convert(backend, load("lora_multiple"))
    loras = of_type(chain, "LoraLoader")
    assert len(loras) == 2
    (sampler,) = of_type(chain, "KSampler").values()
    last = next(k for k, v in loras.items() if v["inputs"]["model"][0] in loras)
    assert sampler["inputs"]["model"] == [last, 0]
    on = load("lora_multiple")
    ui_node(on, "Film grain (off)")["mode"] = 0
    assert not np.array_equal(pixels(render(backend, chain)[0]),
                              pixels(render(backend, convert(backend, on))[0]))


def test_a_bypassed_controlnet_hands_positive_and_negative_through(backend) -> None:
    """Bypassing the second of two ControlNetApplyAdvanced nodes: the sampler gets the first
    one's positive and negative, each on its own slot, and the picture changes."""
    both = convert(backend, load("mixing_controlnets"))
    workflow = load("mixing_controlnets")
    ui_node(workflow, "Edge control")["mode"] = 4
    one = convert(backend, workflow)
    (apply_id, apply), = of_type(one, "ControlNetApplyAdvanced").items()
    assert apply["_meta"]["title"] == "Pose control"
    (sampler,) = of_type(one, "KSampler").values()
    assert sampler["inputs"]["positive"] == [apply_id, 0]
    assert sampler["inputs"]["negative"] == [apply_id, 1]
    # The edge control acts from 10% to 80% of the schedule: at 2 "normal" steps the model is
    # called at t=999 and t=0 only, both outside it, so compare at 4 steps (t=666, 333 inside).
    for prompt in (both, one):
        (sampler,) = of_type(prompt, "KSampler").values()
        sampler["inputs"]["steps"] = 4
    assert not np.array_equal(pixels(render(backend, both)[0]), pixels(render(backend, one)[0]))


def test_a_muted_save_writes_nothing(backend) -> None:
    workflow = load("hiresfix_esrgan_workflow")
    prompt = convert(backend, workflow)
    assert [v["inputs"]["filename_prefix"] for v in of_type(prompt, "SaveImage").values()] \
        == ["lego_hires_esrgan"]
    unmuted = copy.deepcopy(workflow)
    ui_node(unmuted, "4x copy (muted)")["mode"] = 0
    sizes = sorted(Image.open(p).size for p in render(backend, convert(backend, unmuted)))
    assert sizes == [(64, 64), (128, 128), (256, 256)]  # unmuted, it writes the 4x picture


def test_the_subgraph_pass_runs_with_the_denoise_set_outside_it(backend) -> None:
    prompt = backend.convert_workflow(load("hiresfix_latent_workflow"))
    inner = {k: v for k, v in prompt.items() if ":" in k}
    assert sorted(v["class_type"] for v in inner.values()) == ["KSampler", "LatentUpscaleBy"]
    (second,) = (v for v in inner.values() if v["class_type"] == "KSampler")
    assert second["inputs"]["denoise"] == 0.55  # the outer primitive, not the inner 0.5
    grow = next(k for k, v in inner.items() if v["class_type"] == "LatentUpscaleBy")
    assert second["inputs"]["latent_image"] == [grow, 0]
    outer_sampler = next(k for k, v in prompt.items()
                         if v["class_type"] == "KSampler" and ":" not in k)
    assert prompt[grow]["inputs"]["samples"] == [outer_sampler, 0]


def test_inpainting_repaints_only_the_masked_part(backend) -> None:
    """Two seeds: the transparent hole (LoadImage's alpha mask) comes out different, the rest
    of the picture stays put. (The demo VAE is untrained, so "stays put" is measured between
    runs, not against the source pixels, which its round trip does not preserve.)"""
    prompt = convert(backend, load("inpaint_example"))
    other = copy.deepcopy(prompt)
    (sampler,) = of_type(other, "KSampler").values()
    sampler["inputs"]["seed"] += 1
    (load_node,) = of_type(prompt, "LoadImage").values()
    with Image.open(backend.config.input_dir / load_node["inputs"]["image"]) as im:
        alpha = np.asarray(im)[..., 3]
    yy, xx = np.mgrid[0:alpha.shape[0], 0:alpha.shape[1]]
    hole = alpha == 0
    far = ~hole & (np.hypot(xx - 48, yy - 32) > 14 + 12)  # clear of grow_mask and latent cells
    diff = np.abs(pixels(render(backend, prompt)[0]) - pixels(render(backend, other)[0]))
    kept, repainted = diff[far].mean(), diff[hole].mean()
    print(f"inpaint, seed vs seed+1: mean |diff| outside {kept:.2f}, in the hole {repainted:.2f}")
    assert repainted > 5 * max(kept, 0.5)


def test_moving_an_area_prompt_moves_its_effect(backend) -> None:
    """Area offsets shrink with the canvas, so each area lands inside it: moving one area
    changes the picture (offsets left at full size would all clamp to the same edge)."""
    prompt = convert(backend, load("area_composition"))
    areas = of_type(prompt, "ConditioningSetArea").values()
    assert sorted(a["inputs"]["x"] for a in areas) == [0, 32, 64]  # 0 / 256 / 512 px, / 8
    moved = copy.deepcopy(prompt)
    first = next(a for a in of_type(moved, "ConditioningSetArea").values()
                 if a["inputs"]["x"] == 0)
    first["inputs"]["x"] = 32
    base, shifted = render(backend, prompt), render(backend, moved)
    assert not np.array_equal(pixels(base[0]), pixels(shifted[0]))


def test_an_embedding_in_the_prompt_changes_the_picture(backend) -> None:
    prompt = convert(backend, load("embedding_example"))
    texts = [v["inputs"]["text"] for v in of_type(prompt, "CLIPTextEncode").values()]
    assert any("embedding:lego-demo-embedding" in t for t in texts)
    without = copy.deepcopy(prompt)
    for node in of_type(without, "CLIPTextEncode").values():
        node["inputs"]["text"] = node["inputs"]["text"].replace(
            "embedding:lego-demo-embedding,", "")
    assert not np.array_equal(pixels(render(backend, prompt)[0]),
                              pixels(render(backend, without)[0]))


def test_post_prompt_takes_a_ui_file(tmp_path, demo_models) -> None:
    """The editor's own save of `default`, pointed at the demo checkpoint and shrunk in the
    editor (widgets edited in place), queued over HTTP as-is: one 64 x 64 picture."""
    workflow = load("default")
    ui_node(workflow, "Base model")["widgets_values"][0] = DEMO_CHECKPOINT
    nodes = {n["type"]: n for n in workflow["nodes"]}
    nodes["EmptyLatentImage"]["widgets_values"][:2] = [64, 64]
    nodes["KSampler"]["widgets_values"][2] = 2
    with LiveServer(build_app(Backend(make_config(tmp_path, demo_models)))) as srv:
        r = srv.http.post("/prompt", json={"prompt": workflow, "client_id": "lego-classic"})
        assert r.status_code == 200, r.text
        pid = r.json()["prompt_id"]
        deadline = time.monotonic() + 60
        while not (hist := srv.http.get(f"/history/{pid}").json()):
            assert time.monotonic() < deadline, "prompt did not finish"
            time.sleep(0.1)
        entry = hist[pid]
        assert entry["status"]["status_str"] == "success"
        (images,) = [o["images"] for o in entry["outputs"].values()]
        (image,) = images
        assert image["filename"].startswith("lego_default")
        view = srv.http.get("/view", params={"filename": image["filename"], "type": "output",
                                             "subfolder": image["subfolder"]})
        assert view.status_code == 200
        with Image.open(io.BytesIO(view.content)) as im:
            assert im.size == (64, 64)
        # the queued prompt is the converted API graph, run with the primitive's seed
        (sampler,) = of_type(entry["prompt"][2], "KSampler").values()
        assert sampler["inputs"]["seed"] == 20240611 and sampler["inputs"]["steps"] == 2
