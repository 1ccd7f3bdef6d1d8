"""Textual-inversion embeddings named in prompt text as `embedding:NAME` (ComfyUI's syntax):
finding them in prompts and on disk, and reading their vectors from safetensors files.

Accepted layouts: A1111 single-file (`emb_params`), A1111 `.pt` converted to safetensors
(`string_to_param.*`), diffusers' learned embeds (one tensor named after the token) and the
SDXL pair (`clip_l` is used for SD1-sized encoders). Pickle files are never opened."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

from lego_backend.models.safetensors_io import load_tensors

# The name ends at whitespace, a comma, brackets or ':'. In `(embedding:x:1.2)` the emphasis
# parser (prompt_weights.py) has already taken the weight; a bare `embedding:x:1.2` drops it.
EMBEDDING_RE = re.compile(r"embedding:([^\s,()\[\]{}:]+)(?::[-+]?[0-9]*\.?[0-9]+)?")
_EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")


def split_prompt(text: str) -> Iterator[tuple[str, str]]:
    """("text", piece) and ("embedding", name without extension) items, in order."""
    pos = 0
    for m in EMBEDDING_RE.finditer(text):
        if m.start() > pos:
            yield "text", text[pos:m.start()]
        name = m.group(1)
        for ext in _EXTENSIONS:
            if name.lower().endswith(ext):
                name = name[:-len(ext)]
                break
        yield "embedding", name
        pos = m.end()
    if pos < len(text):
        yield "text", text[pos:]


def find_embedding(name: str, folders: Iterable[Path]) -> Path | None:
    """NAME.safetensors in the first folder that has it (NAME may hold sub-folders)."""
    for folder in folders:
        candidate = (Path(folder) / f"{name}.safetensors").resolve()
        if Path(folder).resolve() in candidate.parents and candidate.is_file():
            return candidate
    return None


def embedding_folders_near(model_path: Path) -> list[Path]:
    """`embeddings/` folders beside the ancestors of a model file: for a checkpoint at
    <root>/checkpoints/x.safetensors this finds <root>/embeddings (ComfyUI's layout)."""
    return [p / "embeddings" for p in Path(model_path).resolve().parents
            if (p / "embeddings").is_dir()]


def read_vectors(path: Path, hidden_size: int) -> torch.Tensor | None:
    """[n, hidden_size] vectors, or None when no tensor of that width is in the file."""
    state = load_tensors(path)
    preferred = ["emb_params", "clip_l", *sorted(k for k in state if k.startswith(
        "string_to_param."))]
    for key in [*preferred, *sorted(state)]:
        value = state.get(key)
        if value is None or value.dim() not in (1, 2):
            continue
        vectors = value.reshape(-1, value.shape[-1]).float()
        if vectors.shape[-1] == hidden_size:
            return vectors
    return None
