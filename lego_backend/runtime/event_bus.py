"""Fan-out of backend events to listeners (the websocket hub, `lego run`'s progress bars).
Listeners are called on the emitting thread and must hand off work and return at once."""
from __future__ import annotations

import threading
from collections.abc import Callable

from lego_backend.runtime.events import Event

Listener = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Subscribe; returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return remove

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
