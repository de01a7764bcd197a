"""Micro-benchmark of the transport layers alone (no actors): threaded vs asyncio vs uvloop.

Against the benchmark's private nginx (``/small``), one process, one run:

* ``connect``: sequential connect + close, microseconds each;
* ``serial``: GETs one at a time on one connection, requests/s;
* ``pipeline16``: 16 GETs in flight on one connection (refilled per ``on_data``);
* ``16 conns``: 16 connections on one loop, each one GET at a time.

The loop cells are driven from the owner's callbacks, as the loop-based client
actor will be, not by a task awaiting each response.

Run: ``.venv/bin/python -m bench.aio_transport [-n REQUESTS] [--pin]``. It prints a
table; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from bench.nginx import Nginx
from fusco_actor._aio_transport import LoopConnection, open_loop_connection
from fusco_actor._options import CheckedOptions, Destination, parse_destination, parse_options
from fusco_actor._transport import open_connection

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


class Driver:
    """A ConnectionOwner that keeps ``depth`` requests in flight until ``total`` are answered.

    It works as the loop-based client will: from the loop's callbacks, with
    no task wake-up per response. Responses are counted by size (nginx's
    ``/small`` answers are all alike).
    """

    def __init__(self, size: int, total: int, depth: int) -> None:
        """Prepare ``total`` requests of which ``depth`` at most are in flight at once."""
        self.size, self.total, self.depth = size, total, depth
        self.conn: LoopConnection | None = None
        self.sent = self.done = self.pending = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if total == 0:
            self.finished.set_result(None)

    def start(self, conn: LoopConnection) -> None:
        """Write the first ``depth`` requests in one ``writelines``."""
        self.conn = conn
        self._send(min(self.depth, self.total))

    def _send(self, n: int) -> None:
        assert self.conn is not None
        if n == 1:
            self.conn.write(REQUEST)
        elif n:
            self.conn.writelines([REQUEST] * n)
        self.sent += n

    def on_data(self, data: bytes) -> None:
        """Count whole responses; refill the pipeline; finish after ``total``."""
        self.pending += len(data)
        answered, self.pending = divmod(self.pending, self.size)
        self.done += answered
        if self.done >= self.total:
            if not self.finished.done():
                self.finished.set_result(None)
            return
        self._send(min(answered, self.total - self.sent))

    def on_eof(self) -> None:
        """Nothing to do: ``on_lost`` follows."""

    def on_lost(self, exc: Exception | None) -> None:
        """Fail the run if it was not finished."""
        if not self.finished.done():
            self.finished.set_exception(exc or ConnectionError("lost"))

    def on_writable(self) -> None:
        """Nothing to do: requests are small."""


def response_size(dest: Destination, options: CheckedOptions) -> int:
    """Return the byte size of one ``/small`` response (nginx's are all alike)."""
    conn = open_connection(dest, options, None)
    conn.send_all(REQUEST, None)
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + 13:
        data += conn.recv(None)
    conn.close()
    return len(data)


def threaded(dest: Destination, options: CheckedOptions, size: int, n: int) -> dict[str, float]:
    """Measure the blocking ``Connection``: connect, then serial requests."""
    started = time.perf_counter()
    for _ in range(n // 10):
        open_connection(dest, options, None).close()
    connect = (time.perf_counter() - started) / (n // 10) * 1e6
    conn = open_connection(dest, options, None)
    started = time.perf_counter()
    for _ in range(n):
        conn.send_all(REQUEST, None)
        got = 0
        while got < size:
            got += len(conn.recv(None))
    serial = n / (time.perf_counter() - started)
    conn.close()
    return {"connect": connect, "serial": serial}


async def looped(dest: Destination, options: CheckedOptions, size: int, n: int) -> dict[str, float]:
    """Measure ``LoopConnection`` on the running loop, driven from its callbacks."""
    started = time.perf_counter()
    for _ in range(n // 10):
        conn = await open_loop_connection(dest, options, None, Driver(size, 0, 1))
        conn.abort()
    row = {"connect": (time.perf_counter() - started) / (n // 10) * 1e6}
    for cell, connections, depth in (("serial", 1, 1), ("pipeline16", 1, 16), ("16 conns", 16, 1)):
        drivers = [Driver(size, n // connections, depth) for _ in range(connections)]
        conns = [await open_loop_connection(dest, options, None, d) for d in drivers]
        started = time.perf_counter()
        for driver, conn in zip(drivers, conns, strict=True):
            driver.start(conn)
        await asyncio.gather(*(d.finished for d in drivers))
        row[cell] = sum(d.done for d in drivers) / (time.perf_counter() - started)
        for conn in conns:
            conn.close()
    return row


def main() -> None:
    """Run every cell once and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests per cell")
    parser.add_argument("--pin", action="store_true", help="client on CPU 0, nginx on CPU 1")
    args = parser.parse_args()
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:  # pragma: no cover
        pass
    else:
        loops["uvloop"] = uvloop.new_event_loop
    with Nginx() as nginx:
        if args.pin and len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {0})  # the client on CPU 0, nginx on CPU 1
            nginx.pin({1})
        dest, options = parse_destination(nginx.url), parse_options({})
        size = response_size(dest, options)
        rows: dict[str, dict[str, Any]] = {"threaded": threaded(dest, options, size, args.n)}
        for name, factory in loops.items():
            loop = factory()
            try:
                rows[name] = loop.run_until_complete(looped(dest, options, size, args.n))
            finally:
                loop.close()
    cells = ["connect", "serial", "pipeline16", "16 conns"]
    print(f"{'':10}" + "".join(f"{c:>14}" for c in cells))
    units = {"connect": "µs", "serial": "req/s", "pipeline16": "req/s", "16 conns": "req/s"}
    print(f"{'':10}" + "".join(f"{units[c]:>14}" for c in cells))
    for name, row in rows.items():
        values = (f"{row[c]:>14,.0f}" if c in row else f"{'-':>14}" for c in cells)
        print(f"{name:10}" + "".join(values))


if __name__ == "__main__":
    main()
