"""The simulated clock: events run in time order, ties in scheduling order."""
from __future__ import annotations

import pytest

from lego_backend.sim.engine import EventLoop


def test_events_run_in_time_order_and_ties_in_scheduling_order() -> None:
    loop = EventLoop()
    seen: list[tuple[float, str]] = []

    def note(name: str) -> None:
        seen.append((loop.now, name))

    loop.at(2.0, note, "c")
    loop.at(1.0, note, "a")
    loop.at(1.0, note, "b")
    loop.after(0.5, note, "first")
    loop.run()
    assert seen == [(0.5, "first"), (1.0, "a"), (1.0, "b"), (2.0, "c")]
    assert loop.events_run == 4


def test_events_scheduled_by_events_and_until() -> None:
    loop = EventLoop()
    seen: list[float] = []

    def tick() -> None:
        seen.append(loop.now)
        loop.after(1.0, tick)

    loop.at(0.0, tick)
    loop.run(until=3.5)
    assert seen == [0.0, 1.0, 2.0, 3.0]
    assert loop.now == 3.5 and loop.pending == 1


def test_the_past_is_refused() -> None:
    loop = EventLoop()
    loop.at(1.0, lambda: None)
    loop.run()
    with pytest.raises(ValueError):
        loop.at(0.5, lambda: None)
