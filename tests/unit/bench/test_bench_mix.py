"""The workflow mix: graph shapes, one shared checkpoint, deterministic draws, packaged prompts."""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from lego_backend.bench import mix
from lego_backend.bench.mix import (
    CONTROLNET,
    HINT_IMAGE,
    HIRES,
    IMG2IMG,
    KINDS,
    LORA_A,
    LORA_B,
    SOURCE_IMAGE,
    TXT2IMG,
    MixConfig,
    RequestFactory,
    build_prompt,
    input_images,
    load_prompts,
)

CFG = MixConfig()


def by_type(graph, class_type):
    return [n for n in graph.values() if n["class_type"] == class_type]


def check_links(graph):
    for nid, node in graph.items():
        for value in node["inputs"].values():
            if isinstance(value, list):
                assert value[0] in graph, f"{nid} links to missing node {value[0]}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_uses_the_one_checkpoint_and_saves(kind):
    g = build_prompt(kind, "a cat", 5, CFG)
    check_links(g)
    [ckpt] = by_type(g, "CheckpointLoaderSimple")
    assert ckpt["inputs"]["ckpt_name"] == CFG.checkpoint
    [save] = by_type(g, "SaveImage")
    assert save["inputs"]["filename_prefix"].endswith(kind)
    assert by_type(g, "CLIPTextEncode")[0]["inputs"]["text"] == "a cat"
    samplers = by_type(g, "KSampler")
    assert [s["inputs"]["steps"] for s in samplers] == (
        [CFG.steps, CFG.hires_steps] if kind == "hires_fix" else [CFG.steps])
    assert all(s["inputs"]["seed"] in (5, 6) for s in samplers)


def test_lora_kinds_use_two_different_files():
    [a] = by_type(build_prompt(LORA_A, "x", 1, CFG), "LoraLoader")
    [b] = by_type(build_prompt(LORA_B, "x", 1, CFG), "LoraLoader")
    assert a["inputs"]["lora_name"] != b["inputs"]["lora_name"]
    assert {a["inputs"]["lora_name"], b["inputs"]["lora_name"]} == set(CFG.loras)
    g = build_prompt(LORA_A, "x", 1, CFG)
    assert by_type(g, "KSampler")[0]["inputs"]["model"] == ["lora", 0]
    assert all(n["inputs"]["clip"] == ["lora", 1] for n in by_type(g, "CLIPTextEncode"))
    assert not by_type(build_prompt(TXT2IMG, "x", 1, CFG), "LoraLoader")


def test_controlnet_kind_conditions_the_sampler_on_the_hint():
    g = build_prompt(CONTROLNET, "x", 1, CFG)
    assert by_type(g, "LoadImage")[0]["inputs"]["image"] == HINT_IMAGE
    assert by_type(g, "ControlNetLoader")[0]["inputs"]["control_net_name"] == CFG.controlnet
    s = by_type(g, "KSampler")[0]["inputs"]
    assert (s["positive"], s["negative"]) == (["cn_apply", 0], ["cn_apply", 1])


def test_img2img_encodes_the_uploaded_source():
    g = build_prompt(IMG2IMG, "x", 1, CFG)
    assert by_type(g, "LoadImage")[0]["inputs"]["image"] == SOURCE_IMAGE
    assert not by_type(g, "EmptyLatentImage")
    s = by_type(g, "KSampler")[0]["inputs"]
    assert s["latent_image"] == ["encode", 0] and s["denoise"] == CFG.img2img_denoise


def test_hires_fix_is_two_passes_with_a_latent_upscale():
    g = build_prompt(HIRES, "x", 1, CFG)
    assert len(by_type(g, "KSampler")) == 2
    up = by_type(g, "LatentUpscale")[0]["inputs"]
    assert (up["width"], up["height"]) == (128, 128)
    assert by_type(g, "EmptyLatentImage")[0]["inputs"]["width"] == 64
    assert g["sample2"]["inputs"]["latent_image"] == ["upscale", 0]
    assert g["sample2"]["inputs"]["denoise"] == CFG.hires_denoise
    assert g["decode"]["inputs"]["samples"] == ["sample2", 0]


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError):
        build_prompt("inpaint", "x", 1, CFG)


def test_factory_is_deterministic_and_follows_weights():
    a = RequestFactory(CFG, ["p1", "p2", "p3"], seed=3).draw(50, {TXT2IMG: 100.0})
    b = RequestFactory(CFG, ["p1", "p2", "p3"], seed=3).draw(50, {TXT2IMG: 100.0})
    assert [r.prompt for r in a] == [r.prompt for r in b]
    c = RequestFactory(CFG, ["p1", "p2", "p3"], seed=4).draw(50)
    assert [r.prompt for r in a] != [r.prompt for r in c]
    assert all(r.slo_ms == (100.0 if r.kind == TXT2IMG else None) for r in a)
    counts = Counter(r.kind for r in RequestFactory(CFG, ["p"], seed=1).draw(600))
    assert set(counts) == set(KINDS) and min(counts.values()) > 60
    only = replace(CFG, weights=((TXT2IMG, 0.0), (HIRES, 1.0)))
    assert {r.kind for r in RequestFactory(only, ["p"], seed=1).draw(20)} == {HIRES}


def test_factory_seeds_differ_so_requests_miss_the_output_cache():
    reqs = RequestFactory(CFG, ["same"], seed=9).draw(40)
    seeds = [by_type(r.prompt, "KSampler")[0]["inputs"]["seed"] for r in reqs]
    assert len(set(seeds)) == len(seeds)


def test_factory_rejects_empty_inputs():
    with pytest.raises(ValueError):
        RequestFactory(CFG, [], seed=1)
    with pytest.raises(ValueError):
        RequestFactory(replace(CFG, weights=((TXT2IMG, 0.0),)), ["p"], seed=1)


def test_packaged_prompts_are_the_diffusiondb_5k():
    prompts = load_prompts()
    pkg = Path(mix.__file__).resolve().parents[1] / "data"
    raw = (pkg / "prompts-diffusiondb-5k.txt").read_text("utf-8").splitlines()
    assert len(raw) == 5000
    assert len(prompts) == sum(bool(line.strip()) for line in raw) > 4900  # blank lines dropped
    assert all(p == p.strip() and p for p in prompts)
    assert (pkg / "README.md").read_text("utf-8").count("DiffusionDB") >= 1
    assert "CC0" in (pkg / "README.md").read_text("utf-8")


def test_load_prompts_from_a_file(tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("one\n\n  two  \n", "utf-8")
    assert load_prompts(f) == ["one", "two"]


def test_input_images_are_pngs_of_the_mix_size():
    images = input_images(CFG)
    assert set(images) == {SOURCE_IMAGE, HINT_IMAGE}
    for data in images.values():
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG" and im.size == (CFG.size, CFG.size)
    assert input_images(CFG) == images  # deterministic
