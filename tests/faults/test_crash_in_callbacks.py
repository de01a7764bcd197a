"""A bug met while handling a socket event or a timer is a crash the supervisor sees.

On the loop engine such code runs in a callback of the event loop, outside
any mailbox turn; what it raises must still stop the actor through
``on_failure``, so that its supervisor restarts it and re-sends what the
README's "Send-retry" allows, instead of being logged by the loop and lost.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import fusco_actor
from fusco_actor import ClientStopped, RequestTimeout, Response
from fusco_actor._handle import ENGINE_ENV
from fusco_actor._loop_client import LoopClientActor
from fusco_actor._scheduler import get_scheduler
from fusco_actor._wire import Origin
from tests.helpers import outcome, wait_for
from tests.socketserver import LONG_TIMEOUT, SocketServerThread, echo_target, read_request


class Bug(RuntimeError):
    """What the patched code raises: an unexpected exception, as a bug would."""


def test_a_bug_while_reading_a_response_restarts_the_client_and_resends_the_get(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_store = Origin.store_cookies
    raised = threading.Event()

    def store_once_broken(self: Origin, call: Any, head: Any) -> None:
        if not raised.is_set():
            raised.set()
            raise Bug("a bug while reading the response")
        real_store(self, call, head)

    monkeypatch.setattr(Origin, "store_cookies", store_once_broken)

    def serve(listener: Any, server: SocketServerThread) -> None:
        echo_target(server.accept())  # read by the crashed incarnation
        echo_target(server.accept())  # the re-send, on the next one

    with SocketServerThread(serve) as server:
        sup = fusco_actor.Supervisor.start()
        try:
            client = sup.start_client(server.url, send_retry=1)
            response = outcome(client.request("/item", "GET", timeout=LONG_TIMEOUT))
            assert isinstance(response, Response), response
            assert response.body == b"/item"
            assert raised.is_set()
            assert sup.restarts(client) == 1
        finally:
            sup.stop(LONG_TIMEOUT)
        server.wait_done()
    assert len(server.connections) == 2


def test_a_bug_in_a_deadline_timer_on_the_loop_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, "loop")
    real_reset = LoopClientActor._reset_response
    armed = threading.Event()

    def reset_broken(self: LoopClientActor) -> None:
        if armed.is_set():
            armed.clear()
            raise Bug("a bug in the timer's path")
        real_reset(self)

    monkeypatch.setattr(LoopClientActor, "_reset_response", reset_broken)

    def hang_then_echo(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)  # never answered: the request times out
        echo_target(server.accept())
        first.wait_closed_by_peer()

    with SocketServerThread(hang_then_echo) as server:
        sup = fusco_actor.Supervisor.start()
        try:
            client = sup.start_client(server.url)
            first_ref = client.actor_ref
            armed.set()
            assert isinstance(outcome(client.request("/hung", timeout=0.3)), RequestTimeout)
            assert wait_for(lambda: sup.restarts(client) == 1)
            assert client.actor_ref is not first_ref
            assert not first_ref.is_alive()
            after = outcome(client.request("/after", timeout=LONG_TIMEOUT))
            assert isinstance(after, Response), after
            assert after.body == b"/after"
        finally:
            sup.stop(LONG_TIMEOUT)
        server.wait_done()


def test_a_base_exception_in_a_callback_stops_the_client_and_never_the_scheduler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``SystemExit`` from ``on_connect`` (run on the scheduler's loop): pykka's rule, no hang."""
    monkeypatch.setenv(ENGINE_ENV, "loop")

    def leave(_: fusco_actor.ConnectInfo) -> None:
        raise SystemExit("a user's on_connect exits")

    def serve(listener: Any, server: SocketServerThread) -> None:
        echo_target(server.accept())  # the client with the broken on_connect
        echo_target(server.accept())  # a client started afterwards

    with SocketServerThread(serve) as server:
        client = fusco_actor.start(server.url, on_connect=leave)
        assert isinstance(outcome(client.request("/", timeout=LONG_TIMEOUT)), ClientStopped)
        assert client._actor.finished.wait(LONG_TIMEOUT)
        assert get_scheduler().thread.is_alive()
        with fusco_actor.start(server.url) as later:
            response = outcome(later.request("/later", timeout=LONG_TIMEOUT))
            assert isinstance(response, Response), response
            assert response.body == b"/later"
        server.wait_done()
