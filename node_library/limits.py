"""Size checks shared by nodes that create images or latents: a graph asking for more pixels
than the server allows is refused at validation, before anything allocates memory."""
from __future__ import annotations

from typing import Any

DEFAULT_MAX_PIXELS = 64 * 1024 * 1024


def _limit(ctx: Any) -> int:
    return int(getattr(ctx, "max_pixels", DEFAULT_MAX_PIXELS))


def _message(total: int, limit: int) -> str:
    return (f"width x height x batch_size = {total} pixels exceeds this server's limit of "
            f"{limit} (lego serve --max-pixels)")


def check_pixels(ctx: Any, width: int = 0, height: int = 0, batch_size: int = 1,
                 **_: Any) -> tuple[str, str] | None:
    limit = _limit(ctx)
    total = int(width) * int(height) * int(batch_size)
    if total > limit:
        return ("width", _message(total, limit))
    return None


def ensure_pixels(ctx: Any, width: int, height: int, batch_size: int) -> None:
    """The same budget for sizes known only when a node runs (scale-by factors, a batch coming
    from upstream, padding, model upscaling): raises before the tensor is allocated, so a chain
    of x8 upscales fails with a message instead of exhausting memory."""
    limit = _limit(ctx)
    total = int(width) * int(height) * int(batch_size)
    if total > limit:
        raise ValueError(_message(total, limit))
