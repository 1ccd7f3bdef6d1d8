"""Image grids with captions (PIL's built-in bitmap font: no font files needed)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

CELL_SCALE = 3  # 64 px images are shown at 192 px, pixel-exact (nearest neighbour)


def save_grid(images: list[np.ndarray], labels: list[str], path: Path, columns: int,
              scale: int = CELL_SCALE, caption_lines: int = 3) -> Path:
    """Tiles `images` (uint8 HWC, same size) in rows of `columns`, each with its label below."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    h, w = images[0].shape[:2]
    cw, ch = w * scale, h * scale
    line_h = 12
    label_h = caption_lines * line_h + 6
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (cw + 8) + 8, rows * (ch + label_h + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    chars = max(8, cw // 6)
    for i, (img, label) in enumerate(zip(images, labels)):
        x = 8 + (i % columns) * (cw + 8)
        y = 8 + (i // columns) * (ch + label_h + 8)
        sheet.paste(Image.fromarray(img).resize((cw, ch), Image.NEAREST), (x, y))
        for j, line in enumerate(textwrap.wrap(label, chars)[:caption_lines]):
            draw.text((x, y + ch + 3 + j * line_h), line, fill=(30, 30, 30), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
