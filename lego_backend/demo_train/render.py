"""Scene -> RGB pixels (numpy), anti-aliased by supersampling each shape's bounding box."""
from __future__ import annotations

import math

import numpy as np

from lego_backend.demo_train.scenes import PALETTE, SIZES, Scene, Shape

SUPERSAMPLE = 4  # sub-pixels per pixel side: smooth edges, like a photo of a flat shape
SQUARE_HALF = 0.8  # square half-side / circumradius: similar visual weight as the circle
STAR_INNER = 0.45  # inner / outer radius of the five-pointed star


def _polygon(kind: str, cx: float, cy: float, r: float) -> np.ndarray:
    """Vertices (x, y), in order around the centre, of the triangle or the star."""
    if kind == "triangle":  # point up, centroid at the centre
        angles = [-90.0, 30.0, 150.0]
        return np.array([(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a)))
                         for a in angles])
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * STAR_INNER
        a = math.radians(-90.0 + 36.0 * i)
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return np.array(pts)


def _inside_fan(x: np.ndarray, y: np.ndarray, centre: tuple[float, float],
                verts: np.ndarray) -> np.ndarray:
    """Point-in-polygon for a polygon that is star-shaped around `centre`: the union of the
    triangles (centre, v_i, v_i+1), each tested with three half-planes."""
    inside = np.zeros(x.shape, dtype=bool)
    cx, cy = centre
    for i in range(len(verts)):
        (ax, ay), (bx, by) = verts[i], verts[(i + 1) % len(verts)]
        tri = ((cx, cy), (ax, ay), (bx, by))
        # inside = on the same side of all three edges (either winding)
        sides = [(qx - px) * (y - py) - (qy - py) * (x - px)
                 for (px, py), (qx, qy) in zip(tri, tri[1:] + tri[:1])]
        inside |= ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | (
            (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0))
    return inside


def shape_coverage(shape: Shape, side: int) -> tuple[slice, slice, np.ndarray]:
    """(rows, cols, coverage in [0, 1]) over the shape's bounding box in a side x side image."""
    cx, cy = shape.centre[0] * side, shape.centre[1] * side
    r = SIZES[shape.size] * side
    x0, x1 = max(0, int(cx - r) - 1), min(side, math.ceil(cx + r) + 1)
    y0, y1 = max(0, int(cy - r) - 1), min(side, math.ceil(cy + r) + 1)
    s = SUPERSAMPLE
    xs = x0 + (np.arange((x1 - x0) * s) + 0.5) / s
    ys = y0 + (np.arange((y1 - y0) * s) + 0.5) / s
    x, y = np.meshgrid(xs, ys)
    if shape.kind == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
    elif shape.kind == "square":
        half = r * SQUARE_HALF
        inside = (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    else:
        inside = _inside_fan(x, y, (cx, cy), _polygon(shape.kind, cx, cy, r))
    cover = inside.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))
    return slice(y0, y1), slice(x0, x1), cover


def render(scene: Scene, side: int = 64) -> np.ndarray:
    """[side, side, 3] uint8 RGB."""
    img = np.empty((side, side, 3), dtype=np.float32)
    img[:] = PALETTE[scene.background]
    for shape in scene.shapes:
        rows, cols, cover = shape_coverage(shape, side)
        colour = np.array(PALETTE[shape.colour], dtype=np.float32)
        patch = img[rows, cols]
        img[rows, cols] = patch + (colour - patch) * cover[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
