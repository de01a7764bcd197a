"""Stops that return in time, callbacks that cannot break a client, the right error class.

- ``disconnect(timeout)``, ``Pool.stop(timeout)`` and ``Supervisor.stop(timeout)``
  with a request hung on the wire return within their timeout, raise nothing
  but ``FuscoError``s, and leave every future resolved (``ClientStopped``).
- A done-callback that raises, or an ``arequest`` whose event loop has closed,
  is logged and skipped: the client that resolved it keeps serving.
- A done-callback may call the client that resolved it: no lock of ours is
  held while futures are resolved.
- A spent deadline is a timeout, never a ``TLSError`` or ``ConnectError``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import fusco_actor
import fusco_actor._client as client_module
from fusco_actor import ClientStopped, RequestTimeout
from tests.helpers import outcome, wait_for
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    SocketServerThread,
    echo_target,
    ok,
    read_request,
)

STOP_TIMEOUT = 0.5  # seconds given to a stop that must abort
SLACK = 1.0  # seconds a stop may take beyond its timeout on a loaded machine


def hang(listener: Any, server: SocketServerThread) -> None:
    """Accept every connection, read its request, never answer."""
    while True:
        conn = server.accept(LONG_TIMEOUT)
        read_request(conn)


# -- stops that return in time --------------------------------------------------------------


def hang_one(listener: Any, server: SocketServerThread) -> None:
    """Accept one connection, read its request, never answer; wait for the client's close."""
    conn = server.accept()
    read_request(conn)
    conn.wait_closed_by_peer()


def test_disconnect_with_a_hung_request_aborts_at_its_timeout() -> None:
    with SocketServerThread(hang_one) as server:
        client = fusco_actor.start(server.url)
        in_flight = client.request("/hung", "GET")  # no deadline of its own
        queued = client.request("/queued", "GET")
        started = time.monotonic()
        client.disconnect(timeout=STOP_TIMEOUT)
        took = time.monotonic() - started
        assert took < STOP_TIMEOUT + SLACK
        assert isinstance(outcome(in_flight, SHORT_TIMEOUT), ClientStopped)
        assert isinstance(outcome(queued, SHORT_TIMEOUT), ClientStopped)
        assert client.actor.finished.wait(SHORT_TIMEOUT)
        assert not client.actor_ref.is_alive()
        with pytest.raises(ClientStopped):
            fusco_actor.request(client, "/later", "GET", [], b"", SHORT_TIMEOUT)
        assert server.connections[0].closed_by_peer.wait(SHORT_TIMEOUT)


def test_disconnect_of_a_blocking_caller_running_inline_aborts_it() -> None:
    """The blocking API serves in the caller's thread; an abort must wake it too."""
    with SocketServerThread(hang) as server:
        client = fusco_actor.start(server.url)
        results: list[Any] = []

        def call() -> None:
            try:
                results.append(fusco_actor.request(client, "/hung", "GET", [], b"", None))
            except fusco_actor.FuscoError as exc:
                results.append(exc)

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        # No event exists for "the server read the request": poll, bounded.
        assert wait_for(lambda: bool(server.connections and server.connections[0].requests))
        client.disconnect(timeout=STOP_TIMEOUT)
        caller.join(SHORT_TIMEOUT)
        assert not caller.is_alive()
        assert len(results) == 1 and isinstance(results[0], ClientStopped)


def test_pool_stop_with_hung_requests_returns_within_its_timeout() -> None:
    with SocketServerThread(hang) as server:
        pool = fusco_actor.Pool.start(server.url, max_clients=3)
        futures = [pool.request(f"/{i}", "GET") for i in range(5)]  # 3 in flight, 2 waiting
        clients = list(pool.supervisor.children())
        assert len(clients) == 3
        started = time.monotonic()
        pool.stop(timeout=STOP_TIMEOUT)
        assert time.monotonic() - started < STOP_TIMEOUT + SLACK
        assert all(isinstance(outcome(f, SHORT_TIMEOUT), ClientStopped) for f in futures)
        for client in clients:
            assert client.actor.finished.wait(SHORT_TIMEOUT)
        assert not pool.supervisor.actor_ref.is_alive()


