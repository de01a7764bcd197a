"""DeadlineTimer: a loop timer that fires early (uvloop counts milliseconds) waits for the rest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import uvloop

from fusco_actor._timers import DeadlineTimer


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
