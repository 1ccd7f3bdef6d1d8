"""Many prompts in flight: denoiser steps of different prompts run as one batch at step
boundaries, and each image is the same as when its prompt runs alone (batch-invariance)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRequest
from tests.integration.engine.helpers import make_backend, output_files, run, txt2img

pytestmark = pytest.mark.slow


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def test_concurrent_prompts_batch_and_match_solo_runs(tmp_path, demo_models):
    prompts = [txt2img(text=f"prompt number {i}", seed=100 + i, steps=12) for i in range(4)]
    solo = make_backend(tmp_path / "solo", demo_models)
    solo_pixels = []
    for p in prompts:
        record, _ = run(solo, p)
        solo_pixels.append(pixels(output_files(solo, record)[0]))

    live = make_backend(tmp_path / "live", demo_models)
    live.start()
    try:
        done = threading.Semaphore(0)
        live.add_listener(lambda e: done.release() if isinstance(e, ev.PromptDone) else None)
        ids = [live.submit(PromptRequest(p, client_id="c")).prompt_id for p in prompts]
        for _ in ids:
            assert done.acquire(timeout=300)
        records = [live.record(pid) for pid in ids]
        assert all(r.status == "success" for r in records)
        denoiser = next(s for s in live.services.snapshot() if s["kind"] == "denoiser")
        # 4 prompts x 12 steps = 48 denoiser calls; batching must have merged many of them
        assert denoiser["calls_run"] == 48
        assert denoiser["batches_run"] < 40, denoiser
        for rec, expected in zip(records, solo_pixels):
            got = pixels(output_files(live, rec)[0])
            assert np.abs(got - expected).max() <= 1  # <= 1/255 per channel
    finally:
        live.stop()
