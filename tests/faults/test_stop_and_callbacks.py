"""Stops that return in time, callbacks that cannot break a client, the right error class.

- ``disconnect(timeout)``, ``Pool.stop(timeout)`` and ``Supervisor.stop(timeout)``
  with a request hung on the wire return within their timeout, raise nothing
  but ``FuscoError``s, and leave every future resolved (``ClientStopped``).
- A done-callback that raises, or an ``arequest`` whose event loop has closed,
  is logged and skipped: the client that resolved it keeps serving.
- A done-callback may call the client that resolved it: no lock of ours is
  held while futures are resolved (on the loop engine it runs on the scheduler
  thread, where a blocking request raises ``SchedulerBlockedError``).
- A spent deadline is a timeout, never a ``TLSError`` or ``ConnectError``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from typing import Any

import pykka
import pytest

import fusco_actor
import fusco_actor._client as client_module
import fusco_actor._loop_client as loop_client_module
from fusco_actor import ClientStopped, RequestTimeout
from fusco_actor._client import _acquire_through_interrupts
from fusco_actor._future import SchedulerBlockedError
from fusco_actor._handle import _actor_class
from fusco_actor._scheduler import LoopActor
from fusco_actor.testing import inject_crash
from tests.helpers import outcome, start_thread, uses_loop_engine, wait_for
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    IncompleteRequest,
    SocketServerThread,
    echo_target,
    ok,
    read_request,
    target_of,
)

STOP_TIMEOUT = 0.5  # seconds given to a stop that must abort
SLACK = 1.0  # seconds a stop may take beyond its timeout on a loaded machine


def hang(listener: Any, server: SocketServerThread) -> None:
    """Accept every connection, read its request, never answer.

    A stop may come before a request is written (the loop engine connects and
    stops fast): the request then fails queued, and its connection closes empty.
    """
    while True:
        conn = server.accept(LONG_TIMEOUT)
        try:
            read_request(conn)
        except IncompleteRequest as exc:
            assert exc.partial == b"", f"a request was cut: {exc.partial!r}"


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
        assert client._actor.finished.wait(SHORT_TIMEOUT)
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
        clients = list(pool._supervisor.children())
        assert len(clients) == 3
        started = time.monotonic()
        pool.stop(timeout=STOP_TIMEOUT)
        assert time.monotonic() - started < STOP_TIMEOUT + SLACK
        assert all(isinstance(outcome(f, SHORT_TIMEOUT), ClientStopped) for f in futures)
        for client in clients:
            assert client._actor.finished.wait(SHORT_TIMEOUT)
        assert not pool._supervisor._ref.is_alive()


def test_supervisor_stop_with_hung_requests_stops_children_in_parallel() -> None:
    with SocketServerThread(hang) as server:
        sup = fusco_actor.Supervisor.start()
        clients = [sup.start_client(server.url) for _ in range(4)]
        futures = [c.request("/hung", "GET") for c in clients]
        started = time.monotonic()
        sup.stop(timeout=STOP_TIMEOUT)  # one timeout for all, not one per child
        assert time.monotonic() - started < STOP_TIMEOUT + SLACK
        assert all(isinstance(outcome(f, SHORT_TIMEOUT), ClientStopped) for f in futures)
        assert all(c._actor.finished.wait(SHORT_TIMEOUT) for c in clients)
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
    on_the_wire = threading.Event()
    release = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        on_the_wire.set()
        assert release.wait(LONG_TIMEOUT)
        conn.sendall(ok(b"late"))
        echo_target(conn)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            loop = asyncio.new_event_loop()
            task = loop.create_task(client.arequest("/first", "GET", timeout=LONG_TIMEOUT))
            assert loop.run_until_complete(loop.run_in_executor(None, on_the_wire.wait, 10.0))
            loop.close()  # with the arequest still waiting: its reply has no loop to go to
            release.set()
            second = fusco_actor.request(client, "/second", "GET", [], b"", LONG_TIMEOUT)
            assert second.body == b"/second"
            assert client.actor_ref.is_alive()
            assert not task.done()
        server.wait_done()


def test_a_done_callback_may_make_a_blocking_request_on_the_same_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No lock of ours is held while a future is resolved: its callback may call the client.

    Threaded engine: the callback runs in the actor's thread with the turn
    released, and its blocking request is served. Loop engine: the callback of
    a future the actor resolves runs on the scheduler thread, where blocking
    would freeze every actor (issue 10): the blocking request raises
    ``SchedulerBlockedError`` before anything is sent, the error is logged as
    any callback's, and the client keeps serving.
    """
    answer_first = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        assert target_of(read_request(conn)) == b"/first"
        assert answer_first.wait(LONG_TIMEOUT)  # the callback is registered before the answer
        conn.sendall(ok(b"/first"))
        echo_target(conn)

    nested: list[Any] = []
    done = threading.Event()

    def again(_: Any) -> None:
        try:
            nested.append(fusco_actor.request(client, "/nested", "GET", [], b"", SHORT_TIMEOUT))
        except Exception as exc:
            nested.append(exc)
            raise  # logged and skipped by the future
        finally:
            done.set()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            future = client.request("/first", "GET", timeout=LONG_TIMEOUT)
            future.add_done_callback(again)
            answer_first.set()
            assert future.get(timeout=LONG_TIMEOUT).body == b"/first"
            assert done.wait(LONG_TIMEOUT)
            loop = uses_loop_engine(client)
            if loop:
                assert isinstance(nested[0], SchedulerBlockedError), nested
                # Logged as the callback returns, just after ``done`` was set.
                assert wait_for(lambda: "SchedulerBlockedError" in caplog.text, SHORT_TIMEOUT)
            else:
                assert isinstance(nested[0], fusco_actor.Response), nested
                assert nested[0].body == b"/nested"
            after = fusco_actor.request(client, "/after", "GET", [], b"", LONG_TIMEOUT)
            assert after.body == b"/after"  # the client was not harmed
        server.wait_done()
    targets = [target_of(r) for r in server.connections[0].requests]
    assert targets == ([b"/first", b"/after"] if loop else [b"/first", b"/nested", b"/after"])


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
    monkeypatch.setattr(loop_client_module, "time", SkewedTime)
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


