"""Generate images from prompts through the engine itself (Backend, the same graph the editor's
default workflow runs), so what is measured and shown is what users get."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NEGATIVE = ""  # the demo model learned "" (and unknown words) as its unconditional prompt


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 20
    cfg: float = 5.0
    sampler: str = "euler"
    scheduler: str = "normal"
    size: int = 64


def txt2img_prompt(ckpt: str, text: str, seed: int, s: SamplerSettings,
                   batch: int = 1) -> dict[str, Any]:
    """API-format txt2img graph (the shape of examples/workflows/txt2img.json)."""
    return {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": s.steps, "cfg": s.cfg, "sampler_name": s.sampler,
            "scheduler": s.scheduler, "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
            "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": s.size, "height": s.size, "batch_size": batch}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "demo",
                                                    "images": ["8", 0]}},
    }


class EngineRunner:
    """An in-process Backend over a models folder holding the checkpoint."""

    def __init__(self, checkpoint: Path, work: Path):
        from lego_backend.backend import Backend
        from lego_backend.config import BackendConfig

        models = work / "models"
        (models / "checkpoints").mkdir(parents=True, exist_ok=True)
        # a copy: the model store lists regular files only
        shutil.copyfile(checkpoint, models / "checkpoints" / checkpoint.name)
        self.ckpt = checkpoint.name
        cfg = BackendConfig(models_dir=models, output_dir=work / "output",
                            input_dir=work / "input", temp_dir=work / "temp",
                            data_dir=work / "data")
        for d in (cfg.output_dir, cfg.input_dir, cfg.temp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.backend = Backend(cfg)

    def generate(self, text: str, seed: int, settings: SamplerSettings) -> np.ndarray:
        """[h, w, 3] uint8 of the prompt's first image."""
        from PIL import Image

        from lego_backend.runtime.records import PromptRequest

        self.backend.submit(PromptRequest(txt2img_prompt(self.ckpt, text, seed, settings),
                                          client_id="demo-eval"))
        record = self.backend.run_next()
        if record is None or not record.outputs:
            raise RuntimeError(f"the engine produced no image for {text!r}")
        item = next(iter(record.outputs.values()))["images"][0]
        root = {"output": self.backend.config.output_dir, "temp": self.backend.config.temp_dir}
        path = root[item["type"]] / item["subfolder"] / item["filename"]
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).copy()

    def close(self) -> None:
        self.backend.stop()


@contextmanager
def engine(checkpoint: Path) -> Iterator[EngineRunner]:
    with tempfile.TemporaryDirectory(prefix="lego-demo-eval-") as tmp:
        runner = EngineRunner(Path(checkpoint), Path(tmp))
        try:
            yield runner
        finally:
            runner.close()
