"""Finished prompts, oldest first, bounded (oldest pruned first). Thread-safe. With a
PromptStore the history is durable: loaded from it at start, every change written through (the
database is pruned to the same bound); reads are served from memory."""
from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict

from lego_backend.runtime.records import PromptRecord
from lego_backend.storage.prompt_db import PromptStore

log = logging.getLogger("lego.history")


class PromptHistory:
    def __init__(self, max_items: int, store: PromptStore | None = None):
        self.max_items = max_items
        self._store = store
        self._lock = threading.Lock()
        self._records: OrderedDict[str, PromptRecord] = OrderedDict()
        if store is not None:
            for record in store.finished(max_items):
                self._records[record.prompt_id] = record

    def add(self, record: PromptRecord) -> None:
        with self._lock:
            if self._store is not None:
                try:
                    self._store.finish(record, self.max_items)
                except sqlite3.Error:  # disk full, file gone: keep serving from memory
                    log.exception("could not write prompt %s to %s", record.prompt_id,
                                  self._store.path)
            self._records[record.prompt_id] = record
            self._records.move_to_end(record.prompt_id)
            while len(self._records) > self.max_items:
                self._records.popitem(last=False)

    def get(self, prompt_id: str) -> PromptRecord | None:
        with self._lock:
            return self._records.get(prompt_id)

    def __contains__(self, prompt_id: object) -> bool:
        with self._lock:
            return prompt_id in self._records

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def all(self) -> list[PromptRecord]:
        with self._lock:
            return list(self._records.values())

    def delete(self, prompt_ids: list[str]) -> None:
        with self._lock:
            for pid in prompt_ids:
                self._records.pop(pid, None)
            if self._store is not None:
                self._store.delete(prompt_ids, finished=True)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            if self._store is not None:
                self._store.clear_finished()
