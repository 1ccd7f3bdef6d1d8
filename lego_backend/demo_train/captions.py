"""Captions for scenes, in several phrasings, stating only the facts the scene says to state.

The phrasings are how people describe such pictures ("a red circle on a blue background",
"blue background with a small yellow star at the top"); the model learns the words, not one
sentence template.
"""
from __future__ import annotations

import numpy as np

from lego_backend.demo_train.scenes import Scene, Shape

POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "at the left"),
    "right": ("on the right", "at the right"),
    "top": ("at the top", "on top"),
    "bottom": ("at the bottom", "on the bottom"),
    "centre": ("in the centre", "in the center", "in the middle"),
}


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _noun(shape: Shape) -> str:
    words = [shape.size] if shape.say_size else []
    return " ".join([*words, shape.colour, shape.kind])


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _described(rng: np.random.Generator, shape: Shape) -> str:
    text = _article(_noun(shape))
    if shape.say_position:
        text += " " + _pick(rng, POSITION_PHRASES[shape.position])
    return text


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """One caption of `scene`, phrasing drawn from `rng`."""
    things = " and ".join(_described(rng, s) for s in scene.shapes)
    if not scene.say_background:
        return things
    bg = scene.background
    form = int(rng.integers(4))
    if form == 0:
        return f"{things} on {_article(bg)} background"
    if form == 1:
        return f"{bg} background with {things}"
    if form == 2:
        return f"{things}, {bg} background"
    return f"{_article(bg)} background and {things}"