# -- found in review: races around the released turn and the abort ---------------------------


def test_a_blocking_request_never_uses_the_connection_of_a_body_still_streaming() -> None:
    """While the stream's future is resolved (turn released), a blocking caller must queue."""
    body = b"S" * 3000
    registered = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        while True:
            try:
                raw = read_request(conn)
            except IncompleteRequest:
                return
            target = target_of(raw)
            if target == b"/stream":
                assert registered.wait(LONG_TIMEOUT)
                conn.sendall(ok(body))
            else:
                conn.sendall(ok(target))

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url)
        assert fusco_actor.request(client, "/warm", "GET", [], b"", LONG_TIMEOUT).body == b"/warm"
        inbox = client.actor_ref.actor_inbox
        results: dict[str, Any] = {}

        def other() -> None:
            try:
                results["other"] = fusco_actor.request(client, "/other", "GET", [], b"", 5.0)
            except fusco_actor.FuscoError as exc:
                results["other"] = exc

        def on_stream(_: Any) -> None:  # runs in the actor thread with the turn released
            results["thread"] = start_thread(other)
            # The other caller must queue behind the stream, not run on its connection.
            results["queued"] = wait_for(lambda: inbox.queued == before + 2, SHORT_TIMEOUT)  # type: ignore[attr-defined]

        before = inbox.queued  # type: ignore[attr-defined]
        future = client.stream("/stream", "GET", timeout=LONG_TIMEOUT)
        future.add_done_callback(on_stream)
        registered.set()
        with future.get(timeout=LONG_TIMEOUT) as resp:
            assert resp.read() == body
        results["thread"].join(LONG_TIMEOUT)
        assert results["queued"]
        assert isinstance(results["other"], fusco_actor.Response)
        assert results["other"].body == b"/other"
        client.disconnect(LONG_TIMEOUT)


