"""What every benchmark cell shares: scenarios, the meter, the thread driver and the timer.

A client function is ``fn(url, scenario, conns, meter) -> finish``: it starts
the load (in threads, actor threads, or an event loop in a thread) and returns
at once; the load runs until ``meter.stop`` is set; ``finish()`` waits for it
to end and closes what it opened. Each completed request is checked (status
200 and body length) and counted in ``meter.counts[slot]``. A slot is written
by one thread at a time, so the counters need no lock; the timer only sums
them. The first failure stops the load and :func:`measure` raises it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = [
    "SCENARIOS",
    "TIMEOUT",
    "BenchError",
    "Finish",
    "Meter",
    "Scenario",
    "check",
    "host_port",
    "join_thread",
    "join_threads",
    "measure",
    "run_threads",
    "then_close",
]

TIMEOUT: Final = 30.0  # seconds: every client's request timeout, and the stop grace
POST_BODY: Final = b"x" * (1024 * 1024)

Finish = Callable[[], None]


@dataclass(frozen=True)
class Scenario:
    """One request shape; ``expect`` is the response body length."""

    name: str
    method: str
    path: str
    body: bytes
    expect: int

    @property
    def payload(self) -> int:
        """Return the application bytes moved per request (request body for POST) for MB/s."""
        return len(self.body) if self.body else self.expect


SCENARIOS: Final = (
    Scenario("small GET", "GET", "/small", b"", 13),
    Scenario("64 KiB GET", "GET", "/64k", b"", 64 * 1024),
    Scenario("1 MiB GET", "GET", "/1m", b"", 1024 * 1024),
    Scenario("chunked 64 KiB GET", "GET", "/chunked64k", b"", 64 * 1024),
    Scenario("1 MiB POST", "POST", "/post", POST_BODY, 2),
)


class BenchError(RuntimeError):
    """A client returned a wrong response, or did not stop in time."""


class Meter:
    """Completion counters and the stop flag shared by a load and the timer."""

    def __init__(self) -> None:
        """Start with no slots, running."""
        self.counts: list[int] = []
        self.stop = False
        self.error: BaseException | None = None

    def slots(self, n: int) -> None:
        """Make ``n`` counters (one per thread, or per chain of requests)."""
        self.counts = [0] * n

    def total(self) -> int:
        """Return how many requests completed so far."""
        return sum(self.counts)

    def fail(self, exc: BaseException) -> None:
        """Record the first failure and stop the load."""
        if self.error is None:
            self.error = exc
        self.stop = True


def check(status: int, length: int, scenario: Scenario) -> None:
    """Raise :class:`BenchError` unless the response is 200 with the expected body length."""
    if status != 200 or length != scenario.expect:
        raise BenchError(
            f"{scenario.method} {scenario.path}: status {status}, body {length} bytes "
            f"(expected 200 and {scenario.expect})"
        )


def host_port(url: str) -> tuple[str, int]:
    """Return the host and port of an ``http://`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def run_threads(make: Callable[[], Callable[[], int]], conns: int, meter: Meter) -> Finish:
    """Run ``conns`` threads, each calling ``one = make()`` then ``one()`` until stopped.

    ``one()`` sends, reads and checks, and returns how many responses it read.
    """
    meter.slots(conns)

    def worker(slot: int) -> None:
        try:
            one = make()
            counts = meter.counts
            while not meter.stop:
                counts[slot] += one()
        except BaseException as exc:  # any failure ends the cell; measure() raises it
            meter.fail(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(conns)]
    for thread in threads:
        thread.start()
    return join_threads(threads, meter)


def join_threads(threads: list[threading.Thread], meter: Meter) -> Finish:
    """Return a ``finish`` that stops the load and joins the (started) ``threads``."""

    def finish() -> None:
        meter.stop = True
        for thread in threads:
            thread.join(TIMEOUT)
            if thread.is_alive():
                meter.fail(BenchError(f"the thread {thread.name} did not stop"))

    return finish


def join_thread(thread: threading.Thread, meter: Meter) -> Finish:
    """Return a ``finish`` that stops the load and joins ``thread``."""
    return join_threads([thread], meter)


def then_close(finish: Finish, *closers: Callable[[], object]) -> Finish:
    """Return a ``finish`` that runs ``finish`` and then every closer, whatever happens."""

    def both() -> None:
        try:
            finish()
        finally:
            for close in closers:
                close()

    return both


def _sleep(seconds: float, meter: Meter) -> None:
    deadline = time.perf_counter() + seconds
    while not meter.stop and (left := deadline - time.perf_counter()) > 0:
        time.sleep(min(left, 0.05))


def measure(
    client: Callable[[str, Scenario, int, Meter], Finish],
    url: str,
    scenario: Scenario,
    conns: int,
    warmup: float,
    duration: float,
) -> tuple[float, float]:
    """Run one cell: start the load, count after ``warmup`` for ``duration`` seconds.

    Returns:
        Completed requests per second during the measured window, and the CPU
        seconds this process (all its threads) spent per request meanwhile.

    Raises:
        BaseException: what the client failed with (a wrong response, a hang).
    """
    meter = Meter()
    finish = client(url, scenario, conns, meter)
    try:
        _sleep(warmup, meter)
        before, start, cpu = meter.total(), time.perf_counter(), time.process_time()
        _sleep(duration, meter)
        after, end, cpu = meter.total(), time.perf_counter(), time.process_time() - cpu
    finally:
        finish()
    if meter.error is not None:
        raise meter.error
    if after == before:
        raise BenchError("no request completed in the measured window")
    return (after - before) / (end - start), cpu / (after - before)
