"""Read a generated picture back with plain numpy, no learned classifier: background colour,
the shape's colour, its rough position and (when it is clear enough) its kind. Used to measure
the demo model on held-out prompts and, on rendered scenes, tested to read them near-perfectly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lego_backend.demo_train.scenes import COLOURS, PALETTE, Scene

_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)
BORDER = 3  # pixels of the outer ring that vote for the background
FOREGROUND_DISTANCE = 40.0  # RGB distance from the background colour that counts as "shape"
CONFIDENT_DISTANCE = 40.0  # a pixel this close to a palette colour is not a blended edge
MIN_SHAPE_FRACTION = 0.004  # below this share of the image there is no shape to read
CENTRE_BAND = 0.125  # |offset| / side under which a centroid counts as centred


@dataclass(frozen=True)
class Reading:
    background: str
    colour: str | None  # None: no shape found
    position: str | None
    kind: str | None
    coverage: float  # share of pixels that are shape


def _labels(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest palette index per pixel and the distance to it."""
    d = np.linalg.norm(img[..., None, :].astype(np.float32) - _RGB, axis=-1)
    return d.argmin(axis=-1), d.min(axis=-1)


def _position(ys: np.ndarray, xs: np.ndarray, side: int) -> str:
    dx = (xs.mean() + 0.5) / side - 0.5
    dy = (ys.mean() + 0.5) / side - 0.5
    if max(abs(dx), abs(dy)) < CENTRE_BAND:
        return "centre"
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def _hull_area(points: np.ndarray) -> tuple[float, float]:
    """(area, perimeter) of the convex hull of integer points (monotone chain)."""
    pts = sorted({(int(x), int(y)) for x, y in points})
    if len(pts) < 3:
        return 0.0, 0.0

    def cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[int, int]] = []
    upper: list[tuple[int, int]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1], dtype=np.float64)
    x, y = hull[:, 0], hull[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    perimeter = float(np.linalg.norm(hull - np.roll(hull, 1, axis=0), axis=1).sum())
    return float(area), perimeter


def _kind(mask: np.ndarray) -> str:
    """Circle / square / triangle / star from two shape ratios: fill of the bounding box
    (square 1.0, circle 0.79, triangle 0.5) and solidity, area over convex-hull area (star
    0.56, the others ~1). Pixel counts are compared with the hull of pixel centres grown by half
    a pixel all round (hull + perimeter / 2 + 1), the area the pixels themselves cover."""
    ys, xs = np.nonzero(mask)
    area = float(len(xs))
    box = float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    hull, perimeter = _hull_area(np.stack([xs, ys], axis=1))
    solidity = area / (hull + perimeter / 2 + 1)
    fill = area / box
    if solidity < 0.78:
        return "star"
    if fill > 0.9:
        return "square"
    if fill > 0.66:
        return "circle"
    return "triangle"


def read_image(img: np.ndarray) -> Reading:
    """Reading of one [h, w, 3] uint8 RGB image with at most one shape."""
    side = img.shape[0]
    labels, dist = _labels(img)
    ring = np.ones(labels.shape, dtype=bool)
    ring[BORDER:-BORDER, BORDER:-BORDER] = False
    bg = int(np.bincount(labels[ring], minlength=len(COLOURS)).argmax())
    far = np.linalg.norm(img.astype(np.float32) - _RGB[bg], axis=-1) > FOREGROUND_DISTANCE
    mask = far & (labels != bg)
    coverage = float(mask.mean())
    if coverage < MIN_SHAPE_FRACTION:
        return Reading(COLOURS[bg], None, None, None, coverage)
    # The colour vote uses confidently coloured pixels (not blended edges) when there are some.
    confident = mask & (dist < CONFIDENT_DISTANCE)
    voters = labels[confident] if confident.sum() >= 4 else labels[mask]
    colour = COLOURS[int(np.bincount(voters, minlength=len(COLOURS)).argmax())]
    ys, xs = np.nonzero(mask)
    return Reading(COLOURS[bg], colour, _position(ys, xs, side), _kind(mask), coverage)


@dataclass
class Accuracy:
    total: int = 0
    background: int = 0
    colour: int = 0
    kind: int = 0
    position: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, scene: Scene, reading: Reading, label: str = "") -> None:
        """Score one single-shape scene against what was read from its image."""
        shape = scene.shapes[0]
        self.total += 1
        ok = {"background": reading.background == scene.background,
              "colour": reading.colour == shape.colour,
              "kind": reading.kind == shape.kind,
              "position": reading.position == shape.position}
        for key, good in ok.items():
            setattr(self, key, getattr(self, key) + int(good))
        if not all(ok.values()):
            self.failures.append(f"{label}: read {reading}")

    def rates(self) -> dict[str, float]:
        n = max(self.total, 1)
        return {"background": self.background / n, "colour": self.colour / n,
                "kind": self.kind / n, "position": self.position / n}
