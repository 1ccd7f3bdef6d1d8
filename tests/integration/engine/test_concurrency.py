"""Many prompts in flight: denoiser steps of different prompts run as one batch at step
boundaries, and each image is the same as when its prompt runs alone (batch-invariance)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.integration.engine.helpers import (
    make_backend,
    output_files,
    pixels,
    run,
    run_concurrently,
    txt2img,
)

pytestmark = pytest.mark.slow


def test_concurrent_prompts_batch_and_match_solo_runs(tmp_path, demo_models):
    prompts = [txt2img(text=f"prompt number {i}", seed=100 + i, steps=12) for i in range(4)]
    solo = make_backend(tmp_path / "solo", demo_models)
    solo_pixels = []
    for p in prompts:
        record, _ = run(solo, p)
        solo_pixels.append(pixels(output_files(solo, record)[0]))

    live = make_backend(tmp_path / "live", demo_models)
    try:
        records = run_concurrently(live, prompts)
        assert all(r.status == "success" for r in records)
        denoiser = next(s for s in live.services.snapshot() if s["kind"] == "denoiser")
        # 4 prompts x 12 steps = 48 denoiser calls; batching must have merged many of them
        assert denoiser["calls_run"] == 48
        assert denoiser["batches_run"] < 40, denoiser
        # its busy time is what its batches took: more than none, within the prompts' span
        span_s = (max(r.end_time for r in records) - min(r.start_time for r in records)) / 1e3
        assert 0.0 < denoiser["busy_s"] <= span_s + 0.01, denoiser
        for rec, expected in zip(records, solo_pixels):
            got = pixels(output_files(live, rec)[0])
            assert np.abs(got - expected).max() <= 1  # <= 1/255 per channel
    finally:
        live.stop()


def test_controlnet_steps_batch_across_prompts_with_their_own_strengths(tmp_path, demo_models):
    hint = np.zeros((64, 64, 3), np.uint8)
    hint[16:48, 16:48] = 255

    def controlled(seed: int, strength: float) -> dict:
        prompt = txt2img(seed=seed, steps=6)
        prompt["10"] = {"class_type": "LoadImage", "inputs": {"image": "hint.png"}}
        prompt["11"] = {"class_type": "ControlNetLoader",
                        "inputs": {"control_net_name": "lego-demo-controlnet.safetensors"}}
        prompt["12"] = {"class_type": "ControlNetApplyAdvanced", "inputs": {
            "positive": ["6", 0], "negative": ["7", 0], "control_net": ["11", 0],
            "image": ["10", 0], "strength": strength, "start_percent": 0.0, "end_percent": 1.0}}
        prompt["3"]["inputs"].update(positive=["12", 0], negative=["12", 1])
        return prompt

    prompts = [controlled(1, 1.0), controlled(2, 0.4), controlled(3, 1.7)]
    solo = make_backend(tmp_path / "solo", demo_models)
    Image.fromarray(hint).save(solo.config.input_dir / "hint.png")
    expected = []
    for p in prompts:
        record, _ = run(solo, p)
        expected.append(pixels(output_files(solo, record)[0]))
    live = make_backend(tmp_path / "live", demo_models)
    Image.fromarray(hint).save(live.config.input_dir / "hint.png")
    try:
        records = run_concurrently(live, prompts)
        cn = next(s for s in live.services.snapshot() if s["kind"] == "controlnet")
        assert cn["calls_run"] == 18 and cn["batches_run"] < 18, cn
        for record, want in zip(records, expected):
            got = pixels(output_files(live, record)[0])
            assert np.abs(got - want).max() <= 1
    finally:
        live.stop()
