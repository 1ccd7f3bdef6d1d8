"""Build and run graphs on the demo models in-process."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from lego_backend.backend import Backend
from lego_backend.config import BackendConfig
from lego_backend.runtime import events as ev
from lego_backend.runtime.records import PromptRecord, PromptRequest

CKPT = "lego-demo-sd15.safetensors"


def make_backend(tmp: Path, models: Path) -> Backend:
    cfg = BackendConfig(models_dir=models, output_dir=tmp / "output", input_dir=tmp / "input",
                        temp_dir=tmp / "temp", data_dir=tmp / "data")
    for d in (cfg.output_dir, cfg.input_dir, cfg.temp_dir):
        d.mkdir(parents=True, exist_ok=True)
    return Backend(cfg)


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


def run(backend: Backend, prompt: dict[str, Any],
        extra: dict[str, Any] | None = None) -> tuple[PromptRecord, Recorder]:
    rec = Recorder()
    remove = backend.add_listener(rec)
    try:
        backend.submit(PromptRequest(copy.deepcopy(prompt), client_id="test",
                                     extra_data=extra or {}))
        record = backend.run_next()
    finally:
        remove()
    assert record is not None
    return record, rec


def output_files(backend: Backend, record: PromptRecord) -> list[Path]:
    roots = {"output": backend.config.output_dir, "temp": backend.config.temp_dir}
    files = []
    for ui in record.outputs.values():
        for item in ui.get("images", []):
            files.append(roots[item["type"]] / item["subfolder"] / item["filename"])
    return files


def txt2img(text: str = "a red circle", seed: int = 42, size: int = 64, steps: int = 4,
            sampler: str = "euler", scheduler: str = "normal", batch: int = 1) -> dict[str, Any]:
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": sampler,
            "scheduler": scheduler, "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": size, "height": size, "batch_size": batch}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "test", "images": ["8", 0]}},
    }


def pixels(path: Path) -> Any:
    """An image file's RGB pixels as int16 (differences do not wrap)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def run_concurrently(backend: Backend, prompts: list[dict[str, Any]],
                     timeout_s: float = 300) -> list[PromptRecord]:
    """Start the backend's prompt runners, submit every prompt at once, wait until all are done
    and return their records (the caller stops the backend)."""
    import threading

    done = threading.Semaphore(0)
    backend.add_listener(lambda e: done.release() if isinstance(e, ev.PromptDone) else None)
    backend.start()
    ids = [backend.submit(PromptRequest(copy.deepcopy(p), client_id="c")).prompt_id
           for p in prompts]
    for _ in ids:
        assert done.acquire(timeout=timeout_s)
    records = [backend.record(pid) for pid in ids]
    assert all(r is not None for r in records)
    return records  # type: ignore[return-value]
