"""The Rust-backed peers: pyreqwest and wreq (both on reqwest/hyper and tokio), sync and async.

Each is used the way its documentation shows: one client reused for every
request. Sync: one ``SyncClient`` (pyreqwest) or ``wreq.blocking.Client``
shared by ``conns`` threads. Async: one ``Client`` and ``conns`` tasks on a
uvloop in a thread, as for aiohttp. The connection limit is set to ``conns``
where the library has one (pyreqwest ``max_connections``, wreq
``pool_max_size``). Functions have the :mod:`harness` client signature.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Final

from harness import TIMEOUT, Finish, Meter, Scenario, check, run_threads, then_close
from peers import on_new_loop

__all__ = ["pyreqwest_async", "pyreqwest_sync", "wreq_async", "wreq_sync"]

DEADLINE: Final = timedelta(seconds=TIMEOUT)


def _async_tasks(
    make: Callable[[], Awaitable[tuple[Callable[[], Awaitable[int]], Callable[[], Any]]]],
    conns: int,
    meter: Meter,
) -> Finish:
    """Run ``conns`` tasks on a uvloop in a thread; ``make()`` gives ``(one, close)``."""
    meter.slots(conns)

    async def task(one: Callable[[], Awaitable[int]], slot: int) -> None:
        while not meter.stop:
            meter.counts[slot] += await one()

    async def main() -> None:
        one, close = await make()
        try:
            await asyncio.gather(*(task(one, i) for i in range(conns)))
        finally:
            result = close()
            if asyncio.iscoroutine(result):
                await result

    return on_new_loop(main, meter)


def pyreqwest_sync(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """pyreqwest: one ``SyncClient`` shared by ``conns`` threads."""
    from pyreqwest.client import SyncClientBuilder  # noqa: PLC0415

    client = SyncClientBuilder().max_connections(conns).timeout(DEADLINE).build()
    target, method, body = url + scenario.path, scenario.method, scenario.body

    def make() -> Callable[[], int]:
        def one() -> int:
            request = client.request(method, target)
            if body:
                request = request.body_bytes(body)
            response = request.build().send()
            check(response.status, len(response.bytes()), scenario)
            return 1

        return one

    return then_close(run_threads(make, conns, meter), client.close)


def pyreqwest_async(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """pyreqwest: one async ``Client``, ``conns`` tasks on uvloop."""
    from pyreqwest.client import ClientBuilder  # noqa: PLC0415

    target, method, body = url + scenario.path, scenario.method, scenario.body

    async def make() -> tuple[Callable[[], Awaitable[int]], Callable[[], Any]]:
        client = ClientBuilder().max_connections(conns).timeout(DEADLINE).build()

        async def one() -> int:
            request = client.request(method, target)
            if body:
                request = request.body_bytes(body)
            response = await request.build().send()
            check(response.status, len(await response.bytes()), scenario)
            return 1

        return one, client.close

    return _async_tasks(make, conns, meter)


def wreq_sync(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """wreq: one ``wreq.blocking.Client`` shared by ``conns`` threads."""
    import wreq  # noqa: PLC0415
    import wreq.blocking  # noqa: PLC0415

    client = wreq.blocking.Client(timeout=DEADLINE, pool_max_size=conns)
    target, method = url + scenario.path, getattr(wreq.Method, scenario.method)
    extra = {"body": scenario.body} if scenario.body else {}

    def make() -> Callable[[], int]:
        def one() -> int:
            with client.request(method, target, **extra) as response:
                check(response.status.as_int(), len(response.bytes()), scenario)
            return 1

        return one

    return then_close(run_threads(make, conns, meter), client.close)


def wreq_async(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """wreq: one async ``wreq.Client``, ``conns`` tasks on uvloop."""
    import wreq  # noqa: PLC0415

    target, method = url + scenario.path, getattr(wreq.Method, scenario.method)
    extra = {"body": scenario.body} if scenario.body else {}

    async def make() -> tuple[Callable[[], Awaitable[int]], Callable[[], Any]]:
        client = wreq.Client(timeout=DEADLINE, pool_max_size=conns)

        async def one() -> int:
            async with client.request(method, target, **extra) as response:
                check(response.status.as_int(), len(await response.bytes()), scenario)
            return 1

        return one, client.close

    return _async_tasks(make, conns, meter)
