"""Measure a checkpoint on held-out prompts through the engine, and render the README grid."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lego_backend.demo_train.engine_run import SamplerSettings, engine
from lego_backend.demo_train.evaluate import Accuracy, read_image
from lego_backend.demo_train.grid import save_grid
from lego_backend.demo_train.prompts import GRID_PROMPTS, eval_prompts


@dataclass
class EvalResult:
    accuracy: Accuracy
    seconds_per_image: float

    def as_dict(self) -> dict[str, Any]:
        return {"prompts": self.accuracy.total, **{k: round(v, 3) for k, v in
                                                    self.accuracy.rates().items()},
                "seconds_per_image": round(self.seconds_per_image, 3)}


def evaluate_checkpoint(checkpoint: Path, count: int = 100, seed: int = 0,
                        settings: SamplerSettings | None = None,
                        grid: Path | None = None) -> EvalResult:
    """Generate one image per held-out prompt (image seed = seed + index) and read it back."""
    settings = settings or SamplerSettings()
    acc = Accuracy()
    images, labels = [], []
    with engine(checkpoint) as run:
        run.generate("warm up", seed, settings)  # model loading is not per-image time
        start = time.monotonic()
        for i, (scene, text) in enumerate(eval_prompts(count)):
            img = run.generate(text, seed + i, settings)
            acc.add(scene, read_image(img), text)
            images.append(img)
            labels.append(text)
        per = (time.monotonic() - start) / max(count, 1)
    if grid is not None:
        save_grid(images, labels, grid, columns=10)
    return EvalResult(acc, per)


def render_showcase(checkpoint: Path, out: Path, seeds: tuple[int, ...] = (1, 2, 3),
                    settings: SamplerSettings | None = None,
                    prompts: tuple[str, ...] = GRID_PROMPTS) -> Path:
    """The README picture: each prompt (a row) at a few seeds, through the engine."""
    settings = settings or SamplerSettings()
    images, labels = [], []
    with engine(checkpoint) as run:
        for text in prompts:
            for s in seeds:
                images.append(run.generate(text, s, settings))
                labels.append(text if s == seeds[0] else f"(seed {s})")
    return save_grid(images, labels, out, columns=len(seeds) * 2, scale=2)
