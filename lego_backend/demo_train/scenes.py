"""The scene vocabulary of the demo dataset and seeded scene sampling.

A scene is a background colour and one or two shapes, each with a kind, a colour (never the
background's), one of five anchor positions and one of three sizes. Geometry is in fractions of
the image side, so the same scene renders at 64 or 128 pixels. Which facts a caption states is
decided here too (a caption may leave position or size unsaid: the scene still has one).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# Saturated, well-separated RGB values: nearest-colour classification stays unambiguous.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 36, 36), "green": (36, 170, 60), "blue": (40, 80, 225),
    "yellow": (245, 225, 40), "orange": (250, 140, 20), "purple": (145, 55, 185),
    "white": (245, 245, 245), "black": (18, 18, 18),
}
COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "star")
# Anchor centres (x, y) as fractions of the side; y grows downward as in images.
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
# Circumradius as a fraction of the side. "medium" is what a caption without a size word means.
SIZES: dict[str, float] = {"small": 0.11, "medium": 0.165, "large": 0.22}
JITTER = 0.04  # anchor jitter (fraction of the side), so positions are regions, not points
PAIRS = (("left", "right"), ("top", "bottom"))  # where two shapes go

Triple = tuple[str, str, str]  # (shape colour, background colour, shape kind)


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    position: str
    size: str
    centre: tuple[float, float]  # jittered, fractions of the side
    say_position: bool
    say_size: bool


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]
    say_background: bool = True

    def triples(self) -> list[Triple]:
        return [(s.colour, self.background, s.kind) for s in self.shapes]


def all_triples() -> list[Triple]:
    return [(c, b, k) for c, b, k in itertools.product(COLOURS, COLOURS, SHAPES) if c != b]


def held_out_triples(seed: int = 7, count: int = 28) -> frozenset[Triple]:
    """Combinations never shown in training, for the generalisation measurement. Chosen so every
    (shape colour, background) pair and every (colour, kind) pair stays seen in some other form:
    the model must compose known parts, not learn new words."""
    rng = np.random.default_rng(seed)
    chosen: set[Triple] = set()
    pairs_used: set[tuple[str, str]] = set()
    kinds_used: dict[tuple[str, str], int] = {}
    for i in rng.permutation(len(all_triples())):
        colour, bg, kind = all_triples()[int(i)]
        if (colour, bg) in pairs_used or kinds_used.get((colour, kind), 0) >= 2:
            continue
        chosen.add((colour, bg, kind))
        pairs_used.add((colour, bg))
        kinds_used[(colour, kind)] = kinds_used.get((colour, kind), 0) + 1
        if len(chosen) == count:
            break
    return frozenset(chosen)


def _shape(rng: np.random.Generator, colour: str, position: str, size: str,
           say_position: bool) -> Shape:
    ax, ay = POSITIONS[position]
    jx, jy = rng.uniform(-JITTER, JITTER, size=2)
    return Shape(kind=SHAPES[int(rng.integers(len(SHAPES)))], colour=colour, position=position,
                 size=size, centre=(ax + float(jx), ay + float(jy)), say_position=say_position,
                 say_size=size != "medium" and bool(rng.random() < 0.8))


def sample_scene(rng: np.random.Generator, exclude: frozenset[Triple] = frozenset(),
                 two_shapes: float = 0.25) -> Scene:
    """One random scene none of whose (colour, background, kind) triples is in `exclude`."""
    while True:
        bg = COLOURS[int(rng.integers(len(COLOURS)))]
        others = [c for c in COLOURS if c != bg]
        if rng.random() < two_shapes:
            c1, c2 = rng.choice(others, size=2, replace=False)
            pair = PAIRS[int(rng.integers(2))]
            if rng.random() < 0.5:
                pair = (pair[1], pair[0])
            say = bool(rng.random() < 0.8)
            sizes = [("small", "medium")[int(rng.integers(2))] for _ in range(2)]
            shapes = (_shape(rng, str(c1), pair[0], sizes[0], say),
                      _shape(rng, str(c2), pair[1], sizes[1], say))
        else:
            colour = others[int(rng.integers(len(others)))]
            position = tuple(POSITIONS)[int(rng.integers(len(POSITIONS)))]
            size = tuple(SIZES)[int(rng.integers(len(SIZES)))]
            shapes = (_shape(rng, colour, position, size, bool(rng.random() < 0.75)),)
        scene = Scene(background=bg, shapes=shapes, say_background=bool(rng.random() < 0.93))
        if not any(t in exclude for t in scene.triples()):
            return scene


def single_scene(rng: np.random.Generator, triple: Triple, position: str, size: str) -> Scene:
    """A one-shape scene with every fact stated (evaluation prompts)."""
    colour, bg, kind = triple
    ax, ay = POSITIONS[position]
    shape = Shape(kind=kind, colour=colour, position=position, size=size, centre=(ax, ay),
                  say_position=True, say_size=size != "medium")
    return Scene(background=bg, shapes=(shape,))
