"""Reading and writing `.safetensors` files, and refusing everything else.

Only safetensors is ever loaded: pickle-based formats (.ckpt .pt .pth .bin .pkl ...) can run
arbitrary code when unpickled, so they are refused by extension before any byte is read, and
`torch.load` is never called. Headers are parsed directly (8-byte length + JSON) so detection
costs one small read, not a model load.

The writer is our own because safetensors' serializer emits `__metadata__` in hash-map order,
which changes between runs; demo files must be byte-identical for the same seed.
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from lego_backend.errors import ModelLoadError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".pkl")
# A header bigger than this is not a model header; refusing it avoids reading garbage into RAM.
_MAX_HEADER_BYTES = 100 * 1024 * 1024

_DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


@dataclass(frozen=True)
class SafetensorsHeader:
    """What a safetensors file declares, without its tensor data."""

    shapes: dict[str, tuple[int, ...]]  # tensor name -> shape
    dtypes: dict[str, str]  # tensor name -> safetensors dtype name ("F32", "F16", ...)
    metadata: dict[str, str]  # the file's `__metadata__` (string -> string), may be empty


def ensure_safetensors(path: Path) -> None:
    """Raise ModelLoadError unless `path` names a safetensors file we are willing to open."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path.name} is a pickle-based file; only .safetensors is loaded for safety "
            "(pickle can execute code). Convert it to .safetensors first."
        )
    if suffix not in SAFETENSORS_SUFFIXES:
        raise ModelLoadError(f"{path.name}: unsupported model file type '{suffix}'; "
                             "expected .safetensors")
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")


def read_header(path: Path) -> SafetensorsHeader:
    """Parse the JSON header of a safetensors file (cheap: no tensor data is read)."""
    ensure_safetensors(path)
    try:
        with path.open("rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise ValueError("file shorter than a safetensors header")
            (n,) = struct.unpack("<Q", raw_len)
            if n > _MAX_HEADER_BYTES:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(fh.read(n))
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ModelLoadError(f"{path.name} is not a valid safetensors file: {exc}") from exc
    metadata = header.pop("__metadata__", None) or {}
    shapes = {k: tuple(int(d) for d in v["shape"]) for k, v in header.items()}
    dtypes = {k: str(v["dtype"]) for k, v in header.items()}
    return SafetensorsHeader(shapes=shapes, dtypes=dtypes, metadata=dict(metadata))


def load_tensors(path: Path, keep: Iterable[str] | None = None,
                 prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Load tensors (on CPU) whose names are in `keep` or start with one of `prefixes`; with
    neither given, load everything. Only the selected tensors are read from disk."""
    ensure_safetensors(path)
    wanted = set(keep) if keep is not None else None
    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name in fh.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                everything = wanted is None and not prefixes
                listed = wanted is not None and name in wanted
                if everything or listed or (prefixes and name.startswith(prefixes)):
                    out[name] = fh.get_tensor(name)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot read {path.name}: {exc}") from exc
    return out


def save_tensors(tensors: Mapping[str, torch.Tensor], path: Path,
                 metadata: Mapping[str, str] | None = None) -> None:
    """Write a safetensors file deterministically: tensors sorted by name, metadata sorted by
    key, header padded with spaces to 8 bytes (as the format requires for alignment)."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _DTYPE_NAMES:
            raise ValueError(f"cannot store dtype {t.dtype} of {name}")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                         "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as fh:
        fh.write(struct.pack("<Q", len(head)))
        fh.write(head)
        for data in chunks:
            fh.write(data)
    tmp.replace(path)  # atomic: readers never see a half-written model
