"""Faults found reviewing the loop engine (issue 10): each test fails without its fix.

- A connection's owner callbacks are not filtered by connection identity: the
  loss of a connection the actor no longer holds (one it aborted, a connect
  overtaken by a close) must not close the connection it holds now, nor fail
  or re-send the requests on it (README "Send-retry").
- A re-send withdrawn by its caller (``cancel``) while it waits for a new
  connection leaves the actor's timers: it is disarmed like every other call.
- Bytes that reach an idle connection before the loop reads them (a server's
  408 on a connection it times out) never answer the next request: the actor
  checks the socket before reusing it, as the threaded engine does. asyncio's
  loop runs the request's turn before it polls the socket, so that case runs
  in a subprocess on it (uvloop, the default where it installs, polls first).
- An abort during a connect (a proxy that never answers CONNECT) resolves the
  ``connect()`` and the request waiting on it and closes the socket (no fault
  found; kept as a regression test).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import fusco_actor
from fusco_actor import Response
from fusco_actor._aio_transport import LoopConnection, open_loop_connection
from fusco_actor._handle import ENGINE_ENV
from fusco_actor._loop_client import LoopClientActor
from fusco_actor._scheduler import LOOP_ENV, get_scheduler
from tests.helpers import on_scheduler, outcome, wait_for
from tests.socketserver import LONG_TIMEOUT, SocketServerThread, fill_backlog, ok, read_request

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _loop_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENGINE_ENV, "loop")  # the default engine; these are its faults
    yield


def loop_actor(client: fusco_actor.Client) -> LoopClientActor:
    """Return the client's loop actor (these faults are the loop engine's)."""
    actor = client._actor
    if not isinstance(actor, LoopClientActor):
        pytest.skip("a fault of the loop engine")
    return actor


def test_the_loss_of_a_connection_the_actor_no_longer_holds_spares_the_one_it_holds() -> None:
    release = threading.Event()

    def serve(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        server.accept()  # the stale connection: aborted by the client
        assert release.wait(LONG_TIMEOUT)
        first.sendall(ok(b"answer"))

    with SocketServerThread(serve) as server:
        client = fusco_actor.start(server.url)
        actor = loop_actor(client)
        request = client.request("/", "POST", body=b"once", timeout=LONG_TIMEOUT)
        assert wait_for(lambda: bool(server.connections and server.connections[0].requests))
        # A connection whose owner is the actor but which the actor does not hold:
        # what a connect overtaken by a close leaves (``_connected``), or an aborted one.
        stale: LoopConnection = asyncio.run_coroutine_threadsafe(
            open_loop_connection(actor._destination, actor._options, None, actor),
            get_scheduler().loop,
        ).result(LONG_TIMEOUT)
        on_scheduler(stale.abort)
        on_scheduler(lambda: None)  # its on_lost ran before this (call_soon order)
        release.set()

        response = outcome(request)
        assert isinstance(response, Response), response
        assert (response.status, response.body) == (200, b"answer")
        assert len(server.connections[0].requests) == 1
        client.disconnect(LONG_TIMEOUT)


def test_a_resend_cancelled_while_its_connect_hangs_leaves_no_timer() -> None:
    fillers: list[socket.socket] = []

    def serve(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        assert fill_backlog(server.port, fillers), "the backlog never filled"  # re-send hangs
        first.close()  # no byte of a response: the GET goes again (README "Send-retry")

    with SocketServerThread(serve, backlog=0) as server:
        try:
            client = fusco_actor.start(server.url, connect_timeout=LONG_TIMEOUT)
            actor = loop_actor(client)
            request = client.request("/", "GET", timeout=LONG_TIMEOUT, send_retry=1)
            waiting = lambda: [c for c in actor._to_send if c.sends == 1]  # noqa: E731
            assert wait_for(lambda: bool(on_scheduler(waiting)))  # to go again, once connected
            call = on_scheduler(waiting)[0]
            assert call in actor._timers

            assert request.cancel()
            assert wait_for(lambda: on_scheduler(lambda: not actor._to_send))
            assert on_scheduler(lambda: call not in actor._timers)
            client.disconnect(0.5)
        finally:
            for filler in fillers:
                filler.close()


STALE_408 = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def stale_idle_bytes_scenario() -> None:
    """A 408 lands on an idle connection while the loop is busy; a request follows at once.

    The request's turn can run before the loop reads the socket (asyncio's loop
    runs the callbacks queued before it polls; uvloop polls first, so there the
    window is narrower): the 408 must not be taken as the request's answer.
    """
    stray_sent = threading.Event()
    send_stray = threading.Event()

    def serve(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok(b"first"))
        assert send_stray.wait(LONG_TIMEOUT)
        first.sendall(STALE_408)  # an idle connection timed out by the server
        stray_sent.set()
        first.wait_closed_by_peer()
        second = server.accept()
        read_request(second)
        second.sendall(ok(b"second"))
        second.wait_closed_by_peer()

    with SocketServerThread(serve) as server:
        client = fusco_actor.start(server.url)
        actor = loop_actor(client)
        first = outcome(client.request("/1", timeout=LONG_TIMEOUT))
        assert isinstance(first, Response) and first.body == b"first"
        conn = actor.connection
        sock = conn.get_extra_info("socket") if conn is not None else None
        assert sock is not None

        def send_while_the_loop_is_busy() -> Any:
            # On the scheduler: the 408 reaches the socket while the loop runs this.
            send_stray.set()
            assert stray_sent.wait(LONG_TIMEOUT)
            assert select.select([sock], [], [], LONG_TIMEOUT)[0]
            return client.request("/2", timeout=LONG_TIMEOUT)

        second = outcome(on_scheduler(send_while_the_loop_is_busy))
        assert isinstance(second, Response), second
        assert (second.status, second.body) == (200, b"second"), (second.status, second.body)
        client.disconnect(LONG_TIMEOUT)


def test_bytes_not_yet_read_on_an_idle_connection_never_answer_a_new_request() -> None:
    stale_idle_bytes_scenario()  # on this process's scheduler loop (uvloop where it installs)


def test_bytes_not_yet_read_on_an_idle_connection_never_answer_a_new_request_asyncio() -> None:
    env = {**os.environ, LOOP_ENV: "asyncio", ENGINE_ENV: "loop"}
    code = "from tests.faults.test_loop_review import stale_idle_bytes_scenario as s; s()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=LONG_TIMEOUT * 2,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_abort_during_a_connect_resolves_the_connect_and_the_requests_waiting_on_it() -> None:
    def hang(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()  # a proxy that reads CONNECT and never answers
        read_request(first)
        first.wait_closed_by_peer()

    with SocketServerThread(hang) as proxy:
        client = fusco_actor.start("https://origin.test", proxy=proxy.url)
        connected: list[Any] = []

        def connect() -> None:
            try:
                client.connect(timeout=LONG_TIMEOUT)
                connected.append(None)
            except fusco_actor.FuscoError as exc:
                connected.append(exc)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        assert wait_for(lambda: bool(proxy.connections and proxy.connections[0].requests))
        request = client.request("/", "GET", timeout=LONG_TIMEOUT)
        client.disconnect(0.2)  # the connect is in hand: the timeout aborts it

        thread.join(LONG_TIMEOUT)
        assert isinstance(connected[0], fusco_actor.ClientStopped), connected
        assert isinstance(outcome(request), fusco_actor.ClientStopped)
        assert proxy.connections[0].closed_by_peer.wait(LONG_TIMEOUT)
