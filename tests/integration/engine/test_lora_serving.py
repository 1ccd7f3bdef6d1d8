"""LoRAs at run time: one UNet serves every LoRA combination, requests with different LoRAs
batch together, and a LoRA'd request can start denoising while its adapter loads."""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from lego_backend.backend import Backend
from lego_backend.models import loading
from lego_backend.runtime import events as ev
from lego_backend.services import adapters as adapters_module
from tests.integration.engine.helpers import (
    make_backend,
    output_files,
    pixels,
    run,
    run_concurrently,
    txt2img,
)
from tests.integration.engine.test_graphs import _with_lora

pytestmark = pytest.mark.slow


def test_lora_workflows_share_one_unet_and_batch_together(tmp_path, demo_models):
    prompts = [txt2img(seed=11, steps=8),
               _with_lora(txt2img(seed=12, steps=8), "lego-demo-lora.safetensors", 1.0),
               _with_lora(txt2img(seed=13, steps=8), "lego-demo-lora-peft.safetensors", 0.5)]
    solo = make_backend(tmp_path / "solo", demo_models)
    expected = []
    for p in prompts:
        record, _ = run(solo, p)
        expected.append(pixels(output_files(solo, record)[0]))
    base_only = make_backend(tmp_path / "base", demo_models)
    run(base_only, prompts[0])
    # LoRA workflows add no weights beyond the small adapters
    assert (solo.services_report()["resident_weight_bytes"]
            == base_only.services_report()["resident_weight_bytes"])
    assert len([s for s in solo.services_report()["services"] if s["kind"] == "denoiser"]) == 1

    live = make_backend(tmp_path / "live", demo_models)
    try:
        records = run_concurrently(live, prompts)
        denoiser = next(s for s in live.services.snapshot() if s["kind"] == "denoiser")
        assert denoiser["batches_run"] < denoiser["calls_run"]  # mixed-LoRA batches happened
        for record, want in zip(records, expected):
            got = pixels(output_files(live, record)[0])
            assert np.abs(got - want).max() <= 1
    finally:
        live.stop()


def test_denoising_starts_while_the_lora_loads(tmp_path, demo_models, monkeypatch):
    base = make_backend(tmp_path, demo_models)
    backend = Backend(dataclasses.replace(base.config, lora_async_steps=3))
    gate = threading.Event()
    steps_before_load: list[int] = []
    real_load = loading.load_lora

    def slow_load(path, **kw):
        assert gate.wait(60)
        return real_load(path, **kw)

    monkeypatch.setattr(adapters_module.loading, "load_lora", slow_load)
    # the text encoder needs the LoRA before it can encode: give it the CLIP LoRA at strength 0
    prompt = _with_lora(txt2img(seed=5, steps=6))
    prompt["10"]["inputs"]["strength_clip"] = 0.0

    def listener(event):
        if isinstance(event, ev.Progress) and not gate.is_set():
            steps_before_load.append(event.value)
            if event.value == 3:
                gate.set()  # the adapter "finishes loading" after 3 steps ran without it

    backend.add_listener(listener)
    record, _ = run(backend, prompt)
    assert record.status == "success"
    assert steps_before_load == [1, 2, 3]
