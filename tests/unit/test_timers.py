"""DeadlineTimer: a loop timer that fires early (uvloop counts milliseconds) waits for the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import uvloop

from fusco_actor._timers import DeadlineQueue, DeadlineTimer


class EarlyLoop:
    """Records ``call_later`` requests; the test fires them whenever it likes."""

    def __init__(self) -> None:
        self.armed: list[tuple[float, Callable[[], None]]] = []
        self.cancelled = 0

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        self.armed.append((delay, callback))
        loop = self

        class Handle:
            def cancel(self) -> None:
                loop.cancelled += 1

        return Handle()


def test_a_timer_fired_before_its_deadline_rearms_for_the_rest_and_calls_nothing() -> None:
    loop = EarlyLoop()
    calls: list[str] = []
    deadline = time.monotonic() + 60.0
    DeadlineTimer(loop, deadline, calls.append, "due")  # type: ignore[arg-type]
    first_delay, fire = loop.armed[-1]
    assert 59.0 < first_delay <= 60.0
    fire()  # the loop's clock ran ahead of time.monotonic()
    assert calls == []
    second_delay, _ = loop.armed[-1]
    assert len(loop.armed) == 2 and 0.0 < second_delay <= 60.0


def test_a_timer_at_or_past_its_deadline_calls_once() -> None:
    loop = EarlyLoop()
    calls: list[str] = []
    DeadlineTimer(loop, time.monotonic() - 1.0, calls.append, "due")  # type: ignore[arg-type]
    delay, fire = loop.armed[-1]
    assert delay == 0.0
    fire()
    assert calls == ["due"] and len(loop.armed) == 1


def test_on_uvloop_no_callback_runs_before_its_deadline() -> None:
    # Plain call_later timers on uvloop ran before their time.monotonic() deadline
    # in about 40% of 300 such timers here.
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        lateness: list[float] = []
        done = asyncio.Event()

        def due(deadline: float) -> None:
            lateness.append(time.monotonic() - deadline)
            if len(lateness) == 300:
                done.set()

        start = time.monotonic()
        for i in range(300):
            deadline = start + 0.0005 + i * 0.00037
            DeadlineTimer(loop, deadline, due, deadline)
        await asyncio.wait_for(done.wait(), 5.0)
        return lateness

    assert min(uvloop.run(main())) >= 0.0


class Key:
    """A deadline's owner, told apart by identity (as calls are)."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_a_deadline_queue_keeps_one_timer_and_fires_in_deadline_order() -> None:
    loop = EarlyLoop()
    fired: list[str] = []
    queue = DeadlineQueue(loop, lambda key: fired.append(key.name))  # type: ignore[arg-type]
    now = time.monotonic()
    a, b, c = Key("a"), Key("b"), Key("c")
    queue.add(a, now - 2.0)
    queue.add(b, now - 1.0)
    queue.add(c, now + 60.0)
    assert len(loop.armed) == 1  # later deadlines ride on the earliest one's timer
    queue.remove(a)
    assert a not in queue and b in queue and len(queue) == 2
    loop.armed[-1][1]()
    assert fired == ["b"]  # a was removed; c is not due
    delay, fire = loop.armed[-1]
    assert len(loop.armed) == 2 and 59.0 < delay <= 60.0  # re-armed for c
    fire()
    assert fired == ["b"]


def test_a_deadline_queue_never_fires_early_and_rearms_for_an_earlier_deadline() -> None:
    loop = EarlyLoop()
    fired: list[str] = []
    queue = DeadlineQueue(loop, lambda key: fired.append(key.name))  # type: ignore[arg-type]
    now = time.monotonic()
    queue.add(Key("late"), now + 60.0)
    queue.add(Key("soon"), now - 1.0)  # earlier than the armed timer: armed again
    assert len(loop.armed) == 2 and loop.cancelled == 1
    delay, fire = loop.armed[-1]
    assert delay == 0.0
    fire()
    assert fired == ["soon"]
    assert 59.0 < loop.armed[-1][0] <= 60.0  # and the one left is armed for


def test_a_deadline_queue_lets_the_expired_callback_add_and_remove() -> None:
    loop = EarlyLoop()
    fired: list[str] = []
    again = Key("again")
    other = Key("other")
    queue: DeadlineQueue

    def expired(key: Key) -> None:
        fired.append(key.name)
        if key.name == "first":
            queue.remove(other)  # a lost connection disarms the rest
            queue.add(again, time.monotonic() - 0.5)  # and something else is due at once

    queue = DeadlineQueue(loop, expired)  # type: ignore[arg-type]
    now = time.monotonic()
    queue.add(Key("first"), now - 2.0)
    queue.add(other, now - 1.0)
    loop.armed[-1][1]()
    assert fired == ["first", "again"] and len(queue) == 0


def test_a_deadline_queue_on_uvloop_fires_each_key_once_never_early() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        lateness: list[float] = []
        done = asyncio.Event()
        deadlines: dict[int, float] = {}

        def due(key: Key) -> None:
            lateness.append(time.monotonic() - deadlines[id(key)])
            if len(lateness) == 150:
                done.set()

        queue = DeadlineQueue(loop, due)
        start = time.monotonic()
        keys = [Key(str(i)) for i in range(300)]
        for i, key in enumerate(keys):
            deadlines[id(key)] = start + 0.0005 + (i * 7919 % 300) * 0.00037
            queue.add(key, deadlines[id(key)])
        for key in keys[::2]:
            queue.remove(key)
        await asyncio.wait_for(done.wait(), 5.0)
        await asyncio.sleep(0.01)
        return lateness

    lateness = uvloop.run(main())
    assert len(lateness) == 150 and min(lateness) >= 0.0
