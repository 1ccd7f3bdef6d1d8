"""ComfyUI's `extra_model_paths.yaml`: more folders to search for each kind of model.

    comfyui:                       # any section name
        base_path: /data/comfy/    # relative -> relative to the yaml file's directory
        is_default: true           # optional: these folders are searched before the root's own
        checkpoints: models/checkpoints/
        loras: |
            models/loras
            models/lycoris
        clip: models/clip          # legacy names map onto today's keys (clip -> text_encoders)

`~` and environment variables are expanded in base_path and in each folder. Keys that are not
model folders (e.g. `custom_nodes`) are ignored: they concern other parts of ComfyUI.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lego_backend.errors import ModelLoadError


@dataclass(frozen=True)
class ExtraPaths:
    """Folders contributed by yaml files, split by whether they go before or after the root's."""

    first: dict[str, list[Path]] = field(default_factory=dict)  # from is_default sections
    last: dict[str, list[Path]] = field(default_factory=dict)  # from the other sections


def _expand(raw: str) -> str:
    return os.path.expandvars(os.path.expanduser(raw.strip()))


def _entries(value: Any) -> list[str]:
    """A folder value: one path, a multi-line string of paths, or a yaml list of paths."""
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


def parse_extra_paths(yaml_path: Path, folder_key: Mapping[str, str],
                      into: ExtraPaths | None = None) -> ExtraPaths:
    """Read one yaml file. `folder_key` maps every accepted yaml key (folder keys and legacy
    aliases) to the folder key it feeds."""
    out = into or ExtraPaths()
    try:
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"cannot read extra model paths {yaml_path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{yaml_path}: expected named sections at the top level")
    here = yaml_path.resolve().parent
    for body in data.values():
        if not isinstance(body, dict):
            continue  # a stray scalar section carries no folders
        base_raw = body.get("base_path")
        base = Path(_expand(str(base_raw))) if base_raw else here
        if not base.is_absolute():
            base = here / base
        target = out.first if body.get("is_default") is True else out.last
        for key, value in body.items():
            if key in ("base_path", "is_default") or key not in folder_key:
                continue
            for entry in _entries(value):
                path = Path(_expand(entry))
                target.setdefault(folder_key[key], []).append(
                    (path if path.is_absolute() else base / path).resolve())
    return out


def parse_all(yaml_paths: Iterable[Path], folder_key: Mapping[str, str]) -> ExtraPaths:
    """Merge several yaml files in order."""
    out = ExtraPaths()
    for p in yaml_paths:
        parse_extra_paths(Path(p), folder_key, into=out)
    return out
