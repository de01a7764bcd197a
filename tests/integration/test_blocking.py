"""The blocking ``fusco_actor.request`` (the caller-runs path) against loopback servers.

On the threaded engine, when the client is idle the blocking call serves its
request in the caller's thread under the actor's turn; otherwise (and always on
the loop engine) it queues like ``Client.request``.
Either way it is one request at a time, in order, on the actor's connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pykka
import pytest

import fusco_actor
from fusco_actor import ClientStopped, Supervisor
from fusco_actor._inbox import Inbox
from fusco_actor._server import EmbeddedServer
from fusco_actor.testing import inject_crash
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    SocketServerThread,
    echo_target,
    ok,
    read_request,
    target_of,
)


def one_connection_server(listener: Any, server: SocketServerThread) -> None:
    """Serve one keep-alive connection; any other connection is left in the backlog."""
    echo_target(server.accept())


def get(client: fusco_actor.Client, path: str) -> fusco_actor.Response:
    """GET ``path`` with the blocking module API (fusco's request/6)."""
    return fusco_actor.request(client, path, "GET", [], b"", LONG_TIMEOUT)


def test_sequential_blocking_requests_share_one_connection() -> None:
    n = 50
    with SocketServerThread(one_connection_server) as server:
        client = fusco_actor.start(server.url)
        bodies = [get(client, f"/seq/{i}").body for i in range(n)]
        fusco_actor.disconnect(client)
        server.wait_done()
    assert bodies == [f"/seq/{i}".encode() for i in range(n)]
    assert len(server.connections) == 1
    assert [target_of(r) for r in server.connections[0].requests] == [
        f"/seq/{i}".encode() for i in range(n)
    ]
    assert server.connections[0].closed_by_peer.is_set()


def test_blocking_requests_from_eight_threads_share_one_connection() -> None:
    threads_n, per_thread = 8, 25
    results: dict[int, list[bytes]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def worker(client: fusco_actor.Client, t: int) -> None:
        try:
            start.wait(SHORT_TIMEOUT)
            results[t] = [get(client, f"/t{t}/{i}").body for i in range(per_thread)]
        except BaseException as exc:
            errors.append(exc)

    with SocketServerThread(one_connection_server) as server:
        client = fusco_actor.start(server.url)
        threads = [
            threading.Thread(target=worker, args=(client, t), daemon=True) for t in range(threads_n)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(LONG_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), "a blocking request hung"
        fusco_actor.disconnect(client)
        server.wait_done()
    assert errors == []
    for t in range(threads_n):
        assert results[t] == [f"/t{t}/{i}".encode() for i in range(per_thread)]
    assert len(server.connections) == 1
    assert len(server.connections[0].requests) == threads_n * per_thread


def test_blocking_request_after_a_crash_is_served_by_the_restarted_incarnation(
    embedded_server: EmbeddedServer,
) -> None:
    sup = Supervisor.start(max_restarts=5, max_seconds=10.0)
    try:
        client = sup.start_client(embedded_server.url)
        assert get(client, "/").status == 200
        first_incarnation = client.actor_ref
        inject_crash(client)  # raised before the next send, in whichever thread serves it
        resp = get(client, "/bytes/10")
        assert resp.status == 200
        assert resp.body == b"0123456789"
        assert sup.restarts(client) == 1
        assert client.actor_ref is not first_incarnation
        assert get(client, "/").status == 200  # and it goes on working
        assert sup.restarts(client) == 1
    finally:
        sup.stop(LONG_TIMEOUT)


def test_blocking_request_queues_behind_one_being_served(embedded_server: EmbeddedServer) -> None:
    with fusco_actor.start(embedded_server.url) as client:
        slow = client.request("/delay/0.3", timeout=LONG_TIMEOUT)
        resp = get(client, "/bytes/5")
        # Served in order: the blocking call came back only after the earlier request.
        assert slow.done
        assert slow.get().body == b"delayed\n"
        assert resp.body == b"01234"


def test_blocking_request_queues_behind_one_on_the_wire() -> None:
    """The same, watched on the wire: the second request is not sent before the first answer."""
    first_arrived = threading.Event()
    release = threading.Event()
    quiet_before_answer: list[bool] = []

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        assert target_of(read_request(conn)) == b"/first"
        first_arrived.set()
        assert release.wait(LONG_TIMEOUT)
        quiet_before_answer.append(not conn.readable(0.1))
        conn.sendall(ok(b"/first"))
        echo_target(conn)

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url)
        first = client.request("/first", timeout=LONG_TIMEOUT)
        assert first_arrived.wait(SHORT_TIMEOUT)
        done = threading.Event()
        second: list[Any] = []

        def blocking() -> None:
            second.append(get(client, "/second"))
            done.set()

        thread = threading.Thread(target=blocking, daemon=True)
        thread.start()
        assert not done.wait(0.2)  # still waiting behind /first
        release.set()
        assert done.wait(SHORT_TIMEOUT)
        assert first.get(timeout=SHORT_TIMEOUT).body == b"/first"
        assert second[0].body == b"/second"
        fusco_actor.disconnect(client)
        server.wait_done()
    assert quiet_before_answer == [True]
    assert [target_of(r) for r in server.connections[0].requests] == [b"/first", b"/second"]
    assert len(server.connections) == 1


def test_disconnect_then_blocking_requests_raise_client_stopped(
    embedded_server: EmbeddedServer,
) -> None:
    client = fusco_actor.start(embedded_server.url)
    assert get(client, "/").status == 200
    fusco_actor.disconnect(client)
    assert client._is_stopped
    for _ in range(3):
        with pytest.raises(ClientStopped):
            get(client, "/")
    with pytest.raises(ClientStopped):
        client.request("/").get(timeout=SHORT_TIMEOUT)


def test_disconnect_serves_what_was_queued_before_it(embedded_server: EmbeddedServer) -> None:
    client = fusco_actor.start(embedded_server.url)
    queued = [client.request(f"/bytes/{n}", timeout=LONG_TIMEOUT) for n in range(1, 6)]
    fusco_actor.disconnect(client)
    try:
        bodies = [f.get(timeout=SHORT_TIMEOUT).body for f in queued]
    except pykka.Timeout:
        pytest.fail("a request queued before disconnect was left unresolved")
    assert bodies == [b"0123456789abcdef"[:n] for n in range(1, 6)]
    with pytest.raises(ClientStopped):
        get(client, "/")


def test_blocking_request_never_overtakes_a_call_taken_but_not_yet_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Order holds in the instant between the actor taking a call from its inbox and serving it.

    The actor is parked right after its inbox handed it ``/first`` (the
    threaded actor takes mail with ``Inbox.get``, a loop actor's turn with
    ``Inbox.take``, parking the scheduler thread). A blocking request made then
    finds the inbox empty; on the threaded engine it also finds the actor's
    turn free, yet it must queue behind ``/first`` rather than run inline ahead
    of it. The loop engine never serves inline: it must queue there too.
    """
    taken, proceed = threading.Event(), threading.Event()
    watched: list[Inbox] = []

    def parking(original: Callable[[Inbox], Any]) -> Callable[[Inbox], Any]:
        def take_and_park(self: Inbox) -> Any:
            envelope = original(self)
            if envelope is not None and watched and self is watched[0] and not taken.is_set():
                taken.set()
                assert proceed.wait(LONG_TIMEOUT)
            return envelope

        return take_and_park

    monkeypatch.setattr(Inbox, "get", parking(Inbox.get))
    monkeypatch.setattr(Inbox, "take", parking(Inbox.take))
    with SocketServerThread(one_connection_server) as server:
        client = fusco_actor.start(server.url)
        inbox = client._actor.actor_inbox
        assert isinstance(inbox, Inbox)
        watched.append(inbox)
        first = client.request("/first", timeout=LONG_TIMEOUT)
        assert taken.wait(SHORT_TIMEOUT), "the actor never took /first"
        second: list[fusco_actor.Response] = []
        thread = threading.Thread(target=lambda: second.append(get(client, "/second")))
        thread.start()
        # Bounded poll: /second is either served inline (the bug) or queued (no event for either).
        for _ in range(int(SHORT_TIMEOUT / 0.001)):
            if second or not inbox.empty():
                break
            threading.Event().wait(0.001)
        proceed.set()
        thread.join(LONG_TIMEOUT)
        assert not thread.is_alive()
        assert first.get(timeout=SHORT_TIMEOUT).body == b"/first"
        assert second[0].body == b"/second"
        fusco_actor.disconnect(client)
        server.wait_done()
    assert [target_of(r) for r in server.connections[0].requests] == [b"/first", b"/second"]
