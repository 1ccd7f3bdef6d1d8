"""Weights identity: the sha256 of what a model file (or diffusers folder) contains.

Services are keyed by it, so two names for the same bytes share one loaded model. Hashing a
multi-GB checkpoint takes seconds, so results are cached in memory and in a small JSON file
(shared by every process using the same model root) keyed by absolute path + mtime_ns + size:
a second process, or a restart, does not re-hash an unchanged file.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from lego_backend.errors import ModelLoadError
from lego_backend.models.cache import write_atomic

_CHUNK = 4 * 1024 * 1024
# Files of a diffusers folder that define the model; anything else (README, images) is ignored.
FOLDER_SUFFIXES = (".safetensors", ".sft", ".json", ".txt", ".model", ".yaml")
_CACHE_VERSION = 1


def hash_file(path: Path) -> str:
    """sha256 hex of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _folder_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in FOLDER_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def hash_folder(folder: Path) -> str:
    """sha256 over the sorted (relative name, content hash) pairs of a diffusers folder."""
    h = hashlib.sha256()
    for f in _folder_files(folder):
        h.update(f.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        h.update(hash_file(f).encode("ascii") + b"\n")
    return h.hexdigest()


def stat_signature(path: Path) -> str:
    """What must be unchanged for a cached hash to stay valid (mtime_ns and size; for a folder
    those of every file that enters the hash)."""
    if path.is_dir():
        parts = []
        for f in _folder_files(path):
            st = f.stat()
            parts.append(f"{f.relative_to(path).as_posix()}:{st.st_mtime_ns}:{st.st_size}")
        return "dir:" + hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()
    st = path.stat()
    return f"file:{st.st_mtime_ns}:{st.st_size}"


class IdentityCache:
    """In-memory + JSON-file cache of content hashes. Thread-safe within a process; across
    processes the file is replaced atomically and a lost update only costs a re-hash."""

    def __init__(self, cache_file: Path):
        self._file = cache_file
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[str, str]] = {}  # abs path -> (signature, sha256)

    def identity(self, path: Path) -> str:
        path = path.resolve()
        if not path.exists():
            raise ModelLoadError(f"cannot hash missing model {path}")
        key, sig = str(path), stat_signature(path)
        with self._lock:
            hit = self._memory.get(key)
            if hit is None:
                hit = self._read_file().get(key)
            if hit is not None and hit[0] == sig:
                self._memory[key] = hit
                return hit[1]
        digest = hash_folder(path) if path.is_dir() else hash_file(path)
        with self._lock:
            self._memory[key] = (sig, digest)
            entries = self._read_file()
            entries[key] = (sig, digest)
            self._write_file(entries)
        return digest

    def _read_file(self) -> dict[str, tuple[str, str]]:
        try:
            data = json.loads(self._file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no cache yet, or a corrupt one: hashing again is always correct
        if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
            return {}
        raw = data.get("entries", {})
        return {k: (v["sig"], v["sha256"]) for k, v in raw.items()
                if isinstance(v, dict) and "sig" in v and "sha256" in v}

    def _write_file(self, entries: dict[str, tuple[str, str]]) -> None:
        body = {"version": _CACHE_VERSION,
                "entries": {k: {"sig": s, "sha256": d} for k, (s, d) in sorted(entries.items())}}
        try:
            write_atomic(self._file, json.dumps(body, indent=1))
        except OSError:
            pass  # a read-only model root still works; it just re-hashes next time
