"""The on-disk cache for files the loaders derive (configs, tokenizer files).

Everything here is content-addressed or versioned, written atomically (temp file + rename), so
concurrent processes sharing one cache directory never read a half-written file and never need
a lock: at worst two of them write the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CACHE_ENV = "LEGO_CACHE_DIR"


def default_cache_dir() -> Path:
    """$LEGO_CACHE_DIR, else $XDG_CACHE_HOME/lego-diffusion, else ~/.cache/lego-diffusion."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lego-diffusion"


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    tmp.replace(path)


def config_dir(cache_dir: Path | None, components: Mapping[str, Mapping[str, Any]]) -> Path:
    """A diffusers-style config folder (`<component>/config.json` each) for these configs, keyed
    by the hash of their content: the same derived configs always reuse the same folder."""
    text = {name: json.dumps(cfg, indent=2, sort_keys=True) for name, cfg in components.items()}
    digest = hashlib.sha256(json.dumps(text, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    root = (cache_dir or default_cache_dir()) / "configs" / digest
    for name, body in text.items():
        target = root / name / "config.json"
        if not target.is_file():
            write_atomic(target, body + "\n")
    return root
