"""Size checks shared by nodes that create images or latents: a graph asking for more pixels
than the server allows is refused at validation, before anything allocates memory."""
from __future__ import annotations

from typing import Any

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024


def check_pixels(ctx: Any, width: int = 0, height: int = 0, batch_size: int = 1,
                 **_: Any) -> tuple[str, str] | None:
    limit = getattr(ctx, "max_pixels", DEFAULT_MAX_PIXELS)
    total = int(width) * int(height) * int(batch_size)
    if total > limit:
        return ("width", f"width x height x batch_size = {total} pixels exceeds this server's "
                         f"limit of {limit} (lego serve --max-pixels)")
    return None
