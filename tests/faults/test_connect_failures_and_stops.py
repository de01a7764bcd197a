"""Whom a failed connect is charged to, what a stop lets finish, and a connection dropped at once.

- A connect bounded by one command's deadline fails that command alone: a
  request or a ``connect()`` queued behind it makes an attempt of its own.
- ``Supervisor.stop(timeout)`` and ``Pool.stop(timeout)`` let a request on the
  wire finish within the timeout; queued requests fail with ``ClientStopped``.
- (Loop engine) a connection that closes before the actor takes it over
  counts as a send: send-retry ends it, it never reconnects for free.

The proxy tunnel of an ``https`` origin is where a connect can be held open
on loopback: a proxy that reads the CONNECT and never answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import fusco_actor
import fusco_actor._loop_client as loop_client_module
from fusco_actor import ClientStopped, ConnectionClosed, ProxyError, RequestTimeout, Response
from fusco_actor._handle import ENGINE_ENV
from tests.helpers import outcome, start_thread, wait_for
from tests.socketserver import (
    LONG_TIMEOUT,
    ServerStopped,
    SocketServerThread,
    ok,
    read_request,
)

FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
SHORT_DEADLINE = 0.3  # seconds: the command that starts the connect gives up after this


def hang_then_refuse(listener: Any, server: SocketServerThread) -> None:
    """A proxy: never answer the first CONNECT; refuse the second with 403."""
    first = server.accept()
    read_request(first)
    second = server.accept()
    read_request(second)
    second.sendall(FORBIDDEN)
    first.wait_closed_by_peer()
    second.wait_closed_by_peer()


def connect_result(client: fusco_actor.Client, timeout: float) -> list[Any]:
    """Run ``client.connect(timeout)`` on a thread; the list gets None or its FuscoError."""
    result: list[Any] = []

    def run() -> None:
        try:
            client.connect(timeout=timeout)
            result.append(None)
        except fusco_actor.FuscoError as exc:
            result.append(exc)

    start_thread(run)
    return result


def test_a_connect_that_times_out_is_not_charged_to_a_request_waiting_for_it() -> None:
    with SocketServerThread(hang_then_refuse) as proxy:
        client = fusco_actor.start("https://origin.test", proxy=proxy.url)
        connected = connect_result(client, SHORT_DEADLINE)
        assert wait_for(lambda: bool(proxy.connections and proxy.connections[0].requests))
        request = client.request("/", "GET", timeout=LONG_TIMEOUT)

        assert wait_for(lambda: bool(connected))
        assert isinstance(connected[0], RequestTimeout), connected
        # The request made its own attempt, on a connection of its own: the proxy's 403.
        assert isinstance(outcome(request), ProxyError)
        client.disconnect(LONG_TIMEOUT)
    assert len(proxy.connections) == 2


def test_a_request_whose_connect_times_out_does_not_fail_a_connect_waiting_for_it() -> None:
    with SocketServerThread(hang_then_refuse) as proxy:
        client = fusco_actor.start("https://origin.test", proxy=proxy.url)
        request = client.request("/", "GET", timeout=SHORT_DEADLINE)
        assert wait_for(lambda: bool(proxy.connections and proxy.connections[0].requests))
        connected = connect_result(client, LONG_TIMEOUT)

        assert isinstance(outcome(request), RequestTimeout)
        assert wait_for(lambda: bool(connected))
        assert isinstance(connected[0], ProxyError), connected  # its own attempt
        client.disconnect(LONG_TIMEOUT)
    assert len(proxy.connections) == 2


# -- a stop lets what is on the wire finish ---------------------------------------------------


def answer_once_stopping(
    arrived: threading.Event, stopping: Callable[[], bool]
) -> Callable[[Any, SocketServerThread], None]:
    """Return a handler: read one request, answer it once ``stopping()`` holds."""

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        arrived.set()
        assert wait_for(stopping), "the stop never began"
        conn.sendall(ok(b"late"))
        conn.wait_closed_by_peer()

    return handler


def test_supervisor_stop_lets_a_request_on_the_wire_finish_and_fails_the_queued_ones() -> None:
    arrived = threading.Event()
    holder: list[fusco_actor.Client] = []
    handler = answer_once_stopping(arrived, lambda: bool(holder) and holder[0]._is_stopped)
    with SocketServerThread(handler) as server:
        sup = fusco_actor.Supervisor.start()
        client = sup.start_client(server.url)
        holder.append(client)
        on_the_wire = client.request("/slow", "GET", timeout=LONG_TIMEOUT)
        assert arrived.wait(LONG_TIMEOUT)
        queued = client.request("/queued", "GET", timeout=LONG_TIMEOUT)

        sup.stop(LONG_TIMEOUT)

        response = outcome(on_the_wire)
        assert isinstance(response, Response), response
        assert (response.status, response.body) == (200, b"late")
        assert isinstance(outcome(queued), ClientStopped)
        assert client._actor.finished.is_set()
        server.wait_done()
    assert len(server.connections[0].requests) == 1  # the queued one never went out


def test_pool_stop_lets_a_request_on_the_wire_finish_and_fails_the_waiting_ones() -> None:
    arrived = threading.Event()
    holder: list[fusco_actor.Client] = []
    handler = answer_once_stopping(arrived, lambda: bool(holder) and holder[0]._is_stopped)
    with SocketServerThread(handler) as server:
        pool = fusco_actor.Pool.start(server.url, max_clients=1)
        on_the_wire = pool.request("/slow", "GET", timeout=LONG_TIMEOUT)
        assert arrived.wait(LONG_TIMEOUT)
        holder.extend(pool._supervisor.children())
        waiting = pool.request("/waiting", "GET", timeout=LONG_TIMEOUT)

        pool.stop(LONG_TIMEOUT)

        response = outcome(on_the_wire)
        assert isinstance(response, Response), response
        assert response.body == b"late"
        assert isinstance(outcome(waiting), ClientStopped)
        server.wait_done()
    assert len(server.connections[0].requests) == 1


# -- loop engine: a connection dropped before the actor takes it over ------------------------


def test_a_connection_closed_before_the_actor_takes_it_counts_as_a_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every connection closes at once; the actor sees each closed: send-retry ends it."""
    monkeypatch.setenv(ENGINE_ENV, "loop")
    real_open = loop_client_module.open_loop_connection  # type: ignore[attr-defined]

    async def closed_before_hand_over(
        destination: Any, options: Any, deadline: Any, owner: Any
    ) -> Any:
        closed = asyncio.Event()
        relay = _ClosedRelay(owner, closed)
        conn = await real_open(destination, options, deadline, relay)
        await asyncio.wait_for(closed.wait(), LONG_TIMEOUT)  # the peer's close came first
        return conn

    monkeypatch.setattr(loop_client_module, "open_loop_connection", closed_before_hand_over)

    def close_at_once(listener: Any, server: SocketServerThread) -> None:
        try:
            while True:
                server.accept().close()
        except ServerStopped:
            pass

    with SocketServerThread(close_at_once) as server:
        client = fusco_actor.start(server.url, send_retry=1)
        result = outcome(client.request("/", "GET", timeout=LONG_TIMEOUT))
        assert isinstance(result, ConnectionClosed), result
        client.disconnect(LONG_TIMEOUT)
    assert len(server.connections) == 2  # the first send and one re-send, no more


class _ClosedRelay:
    """A ConnectionOwner that passes every event on and marks the connection's close."""

    def __init__(self, owner: Any, closed: asyncio.Event) -> None:
        self._owner, self._closed = owner, closed

    def on_data(self, data: bytes) -> None:
        self._owner.on_data(data)

    def on_eof(self) -> None:
        self._closed.set()
        self._owner.on_eof()

    def on_lost(self, exc: Exception | None) -> None:
        self._closed.set()
        self._owner.on_lost(exc)

    def on_writable(self) -> None:
        self._owner.on_writable()
