"""ModelStore: ComfyUI's model folder layout, listing, safe name resolution and identities.

Layout under the root (folder key -> directories, first wins on equal names):
    checkpoints, loras, vae, upscale_models, embeddings, diffusers, vae_approx, clip_vision,
    configs                   one directory of the same name each
    controlnet                controlnet/ + t2i_adapter/
    text_encoders             text_encoders/ + legacy clip/        (key alias: clip)
    diffusion_models          diffusion_models/ + legacy unet/     (key alias: unet)
Directories from `extra_model_paths.yaml` files are added: `is_default` sections before the
root's own, others after.

Unknown folder keys raise KeyError in every method (a programming error, not a user error).
Names are '/'-separated paths relative to a folder directory; a name that is absolute, holds
'..', or resolves (through symlinks) outside the directory it was found in is refused with
UnsafePathError.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from lego_backend.errors import ModelLoadError, UnsafePathError
from lego_backend.models.extra_paths import parse_all
from lego_backend.models.identity import IdentityCache

FOLDER_DIRS: dict[str, tuple[str, ...]] = {
    "checkpoints": ("checkpoints",),
    "loras": ("loras",),
    "vae": ("vae",),
    "controlnet": ("controlnet", "t2i_adapter"),
    "upscale_models": ("upscale_models",),
    "embeddings": ("embeddings",),
    "text_encoders": ("text_encoders", "clip"),
    "diffusion_models": ("diffusion_models", "unet"),
    "diffusers": ("diffusers",),
    "vae_approx": ("vae_approx",),
    "clip_vision": ("clip_vision",),
    "configs": ("configs",),
}
ALIASES = {"clip": "text_encoders", "unet": "diffusion_models"}
# Only safetensors files are offered: pickle-based ones (.ckpt .pt .bin .pth ...) can run code
# when loaded, so they never appear in menus and a prompt naming one fails validation (the
# loaders refuse them too, safetensors_io.ensure_safetensors).
MODEL_EXTENSIONS = (".safetensors", ".sft")
CONFIG_EXTENSIONS = (".yaml", ".yml", ".json")
IDENTITY_CACHE_NAME = ".lego-identity-cache.json"
DIFFUSERS_MARKER = "model_index.json"


def is_diffusers_folder(path: Path) -> bool:
    return path.is_dir() and (path / DIFFUSERS_MARKER).is_file()


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class ModelStore:
    """Finds model files by (folder key, name) the way ComfyUI does, without leaving its roots."""

    def __init__(self, root: Path, extra_model_paths: Sequence[Path] = ()):
        self.root = Path(root).expanduser().resolve()
        keys = {k: k for k in FOLDER_DIRS} | ALIASES
        extra = parse_all(extra_model_paths, keys)
        self._dirs: dict[str, list[Path]] = {}
        for key, names in FOLDER_DIRS.items():
            dirs = extra.first.get(key, []) + [self.root / n for n in names]
            dirs += extra.last.get(key, [])
            self._dirs[key] = list(dict.fromkeys(dirs))  # de-duplicate, keep order
        self._identities = IdentityCache(self.root / IDENTITY_CACHE_NAME)

    @staticmethod
    def _key(folder: str) -> str:
        key = ALIASES.get(folder, folder)
        if key not in FOLDER_DIRS:
            raise KeyError(f"unknown model folder {folder!r}")
        return key

    def folders(self) -> dict[str, list[Path]]:
        """Folder key -> its directories in search order (existing or not)."""
        return {k: list(v) for k, v in self._dirs.items()}

    def _search_dirs(self, key: str) -> list[Path]:
        """Directories searched for `key`; checkpoints also finds diffusers folders."""
        return self._dirs[key] + (self._dirs["diffusers"] if key == "checkpoints" else [])

    def list(self, folder: str) -> list[str]:
        """Sorted '/'-separated names of the models in `folder` (recursive). For checkpoints and
        diffusers this includes diffusers folders (directories holding model_index.json)."""
        key = self._key(folder)
        exts = CONFIG_EXTENSIONS if key == "configs" else MODEL_EXTENSIONS
        roots = [(d, () if key == "diffusers" else exts) for d in self._dirs[key]]
        if key == "checkpoints":
            roots += [(d, ()) for d in self._dirs["diffusers"]]
        with_folders = key in ("checkpoints", "diffusers")
        found: set[str] = set()
        for d, wanted in roots:
            found.update(_walk(d, wanted, with_folders))
        return sorted(found)

    def resolve(self, folder: str, name: str) -> Path:
        """The real path of model `name` in `folder`. UnsafePathError if the name would leave
        the folder's directories; ModelLoadError if no such model exists."""
        key = self._key(folder)
        rel = _safe_relative(name)
        for d in self._search_dirs(key):
            candidate = d / rel
            if not os.path.lexists(candidate):
                continue
            real = candidate.resolve()
            if not _inside(real, d.resolve()):
                raise UnsafePathError(f"{folder} model {name!r} resolves outside {d}")
            if real.is_file() or is_diffusers_folder(real):
                return real
        looked = ", ".join(str(d) for d in self._search_dirs(key))
        raise ModelLoadError(f"{folder} model {name!r} not found (looked in: {looked})")

    def identity(self, path: Path) -> str:
        """sha256 hex of the model's content (diffusers folder: over its files), cached."""
        return self._identities.identity(Path(path))


def _safe_relative(name: str) -> PurePosixPath:
    """Validate a user-supplied model name; '\\' is accepted as a separator (Windows clients)."""
    if not name or "\0" in name:
        raise UnsafePathError(f"invalid model name {name!r}")
    posix = name.replace("\\", "/")
    rel = PurePosixPath(posix)
    if rel.is_absolute() or posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        raise UnsafePathError(f"model name {name!r} must be relative")
    if any(part == ".." for part in rel.parts):
        raise UnsafePathError(f"model name {name!r} must not contain '..'")
    return rel


def _walk(root: Path, exts: tuple[str, ...], with_folders: bool) -> list[str]:
    """Relative names under `root` of files with `exts` and (optionally) diffusers folders,
    following symlinks only while they stay inside `root`, each real directory once."""
    if not root.is_dir():
        return []
    real_root = root.resolve()
    out: list[str] = []
    seen: set[Path] = set()
    stack = [root]
    while stack:
        here = stack.pop()
        real_here = here.resolve()
        if real_here in seen or not _inside(real_here, real_root):
            continue
        seen.add(real_here)
        try:
            entries = list(os.scandir(here))
        except OSError:
            continue  # unreadable directory: list what we can
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            real = path.resolve()
            if not _inside(real, real_root):
                continue  # a symlink leading out of the root is never offered
            rel = path.relative_to(root).as_posix()
            if real.is_dir():
                if is_diffusers_folder(real):
                    if with_folders:
                        out.append(rel)
                    continue  # a diffusers folder's inner files are not separate models
                stack.append(path)
            elif exts and real.suffix.lower() in exts:
                out.append(rel)
    return out
