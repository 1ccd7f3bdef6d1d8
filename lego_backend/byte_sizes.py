"""Sizes as users write them: '80GiB', '512MiB', '40GB', '1e9' -> bytes (binary and decimal
units, case-insensitive). One parser for every flag and spec that takes a size."""
from __future__ import annotations

import re
from types import MappingProxyType

_UNITS = MappingProxyType({"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
                          "tib": 1 << 40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12})


def parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 80GiB, 40GB, 1024MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
