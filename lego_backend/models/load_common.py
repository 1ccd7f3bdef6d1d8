"""Steps shared by the component loaders (loading.py): verifying key sets, loading through
diffusers' single-file machinery or from_pretrained, and normalising the result.

diffusers without accelerate loads single files with strict=False, which would leave missing
weights randomly initialised; so every converted state dict is checked against the key set of
the model its config describes (built on the meta device: no memory) before loading.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lego_backend.errors import ModelLoadError
from lego_backend.models.cache import config_dir
from lego_backend.models.store import is_diffusers_folder

Tensors = dict[str, torch.Tensor]


def finish(model: Any) -> Any:
    """fp32, eval, no grad; and prove no parameter was left unloaded on the meta device."""
    if any(p.is_meta for p in model.parameters()):
        raise ModelLoadError(f"{type(model).__name__}: some weights were not loaded")
    tensors = [*model.parameters(), *model.buffers()]
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors):
        # nn.Module.to, not ModelMixin.to: the latter logs a misleading "keep in fp32" warning
        torch.nn.Module.to(model, dtype=torch.float32)
    model.eval()
    model.requires_grad_(False)
    return model


def check_keys(expected: set[str], provided: set[str], what: str) -> None:
    missing = sorted(expected - provided)
    unexpected = sorted(provided - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"{what}: weights do not match the derived architecture "
            f"(missing {len(missing)}: {missing[:5]}, unexpected {len(unexpected)}: "
            f"{unexpected[:5]})")


def meta_keys(cls: Any, config: dict[str, Any]) -> set[str]:
    """The state-dict keys a model with this config has, built without allocating weights."""
    with torch.device("meta"):
        model = cls.from_config(config)
    return set(model.state_dict())


def single_file(cls: Any, subfolder: str, config: dict[str, Any], state: Tensors,
                 convert: Callable[[Tensors, dict[str, Any]], Tensors] | None,
                 cache_dir: Path | None, what: str) -> Any:
    """Convert (unless already diffusers-keyed), verify, then load via from_single_file."""
    try:
        converted = convert(state, config) if convert is not None else state
        check_keys(meta_keys(cls, config), set(converted), what)
        folder = config_dir(cache_dir, {subfolder: config})
        model = cls.from_single_file(converted, config=str(folder), subfolder=subfolder,
                                     local_files_only=True)
    except (KeyError, ValueError, RuntimeError) as exc:  # shapes or keys diffusers rejects
        raise ModelLoadError(f"{what}: cannot load: {exc}") from exc
    return finish(model)


def pretrained(cls: Any, folder: Path, what: str, **kwargs: Any) -> Any:
    """from_pretrained on a local diffusers component folder, safetensors only."""
    weights = [p for p in folder.glob("*") if p.suffix in (".safetensors", ".sft")]
    if not weights:
        if any(folder.glob("*.bin")) or any(folder.glob("*.ckpt")):
            raise ModelLoadError(f"{folder} holds only pickle-based weights; only .safetensors "
                                 "is loaded for safety")
        raise ModelLoadError(f"{what}: no weights in {folder}")
    plain = [p for p in weights if p.name.count(".") == 1]
    variant = None if plain else weights[0].name.split(".")[-2]  # e.g. model.fp16.safetensors
    try:
        model = cls.from_pretrained(str(folder), local_files_only=True, use_safetensors=True,
                                    variant=variant, **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load {what} from {folder}: {exc}") from exc
    return finish(model)


def diffusers_kwargs() -> dict[str, Any]:
    """Say up front whether accelerate's meta-device loading is available, instead of letting
    diffusers log a warning on every load when it is not."""
    return {"low_cpu_mem_usage": importlib.util.find_spec("accelerate") is not None}


def component_dir(path: Path, sub: str) -> Path | None:
    """`path/sub` for a diffusers pipeline folder, `path` for a lone component folder."""
    if is_diffusers_folder(path):
        return path / sub
    if path.is_dir() and (path / "config.json").is_file():
        return path
    return None
