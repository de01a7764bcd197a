"""Crash injection under a Supervisor: restarts, re-sent and failed requests, giving up, stop.

Every wait is bounded: futures are read with ``get(timeout=...)`` (a hang
surfaces as ``pykka.Timeout``), and the scripted servers signal with events.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

import fusco_actor
from fusco_actor import ClientStopped, ConnectionClosed, Response, Supervisor
from fusco_actor._handle import _actor_class
from fusco_actor._scheduler import LoopActor
from fusco_actor._server import EmbeddedServer
from fusco_actor.testing import inject_crash
from tests.conftest import LONG_TIMEOUT, SHORT_TIMEOUT
from tests.helpers import outcome
from tests.socketserver import ServerConnection, SocketServerThread, read_request

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def supervisor() -> Iterator[Callable[..., Supervisor]]:
    """Start supervisors for a test and stop them all at its end."""
    started: list[Supervisor] = []

    def start(**kwargs: Any) -> Supervisor:
        sup = Supervisor.start(**kwargs)
        started.append(sup)
        return sup

    yield start
    for sup in started:
        sup.stop(LONG_TIMEOUT)


# -- restart with queued requests ----------------------------------------------------------


def test_a_crash_with_50_queued_requests_resends_them_all_on_the_restarted_client(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    client = fusco_actor.start_link(embedded_server.url, sup)
    first_ref = client.actor_ref
    futures = [client.request("/delay/0.02", "GET", timeout=LONG_TIMEOUT) for _ in range(50)]
    futures[0].get(timeout=LONG_TIMEOUT)

    inject_crash(client)
    pending_at_crash = sum(not f.done for f in futures)

    results = [outcome(f) for f in futures]
    assert pending_at_crash > 10  # the crash really hit a client with a queue
    assert [r.status if isinstance(r, Response) else r for r in results] == [200] * 50
    assert sup.restarts(client) == 1
    assert client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).status == 200
    assert client.actor_ref != first_ref
    assert client.actor_ref.is_alive()
    assert not first_ref.is_alive()
    assert sup.children() == [client]


# -- restart intensity ---------------------------------------------------------------------


def test_crashes_beyond_the_intensity_stop_the_child_and_fail_its_requests_with_client_stopped(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=2, max_seconds=60.0)
    doomed = sup.start_client(embedded_server.url)
    other = sup.start_client(embedded_server.url)
    for expected in (1, 2):
        inject_crash(doomed)
        assert doomed.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).status == 200
        assert sup.restarts(doomed) == expected

    slow = doomed.request("/delay/0.2", timeout=LONG_TIMEOUT)
    queued = [doomed.request("/", timeout=LONG_TIMEOUT) for _ in range(10)]
    inject_crash(doomed)  # the third crash within 60 s: more than max_restarts=2
    results = [outcome(f) for f in [slow, *queued]]

    assert all(isinstance(r, ClientStopped) for r in results), results
    later = outcome(doomed.request("/", timeout=LONG_TIMEOUT), SHORT_TIMEOUT)
    assert isinstance(later, ClientStopped)
    assert doomed._is_stopped
    assert sup.children() == [other]

    # The supervisor still serves, and restarts, its other child.
    inject_crash(other)
    assert other.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).status == 200
    assert sup.restarts(other) == 1
    assert sup.children() == [other]


def test_max_restarts_zero_gives_up_at_the_first_crash(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=0, max_seconds=10.0)
    client = sup.start_client(embedded_server.url)
    inject_crash(client)
    assert isinstance(outcome(client.request("/")), ClientStopped)
    assert sup.children() == []
    assert sup.restarts(client) == 0


# -- who stopped the child -----------------------------------------------------------------


def test_someone_stopping_the_actor_ref_counts_as_a_crash_and_restarts_the_client(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    client = sup.start_client(embedded_server.url)
    assert client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).status == 200
    old_ref = client.actor_ref

    old_ref.stop(timeout=LONG_TIMEOUT)

    assert client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).status == 200
    assert sup.restarts(client) == 1
    assert client.actor_ref != old_ref
    assert client.actor_ref.is_alive()
    assert sup.children() == [client]


def test_a_disconnected_child_is_not_restarted_and_later_requests_fail_client_stopped(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    client = sup.start_client(embedded_server.url)
    keeper = sup.start_client(embedded_server.url)
    queued = [client.request("/", timeout=LONG_TIMEOUT) for _ in range(5)]

    client.disconnect(timeout=LONG_TIMEOUT)

    assert [outcome(f).status for f in queued] == [200] * 5  # served before the disconnect
    assert isinstance(outcome(client.request("/"), SHORT_TIMEOUT), ClientStopped)
    assert not client.actor_ref.is_alive()
    assert client._is_stopped
    assert sup.restarts(client) == 0
    assert sup.children() == [keeper]


def test_an_incarnation_stopped_before_its_restart_completes_fails_requests_instead_of_hanging(
    embedded_server: EmbeddedServer,
    supervisor: Callable[..., Supervisor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ActorRegistry.stop_all() can stop the new incarnation between its start and the
    # moment the handle switches to it; the handle must not route to a dead actor.
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    client = sup.start_client(embedded_server.url)
    actor_class: Any = _actor_class()
    real_start = actor_class.start.__func__

    def start_then_stop(cls: type[Any], *args: Any, **kwargs: Any) -> Any:
        ref = real_start(cls, *args, **kwargs)
        if issubclass(cls, LoopActor):
            # This runs on the scheduler thread, which serves the stop: stop it here,
            # as a turn serving pykka's stop message would.
            ref._actor._stop()
            ref.actor_inbox.kill(str(ref))
        else:
            ref.stop(block=False)
            # Not ref.stop(block=True): that would block the scheduler thread (and raise).
            assert ref.actor_stopped.wait(LONG_TIMEOUT)
        return ref

    monkeypatch.setattr(actor_class, "start", classmethod(start_then_stop))
    inject_crash(client)

    assert isinstance(outcome(client.request("/")), ClientStopped)
    assert isinstance(outcome(client.request("/"), SHORT_TIMEOUT), ClientStopped)
    assert client._is_stopped
    assert sup.children() == []


# -- stopping the supervisor ---------------------------------------------------------------


def test_stopping_the_supervisor_resolves_every_queued_request(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    clients = [sup.start_client(embedded_server.url) for _ in range(3)]
    futures = [c.request("/delay/0.05", timeout=LONG_TIMEOUT) for c in clients for _ in range(20)]

    sup.stop(LONG_TIMEOUT)

    results = [outcome(f) for f in futures]
    assert all(isinstance(r, (Response, ClientStopped)) for r in results), results
    assert any(isinstance(r, ClientStopped) for r in results)
    for client in clients:
        assert client._is_stopped
        assert isinstance(outcome(client.request("/"), SHORT_TIMEOUT), ClientStopped)
    assert sup.children() == []
    with pytest.raises(ClientStopped):
        sup.start_client(embedded_server.url)


# -- a crash while a request is on the wire ------------------------------------------------


def held_then_answered(
    arrived: threading.Event, release: threading.Event, answers: int
) -> Callable[[Any, SocketServerThread], None]:
    """Return a handler: hold the first request until ``release``; answer ``answers`` in all."""

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        arrived.set()
        if not release.wait(LONG_TIMEOUT):
            raise TimeoutError("the test never released the response")
        conn.sendall(OK)
        for _ in range(answers - 1):
            conn = server.accept()
            read_request(conn)
            conn.sendall(OK)
        conn.wait_closed_by_peer()

    return handler


def all_requests(connections: list[ServerConnection]) -> list[bytes]:
    return [request for conn in connections for request in conn.requests]


def test_a_post_on_the_wire_at_a_crash_is_not_sent_again_and_fails_connection_closed(
    supervisor: Callable[..., Supervisor],
) -> None:
    arrived, release = threading.Event(), threading.Event()
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    with SocketServerThread(held_then_answered(arrived, release, answers=1)) as server:
        client = sup.start_client(server.url)
        future = client.request("/upload", "POST", body=b"once", timeout=LONG_TIMEOUT, send_retry=3)
        assert arrived.wait(LONG_TIMEOUT), "the POST never reached the server"
        inject_crash(client)  # raises right after the response is read
        release.set()

        assert isinstance(outcome(future), ConnectionClosed)
        server.wait_done()  # the crash closed the connection: the peer closed it
        assert sup.restarts(client) == 1
    requests = all_requests(server.connections)
    assert len(server.connections) == 1
    assert len(requests) == 1
    assert requests[0].startswith(b"POST /upload HTTP/1.1\r\n")
    assert requests[0].endswith(b"\r\n\r\nonce")


def test_a_get_on_the_wire_at_a_crash_is_sent_again_and_succeeds(
    supervisor: Callable[..., Supervisor],
) -> None:
    arrived, release = threading.Event(), threading.Event()
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    with SocketServerThread(held_then_answered(arrived, release, answers=2)) as server:
        client = sup.start_client(server.url)
        future = client.request("/item", "GET", timeout=LONG_TIMEOUT, send_retry=1)
        assert arrived.wait(LONG_TIMEOUT), "the GET never reached the server"
        inject_crash(client)
        release.set()

        response = outcome(future)
        assert isinstance(response, Response), response
        assert (response.status, response.body) == (200, b"ok")
        assert sup.restarts(client) == 1
        client.disconnect(LONG_TIMEOUT)
        server.wait_done()
    requests = all_requests(server.connections)
    assert len(server.connections) == 2  # the re-send went out on a fresh connection
    assert len(requests) == 2
    assert requests[0] == requests[1]
    assert requests[0].startswith(b"GET /item HTTP/1.1\r\n")


def test_a_get_whose_send_retry_is_spent_fails_connection_closed_at_a_crash(
    supervisor: Callable[..., Supervisor],
) -> None:
    arrived, release = threading.Event(), threading.Event()
    sup = supervisor(max_restarts=5, max_seconds=10.0)
    with SocketServerThread(held_then_answered(arrived, release, answers=1)) as server:
        client = sup.start_client(server.url)
        future = client.request("/item", "GET", timeout=LONG_TIMEOUT, send_retry=0)
        assert arrived.wait(LONG_TIMEOUT)
        inject_crash(client)
        release.set()
        assert isinstance(outcome(future), ConnectionClosed)
        server.wait_done()
    assert len(all_requests(server.connections)) == 1


# -- the pykka race ------------------------------------------------------------------------


def test_requests_from_many_threads_all_resolve_while_crashes_are_injected_repeatedly(
    embedded_server: EmbeddedServer, supervisor: Callable[..., Supervisor]
) -> None:
    sup = supervisor(max_restarts=10_000, max_seconds=60.0)
    clients = [sup.start_client(embedded_server.url) for _ in range(3)]
    senders, per_sender = 8, 150
    futures: list[Any] = []
    futures_lock = threading.Lock()
    go = threading.Barrier(senders + 1)

    def send(index: int) -> None:
        rng = random.Random(index)
        go.wait(LONG_TIMEOUT)
        mine = [rng.choice(clients).request("/", "GET") for _ in range(per_sender)]
        with futures_lock:
            futures.extend(mine)

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(senders)]
    for thread in threads:
        thread.start()
    go.wait(LONG_TIMEOUT)
    rng = random.Random(0)
    injected = 0
    while any(t.is_alive() for t in threads) or injected < 20:
        victim = rng.choice(clients)
        if injected % 3 == 2:
            # An outside stop: a stop message lands amid queued requests.
            with contextlib.suppress(pykka.ActorDeadError):
                victim.actor_ref.stop(block=False)
        else:
            inject_crash(victim)
        outcome(victim.request("/"))  # one step, so the crash fires now
        injected += 1
    for thread in threads:
        thread.join(LONG_TIMEOUT)
        assert not thread.is_alive()

    deadline = time.monotonic() + LONG_TIMEOUT
    results = [outcome(f, max(0.0, deadline - time.monotonic())) for f in futures]

    assert len(results) == senders * per_sender
    kinds = {type(r).__name__ for r in results}
    assert kinds <= {"Response", "ConnectionClosed"}, kinds
    assert sum(isinstance(r, Response) for r in results) > len(results) // 2
    assert sum(sup.restarts(c) for c in clients) >= 20
    assert sorted(map(id, sup.children())) == sorted(map(id, clients))
    for client in clients:
        assert client.request("/").get(timeout=LONG_TIMEOUT).status == 200