def test_supervisor_stop_with_hung_requests_stops_children_in_parallel() -> None:
    with SocketServerThread(hang) as server:
        sup = fusco_actor.Supervisor.start()
        clients = [sup.start_client(server.url) for _ in range(4)]
        futures = [c.request("/hung", "GET") for c in clients]
        started = time.monotonic()
        sup.stop(timeout=STOP_TIMEOUT)  # one timeout for all, not one per child
        assert time.monotonic() - started < STOP_TIMEOUT + SLACK
        assert all(isinstance(outcome(f, SHORT_TIMEOUT), ClientStopped) for f in futures)
        assert all(c.actor.finished.wait(SHORT_TIMEOUT) for c in clients)
        assert sup.children() == []


@pytest.mark.parametrize("bad", [-1, "1", float("nan")])
def test_stop_timeouts_are_checked(bad: Any) -> None:
    client = fusco_actor.start("http://127.0.0.1:9")
    with pytest.raises(fusco_actor.BadArgument):
        client.disconnect(timeout=bad)
    client.disconnect()


# -- callbacks cannot break a client ------------------------------------------------------


def test_a_done_callback_that_raises_is_logged_and_the_client_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        echo_target(server.accept())

    def broken(_: Any) -> None:
        raise ZeroDivisionError("a user's bug")

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            future = client.request("/first", "GET", timeout=LONG_TIMEOUT)
            future.add_done_callback(broken)
            assert future.get(timeout=LONG_TIMEOUT).body == b"/first"
            second = client.request("/second", "GET", timeout=LONG_TIMEOUT)
            assert second.get(timeout=LONG_TIMEOUT).body == b"/second"
            assert client.actor_ref.is_alive()
        server.wait_done()
    assert any("done-callback" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert len(server.connections) == 1  # the client never crashed


def test_an_arequest_whose_event_loop_closed_does_not_break_the_client() -> None:
    release = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        assert release.wait(LONG_TIMEOUT)
        conn.sendall(ok(b"late"))
        echo_target(conn)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            loop = asyncio.new_event_loop()
            task = loop.create_task(client.arequest("/first", "GET", timeout=LONG_TIMEOUT))
            loop.run_until_complete(asyncio.sleep(0))  # the request is sent and awaited
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                loop.run_until_complete(task)
            loop.close()
            release.set()  # the reply now arrives for a loop that is gone
            second = fusco_actor.request(client, "/second", "GET", [], b"", LONG_TIMEOUT)
            assert second.body == b"/second"
            assert client.actor_ref.is_alive()
        server.wait_done()


def test_a_done_callback_may_make_a_blocking_request_on_the_same_client() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        echo_target(server.accept())

    nested: list[Any] = []
    done = threading.Event()

    def again(_: Any) -> None:
        try:
            nested.append(fusco_actor.request(client, "/nested", "GET", [], b"", SHORT_TIMEOUT))
        except fusco_actor.FuscoError as exc:
            nested.append(exc)
        done.set()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            future = client.request("/first", "GET", timeout=LONG_TIMEOUT)
            future.add_done_callback(again)
            assert future.get(timeout=LONG_TIMEOUT).body == b"/first"
            assert done.wait(LONG_TIMEOUT)
            assert isinstance(nested[0], fusco_actor.Response), nested
            assert nested[0].body == b"/nested"
        server.wait_done()


# -- the right error class ---------------------------------------------------------------


def test_a_resend_whose_deadline_passed_fails_without_reconnecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stale keep-alive case with the deadline spent when the close is seen."""
    skew = [0.0]

    class SkewedTime:
        @staticmethod
        def monotonic() -> float:
            return time.monotonic() + skew[0]

    monkeypatch.setattr(client_module, "time", SkewedTime)
    connects: list[fusco_actor.ConnectInfo] = []

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(ok(b"first"))
        read_request(conn)
        skew[0] = 3600.0  # the client's deadline passes as the server drops the request
        conn.close()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, on_connect=connects.append) as client:
            assert fusco_actor.request(client, "/", "GET", [], b"", 60.0).body == b"first"
            with pytest.raises(RequestTimeout, match="sent again"):
                fusco_actor.request(client, "/", "GET", [], b"", 60.0)
        server.wait_done()
    assert len(connects) == 1
    assert len(server.connections) == 1
