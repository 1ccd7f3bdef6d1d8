"""Finished prompts, oldest first, bounded (oldest pruned first). Thread-safe."""
from __future__ import annotations

import threading
from collections import OrderedDict

from lego_backend.runtime.records import PromptRecord


class PromptHistory:
    def __init__(self, max_items: int):
        self.max_items = max_items
        self._lock = threading.Lock()
        self._records: OrderedDict[str, PromptRecord] = OrderedDict()

    def add(self, record: PromptRecord) -> None:
        with self._lock:
            self._records[record.prompt_id] = record
            while len(self._records) > self.max_items:
                self._records.popitem(last=False)

    def get(self, prompt_id: str) -> PromptRecord | None:
        with self._lock:
            return self._records.get(prompt_id)

    def __contains__(self, prompt_id: object) -> bool:
        with self._lock:
            return prompt_id in self._records

    def all(self) -> list[PromptRecord]:
        with self._lock:
            return list(self._records.values())

    def delete(self, prompt_ids: list[str]) -> None:
        with self._lock:
            for pid in prompt_ids:
                self._records.pop(pid, None)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
