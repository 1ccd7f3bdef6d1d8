"""Which of the driver's tensors a replica actor already holds, so a step call sends them once.

A sampler sends the same conditioning at every step (the text encoder's rows under one handle
for the whole sampling loop, runtime/guidance.py): 20 KB per step for the demo model, 630 KB
for SDXL in fp16. Over the direct channel the driver sends a handle's bytes the second time it
ships that handle, asking the actor to keep them; from the third time on, only the handle id
goes. Handles never change their bytes and their ids are never reused, so the id is the key.
The actor drops a tensor when the driver says so: when the handle's tensor is freed in the
driver (the prompt finished or was cancelled), or to stay under a byte budget (oldest first).
Both ends start empty on each new connection. Pure bookkeeping, no sockets, no Ray."""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict, deque
from typing import Any

KEEP_MIN_BYTES = 4096  # smaller tensors cost less to send than to track
KEEP_MAX_BYTES = 256 * 1024 * 1024  # per replica actor
REMEMBER = 256  # handle ids shipped once, remembered to spot the second time


class KeptTensors:
    def __init__(self, min_bytes: int = KEEP_MIN_BYTES, max_bytes: int = KEEP_MAX_BYTES,
                 remember: int = REMEMBER):
        self.min_bytes, self.max_bytes, self.remember = min_bytes, max_bytes, remember
        self._lock = threading.Lock()
        # Freed tensors, queued by their finalizers (which may run on any thread, even inside
        # a method holding the lock when a collection happens there: so they never lock).
        self._freed: deque[tuple[str, int]] = deque()
        self._kept: OrderedDict[str, int] = OrderedDict()  # id -> bytes, oldest first
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._forget: list[str] = []
        self._finalizers: dict[str, Any] = {}
        self._generation = 0  # bumped by reset: finalizers of an old connection do nothing

    def plan(self, handle_id: str, nbytes: int) -> str:
        """'kept' (the actor has it: send the id), 'keep' (send it and ask the actor to keep
        it) or 'send' (just send it)."""
        with self._lock:
            if handle_id in self._kept:
                self._kept.move_to_end(handle_id)
                return "kept"
            if nbytes < self.min_bytes or nbytes > self.max_bytes:
                return "send"
            if handle_id in self._seen:
                del self._seen[handle_id]
                return "keep"
            self._seen[handle_id] = None
            while len(self._seen) > self.remember:
                self._seen.popitem(last=False)
            return "send"

    def kept(self, handle_id: str, nbytes: int, tensor: Any) -> None:
        """The actor now holds `handle_id` (call after the call that asked it succeeded);
        when `tensor` is freed here, the actor is told to drop it."""
        with self._lock:
            self._kept[handle_id] = nbytes
            generation = self._generation
            self._finalizers[handle_id] = weakref.finalize(tensor, self._freed.append,
                                                           (handle_id, generation))
            while sum(self._kept.values()) > self.max_bytes:
                old, _ = self._kept.popitem(last=False)
                self._drop(old)

    def take_forget(self) -> list[str]:
        """Ids the actor should drop, to send with the next call."""
        with self._lock:
            while self._freed:
                handle_id, generation = self._freed.popleft()
                if generation == self._generation and handle_id in self._kept:
                    del self._kept[handle_id]
                    self._drop(handle_id)
            out, self._forget = self._forget, []
            return out

    def reset(self) -> None:
        """A new connection (or a new actor): nothing is held on the other end."""
        with self._lock:
            for fin in self._finalizers.values():
                fin.detach()
            self._kept.clear()
            self._seen.clear()
            self._forget.clear()
            self._finalizers.clear()
            self._generation += 1

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(self._kept.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def _drop(self, handle_id: str) -> None:
        """Under the lock."""
        fin = self._finalizers.pop(handle_id, None)
        if fin is not None:
            fin.detach()
        self._forget.append(handle_id)
