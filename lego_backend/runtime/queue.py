"""The pending-prompt queue: lowest `number` first (ComfyUI's heap order), FIFO among equals."""
from __future__ import annotations

import heapq
import itertools
import threading

from lego_backend.runtime.records import PromptRecord


class PromptQueue:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, str]] = []
        self._records: dict[str, PromptRecord] = {}
        self._seq = itertools.count()
        self._closed = False

    def put(self, record: PromptRecord) -> None:
        with self._cv:
            self._records[record.prompt_id] = record
            heapq.heappush(self._heap, (record.number, next(self._seq), record.prompt_id))
            self._cv.notify()

    def get(self, timeout: float | None = None) -> PromptRecord | None:
        """Next prompt, or None on timeout / close."""
        with self._cv:
            while True:
                while self._heap and self._heap[0][2] not in self._records:
                    heapq.heappop(self._heap)  # deleted while queued
                if self._heap:
                    _, _, pid = heapq.heappop(self._heap)
                    return self._records.pop(pid)
                if self._closed or not self._cv.wait(timeout):
                    return None

    def wait(self, timeout: float) -> bool:
        """Until a prompt is queued (True) or the timeout passes / the queue closes (False)."""
        with self._cv:
            if not self._records and not self._closed:
                self._cv.wait(timeout)
            return bool(self._records)

    def delete(self, prompt_id: str) -> bool:
        with self._cv:
            return self._records.pop(prompt_id, None) is not None

    def clear(self) -> list[str]:
        with self._cv:
            ids = list(self._records)
            self._records.clear()
            self._heap.clear()
            return ids

    def pending(self) -> list[PromptRecord]:
        with self._cv:
            live = sorted(e for e in self._heap if e[2] in self._records)
            return [self._records[pid] for _, _, pid in live]

    def __contains__(self, prompt_id: str) -> bool:
        with self._cv:
            return prompt_id in self._records

    def __len__(self) -> int:
        with self._cv:
            return len(self._records)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
