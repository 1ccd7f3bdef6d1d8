"""Merging a service's adapter set into freshly loaded weights (one merged copy per adapter set)."""
from __future__ import annotations

from typing import Any

from lego_backend.models import loading
from lego_backend.services.protocol import AdapterRef


def merge_adapters(module: Any, adapters: tuple[AdapterRef, ...], component: str) -> None:
    for adapter in adapters:
        weights = loading.load_lora(adapter.path)
        deltas = weights.for_component(component)
        if deltas:
            loading.merge_lora(module, deltas, adapter.strength)
