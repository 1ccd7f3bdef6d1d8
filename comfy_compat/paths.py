"""Joining client-supplied names onto server directories without letting them escape.

Every path a client names (/view, /upload, /userdata, /view_metadata, /templates) goes through
`safe_join`: absolute paths, drive letters, '..' segments, NUL bytes and symlinks that resolve
outside the base are refused with UnsafePathError (rendered 403/400 by the routes)."""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from lego_backend.errors import UnsafePathError


def clean_relative(rel: str) -> str:
    """Normalise a client-supplied relative path ('a\\b//c' -> 'a/b/c'); refuse absolute paths,
    '..' segments and NUL bytes."""
    if "\x00" in rel:
        raise UnsafePathError("path contains a NUL byte")
    rel = rel.replace("\\", "/")
    if rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePathError(f"absolute path refused: {rel!r}")
    parts = [p for p in PurePosixPath(rel).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePathError(f"'..' refused: {rel!r}")
    return "/".join(parts)


def safe_join(base: Path, *rels: str) -> Path:
    """`base / rel...`, guaranteed (after resolving symlinks) to stay inside `base`."""
    cleaned = [clean_relative(r) for r in rels if r]
    base_resolved = Path(os.path.realpath(base))
    target = base_resolved.joinpath(*[c for c in cleaned if c])
    resolved = Path(os.path.realpath(target))
    if resolved != base_resolved and base_resolved not in resolved.parents:
        raise UnsafePathError("path escapes its folder")
    return target


def is_plain_name(name: str) -> bool:
    """A single file name: no separators, not '.'/'..', no NUL."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\x00")
