"""``Client.arequest`` and ``Pool.arequest`` from asyncio code, against the embedded server.

Each test runs its coroutine with ``asyncio.run`` under ``asyncio.wait_for``, so
a reply that never wakes the loop fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

import fusco_actor
from fusco_actor import BadArgument, Pool, RequestTimeout, Response
from fusco_actor._server import EmbeddedServer
from tests.socketserver import (
    LONG_TIMEOUT,
    SocketServerThread,
    echo_target,
    ok,
    read_request,
    target_of,
)

T = TypeVar("T")

HELLO = b"Hello, fusco!\n"


def run(coro: Coroutine[Any, Any, T], limit: float = LONG_TIMEOUT) -> T:
    """Run ``coro`` in a fresh event loop, failing after ``limit`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, limit)

    return asyncio.run(bounded())


def pattern(n: int) -> bytes:
    """Return the embedded server's ``/bytes/N`` body."""
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


def test_arequest_returns_a_response(embedded_server: EmbeddedServer) -> None:
    with fusco_actor.start(embedded_server.url) as client:
        resp = run(client.arequest("/", timeout=LONG_TIMEOUT))
    assert isinstance(resp, Response)
    assert resp.status == 200
    assert resp.body == HELLO


def test_many_concurrent_arequests_on_one_client(embedded_server: EmbeddedServer) -> None:
    sizes = [i * 13 for i in range(200)]

    async def main(client: fusco_actor.Client) -> list[Response]:
        return await asyncio.gather(
            *(client.arequest(f"/bytes/{n}", timeout=LONG_TIMEOUT) for n in sizes)
        )

    with fusco_actor.start(embedded_server.url) as client:
        responses = run(main(client))
        connection = client.actor.connection
    assert [r.body for r in responses] == [pattern(n) for n in sizes]
    assert connection is not None
    assert connection.requests_done == len(sizes)  # all in order on the one connection


def test_the_event_loop_keeps_running_while_a_request_is_pending(
    embedded_server: EmbeddedServer,
) -> None:
    async def main(client: fusco_actor.Client) -> tuple[Response, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        try:
            resp = await client.arequest("/delay/0.3", timeout=LONG_TIMEOUT)
        finally:
            done.set()
            await task
        return resp, ticks

    with fusco_actor.start(embedded_server.url) as client:
        started = time.monotonic()
        resp, ticks = run(main(client))
        took = time.monotonic() - started
    assert resp.body == b"delayed\n"
    assert took >= 0.3
    # A loop blocked in the wait would tick once or twice; a free one ticks thousands of times.
    assert ticks > 100, ticks


def test_arequest_with_a_bad_argument_raises_bad_argument(embedded_server: EmbeddedServer) -> None:
    async def main(client: fusco_actor.Client) -> None:
        with pytest.raises(BadArgument):
            await client.arequest("no-slash")
        with pytest.raises(BadArgument):
            await client.arequest("/", "BAD METHOD")
        with pytest.raises(BadArgument):
            await client.arequest("/", headers=[("X-Evil", "a\r\nInjected: 1")])
        # The client is unharmed.
        assert (await client.arequest("/", timeout=LONG_TIMEOUT)).status == 200

    with fusco_actor.start(embedded_server.url) as client:
        run(main(client))


def test_arequest_queued_behind_a_slow_one_times_out_at_its_own_deadline(
    embedded_server: EmbeddedServer,
) -> None:
    slow_s, deadline_s = 1.0, 0.3

    async def main(client: fusco_actor.Client) -> tuple[Response, BaseException, float]:
        started = time.monotonic()

        async def queued() -> tuple[BaseException, float]:
            try:
                await client.arequest("/", timeout=deadline_s)
            except RequestTimeout as exc:
                return exc, time.monotonic() - started
            pytest.fail("the queued request did not time out")

        # gather starts its tasks in order: the slow request is queued first.
        slow, (error, failed_after) = await asyncio.gather(
            client.arequest(f"/delay/{slow_s}", timeout=LONG_TIMEOUT), queued()
        )
        return slow, error, failed_after

    with fusco_actor.start(embedded_server.url) as client:
        slow_resp, error, failed_after = run(main(client))
        # The expired request was never sent; the client goes on.
        assert client.request("/", timeout=LONG_TIMEOUT).get().body == HELLO
    assert isinstance(error, RequestTimeout)
    assert "queued" in str(error)
    assert deadline_s <= failed_after < slow_s - 0.2  # at its own deadline, not the slow one's end
    assert slow_resp.body == b"delayed\n"


def test_pool_arequest(embedded_server: EmbeddedServer) -> None:
    async def main(pool: Pool) -> list[Response]:
        return await asyncio.gather(
            *(pool.arequest(f"/bytes/{n}", timeout=LONG_TIMEOUT) for n in range(0, 4000, 100))
        )

    with Pool.start(embedded_server.url, max_clients=4) as pool:
        responses = run(main(pool))
        assert pool.size <= 4
    assert [r.body for r in responses] == [pattern(n) for n in range(0, 4000, 100)]


# -- cancellation ------------------------------------------------------------------------


def test_a_cancelled_arequest_on_the_wire_closes_its_connection_and_frees_the_client() -> None:
    """Cancelling (asyncio.wait_for) a request in flight: its response never reaches the next."""

    def handler(listener: Any, server: SocketServerThread) -> None:
        hung = server.accept()
        read_request(hung)  # never answered
        assert hung.wait_closed_by_peer() == b""  # the client closed it on the cancel
        echo_target(server.accept())

    async def scenario(client: fusco_actor.Client) -> bytes:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.arequest("/hung", "GET"), 0.2)
        resp = await asyncio.wait_for(client.arequest("/next", "GET"), LONG_TIMEOUT)
        return resp.body

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert asyncio.run(scenario(client)) == b"/next"
        server.wait_done()
    assert len(server.connections) == 2


def test_a_cancelled_arequest_still_queued_is_never_sent() -> None:
    release = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        assert release.wait(LONG_TIMEOUT)
        conn.sendall(ok(b"slow"))
        echo_target(conn)

    async def scenario(client: fusco_actor.Client) -> list[bytes]:
        slow = client.request("/slow", "GET", timeout=LONG_TIMEOUT)  # holds the connection
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.arequest("/withdrawn", "GET"), 0.2)
        release.set()
        after = await client.arequest("/after", "GET", timeout=LONG_TIMEOUT)
        return [(await slow).body, after.body]

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert asyncio.run(scenario(client)) == [b"slow", b"/after"]
        server.wait_done()
    (conn,) = server.connections
    assert [target_of(r) for r in conn.requests] == [b"/slow", b"/after"]
