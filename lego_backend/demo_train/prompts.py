"""Prompt sets: the fixed prompts of sample grids and the held-out evaluation prompts."""
from __future__ import annotations

import numpy as np

from lego_backend.demo_train.captions import caption
from lego_backend.demo_train.scenes import POSITIONS, SIZES, Scene, held_out_triples, single_scene

GRID_PROMPTS = (
    "a red circle on a blue background",
    "blue background with a small yellow star at the top",
    "a green square on the left, white background",
    "a large orange triangle on a purple background",
    "a white star in the centre on a black background",
    "a purple circle at the bottom, yellow background",
    "a black square on the right on a green background",
    "a red triangle on the left and a blue circle on the right on a yellow background",
)


def eval_prompts(count: int = 100, seed: int = 1234) -> list[tuple[Scene, str]]:
    """`count` single-shape prompts whose (colour, background, kind) triple was held out of
    training, each stating position and background; positions cycle so each is equally used."""
    rng = np.random.default_rng(seed)
    triples = sorted(held_out_triples())
    order = rng.permutation(len(triples))
    positions = tuple(POSITIONS)
    out = []
    for i in range(count):
        triple = triples[int(order[i % len(triples)])]
        size = tuple(SIZES)[int(rng.integers(len(SIZES)))]
        scene = single_scene(rng, triple, positions[i % len(positions)], size)
        out.append((scene, caption(scene, rng)))
    return out