def test_an_abort_during_a_stream_ends_the_actor() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000)
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url)
        resp = client.stream("/big", "GET").get(timeout=LONG_TIMEOUT)
        later = client.request("/after", "GET")
        started = time.monotonic()
        client.disconnect(timeout=STOP_TIMEOUT)
        assert time.monotonic() - started < STOP_TIMEOUT + SLACK
        assert isinstance(outcome(later, SHORT_TIMEOUT), ClientStopped)
        assert client._actor.finished.wait(SHORT_TIMEOUT)  # the actor is not left waiting
        with pytest.raises(ClientStopped):
            resp.read()
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()


def test_supervisor_stop_with_no_time_left_still_stops_every_child() -> None:
    with SocketServerThread(lambda listener, server: echo_target(server.accept())) as server:
        sup = fusco_actor.Supervisor.start()
        client = sup.start_client(server.url)
        assert fusco_actor.request(client, "/a", "GET", [], b"", LONG_TIMEOUT).body == b"/a"
        sup.stop(timeout=0)
        assert client._is_stopped
        assert client._actor.finished.wait(SHORT_TIMEOUT)
        with pytest.raises(ClientStopped):
            fusco_actor.request(client, "/b", "GET", [], b"", SHORT_TIMEOUT)


def test_a_disconnect_that_aborts_a_restarting_child_leaves_no_incarnation_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    on_loop = issubclass(_actor_class(), LoopActor)
    reports: list[tuple[Any, ...]] = []
    real_child_crashed = fusco_actor.Supervisor._child_crashed

    def busy(_: Any) -> None:  # keeps the supervisor busy while the crash report waits
        release.wait(LONG_TIMEOUT)

    def report_later(sup: fusco_actor.Supervisor, *report: Any) -> None:
        reports.append((sup, *report))  # the crash report waits (the loop must not block)

    if on_loop:
        monkeypatch.setattr(fusco_actor.Supervisor, "_child_crashed", report_later)

    def serve_two(listener: Any, server: SocketServerThread) -> None:
        for _ in range(2):
            echo_target(server.accept())

    with SocketServerThread(serve_two) as server:
        sup = fusco_actor.Supervisor.start(on_child_gone=None if on_loop else busy)
        first = sup.start_client(server.url)
        second = sup.start_client(server.url)
        assert fusco_actor.request(second, "/", "GET", [], b"", LONG_TIMEOUT).status == 200
        first.disconnect()  # the supervisor now runs `busy`
        inject_crash(second)
        pending = second.request("/", "GET")
        assert wait_for(lambda: second._state == "restarting")
        second.disconnect(timeout=0.1)
        assert isinstance(outcome(pending, SHORT_TIMEOUT), ClientStopped)
        release.set()
        for report in reports:
            real_child_crashed(*report)
        sup.stop(timeout=LONG_TIMEOUT)
        name = _actor_class().__name__
        assert wait_for(lambda: not pykka.ActorRegistry.get_by_class_name(name))


def test_ctrl_c_while_retaking_the_turn_is_raised_only_once_the_turn_is_held() -> None:
    """Ctrl-C while a blocking caller waits to re-take the turn: raised once the turn is held."""
    turn = threading.Lock()
    turn.acquire()  # held by "the actor thread"
    fired = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        fired.set()
        raise KeyboardInterrupt

    main = threading.get_ident()

    def waiting() -> bool:
        frame = sys._current_frames().get(main)
        return frame is not None and frame.f_code is _acquire_through_interrupts.__code__

    def actor_thread() -> None:
        assert wait_for(waiting)  # the caller is inside, waiting for the turn
        os.kill(os.getpid(), signal.SIGINT)  # the user hits Ctrl-C
        assert fired.wait(LONG_TIMEOUT)
        turn.release()  # the actor's serve ends

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        worker = start_thread(actor_thread)
        with pytest.raises(KeyboardInterrupt):
            _acquire_through_interrupts(turn)
        worker.join(LONG_TIMEOUT)
        assert turn.locked()  # held by the caller when the interrupt surfaced
        turn.release()
    finally:
        signal.signal(signal.SIGINT, previous)
