"""``Client.arequest`` and ``Pool.arequest`` from asyncio code, against the embedded server.

Each test runs its coroutine with ``asyncio.run`` under ``asyncio.wait_for``, so
a reply that never wakes the loop fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import fusco_actor
from fusco_actor import BadArgument, Pool, RequestTimeout, Response
from fusco_actor import _transport as transport
from fusco_actor._client import ClientActor
from fusco_actor._loop_client import LoopClientActor
from fusco_actor._server import EmbeddedServer
from tests.helpers import start_thread, uses_loop_engine, wait_for
from tests.socketserver import (
    LONG_TIMEOUT,
    IncompleteRequest,
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
        connection = client._actor.connection
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
        assert pool._size <= 4
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


def test_cancelling_one_pipelined_arequest_resends_or_fails_no_other() -> None:
    answer = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        targets = [target_of(read_request(conn)) for _ in range(4)]  # all four on the wire
        assert answer.wait(LONG_TIMEOUT)
        conn.sendall(b"".join(ok(t) for t in targets))
        echo_target(conn)

    async def scenario(client: fusco_actor.Client) -> list[Any]:
        tasks = [asyncio.ensure_future(client.arequest(f"/r{i}", "GET")) for i in range(4)]
        while len(server.connections) < 1 or len(server.connections[0].requests) < 4:
            await asyncio.sleep(0.01)  # polling the server's count, bounded by the test timeout
        tasks[3].cancel()
        answer.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4, send_retry=1) as client:
            results = asyncio.run(scenario(client))
            assert [r.body for r in results[:3]] == [b"/r0", b"/r1", b"/r2"]
            assert isinstance(results[3], asyncio.CancelledError)
            after = fusco_actor.request(client, "/after", "GET", [], b"", LONG_TIMEOUT)
            assert after.body == b"/after"  # the dropped response never reached it
        server.wait_done()
    (conn,) = server.connections  # nothing was re-sent on another connection
    assert [target_of(r) for r in conn.requests] == [b"/r0", b"/r1", b"/r2", b"/r3", b"/after"]


def test_a_late_cancel_never_cuts_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancel's check and its close are one step: the next POST is never cut, re-sent.

    The cancelling thread is held after ``/x`` failed and before the actor's
    canceller acts (threaded: in the socket shutdown it makes from the
    cancelling thread; loop: before it hands the cancel to the loop). Meanwhile
    ``/x``'s answer arrives and the POST goes on the same connection: the late
    cancel must not cut it.
    """
    interrupting, proceed, answer_x = threading.Event(), threading.Event(), threading.Event()

    def held(real: Callable[..., None]) -> Callable[..., None]:
        def slow(*args: Any) -> None:
            interrupting.set()
            assert proceed.wait(LONG_TIMEOUT)  # the cancelling thread loses the CPU here
            real(*args)

        return slow

    monkeypatch.setattr(transport.Connection, "interrupt", held(transport.Connection.interrupt))
    monkeypatch.setattr(LoopClientActor, "_cancel", held(LoopClientActor._cancel))

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)  # /x
        assert answer_x.wait(LONG_TIMEOUT)
        conn.sendall(ok(b"x"))
        try:
            conn.sendall(ok(target_of(read_request(conn))))  # /pay, if it comes here
        except (IncompleteRequest, OSError):
            echo_target(server.accept())  # a fresh connection after the cancel's shutdown
        else:
            conn.wait_closed_by_peer()

    def actor_waits_for_the_cancel() -> bool:  # blocked retiring /x (the top frame: _finish)
        return any(
            frame.f_code is ClientActor._finish.__code__ for frame in sys._current_frames().values()
        )

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, send_retry=1) as client:
            x = client.request("/x", "GET")
            assert wait_for(lambda: bool(server.connections and server.connections[0].requests))
            post = client.request("/pay", "POST", body=b"1", timeout=LONG_TIMEOUT)
            cancelling = start_thread(x.cancel)
            assert interrupting.wait(LONG_TIMEOUT)  # checked "alone in flight", not yet shut
            answer_x.set()  # /x's answer arrives while the cancel is half done
            first = server.connections[0]
            # Threaded: the actor may wait for the cancel to finish retiring /x; the
            # loop engine never waits, and the POST follows /x's answer on its connection.
            loop = uses_loop_engine(client)
            assert wait_for(
                lambda: (not loop and actor_waits_for_the_cancel()) or len(first.requests) > 1
            )
            proceed.set()
            cancelling.join(LONG_TIMEOUT)
            assert post.get(timeout=LONG_TIMEOUT).status == 200
        server.wait_done()
    posts = [r for c in server.connections for r in c.requests if r.startswith(b"POST")]
    assert len(posts) == 1, "the POST was cut by a late cancel and sent again"
