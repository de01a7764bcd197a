"""Streamed downloads on the loop engine: bounded memory, consumers on other loops and threads.

The threaded engine's streaming tests run against the loop engine too (see
``test_loop_engine.py``); these cover what only the loop engine has: its flow
control (``pause_reading`` while a piece waits unasked), its scheduler thread
(where a consumer must get ``SchedulerBlockedError``, never a deadlock), and
consumers awaiting from event loops of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import select
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import fusco_actor
from fusco_actor import ClientStopped, StreamingResponse, _future
from fusco_actor._future import SchedulerBlockedError
from fusco_actor._handle import ENGINE_ENV
from fusco_actor._loop_client import LoopClientActor
from fusco_actor._server import EmbeddedServer
from tests.integration.test_streaming import pattern
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    ServerConnection,
    SocketServerThread,
    ok,
    read_request,
)

MIB = 1_048_576
BIG = 256 * MIB  # bytes: a body far larger than anything the client may hold
# What the kernel buffers on loopback (both socket buffers, autotuned) plus a few reads.
BOUND = 32 * MIB


@pytest.fixture(autouse=True)
def _loop_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENGINE_ENV, "loop")
    yield


def serve_forever(conn: ServerConnection) -> None:
    """Answer every request on ``conn`` with ``ok`` until the peer closes."""
    while True:
        try:
            read_request(conn)
        except Exception:
            return
        conn.sendall(ok())


class Firehose:
    """A server that sends a ``BIG`` body as fast as the client lets it, counting the bytes.

    ``stalls`` grows by one (with the count sent so far) each time the socket
    stops taking bytes for 0.3 s after taking some: the client stopped reading.
    """

    def __init__(self) -> None:
        self.sent = 0
        self.stalls: list[int] = []
        self.stalled = threading.Condition()

    def __call__(self, listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
        block = memoryview(b"x" * MIB)
        poller = select.poll()
        poller.register(conn.sock, select.POLLOUT)
        progressed = True
        while self.sent < BIG and not server.quit.is_set():
            try:
                self.sent += conn.sock.send(block[: min(MIB, BIG - self.sent)])
                progressed = True
            except BlockingIOError:
                if not poller.poll(300) and progressed:
                    progressed = False
                    with self.stalled:
                        self.stalls.append(self.sent)
                        self.stalled.notify_all()
        serve_forever(conn)

    def wait_stall(self, after: int) -> int:
        """Wait for stall number ``after + 1``; return the bytes sent by then."""
        with self.stalled:
            assert self.stalled.wait_for(lambda: len(self.stalls) > after, LONG_TIMEOUT)
            return self.stalls[after]


def is_paused(client: fusco_actor.Client) -> bool:
    """Whether the client's connection has stopped reading (flow control)."""
    connection = client._actor.connection
    assert connection is not None
    return bool(connection._protocol.paused)


def test_a_large_body_read_slowly_never_buffers_more_than_a_few_pieces() -> None:
    server_side = Firehose()
    with SocketServerThread(server_side) as server:
        with fusco_actor.start(server.url) as client:
            assert isinstance(client._actor, LoopClientActor)
            resp = client.stream("/big", "GET", timeout=60.0).get(timeout=LONG_TIMEOUT)
            connection = client._actor.connection
            pieces = resp.iter_bytes()
            consumed = 0
            for phase in range(3):  # read a little, then let the server run into the wall
                while consumed < (phase + 1) * 8 * MIB:
                    consumed += len(next(pieces))
                sent = server_side.wait_stall(phase)
                assert sent - consumed < BOUND, (phase, sent, consumed)
                assert is_paused(client)
            for piece in pieces:  # now as fast as it comes: the whole body, in order
                consumed += len(piece)
            assert consumed == BIG
            # Read to its end: the connection goes back to keep-alive, reading again.
            assert client.request("/next", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).body
            assert client._actor.connection is connection
            assert not is_paused(client)
        server.wait_done()
    assert len(server.connections) == 1


def test_a_consumer_on_another_event_loop_awaits_the_head_and_reads_the_body(
    embedded_server: EmbeddedServer,
) -> None:
    n = 3_000_000

    async def consume(client: fusco_actor.Client) -> tuple[bytes, bytes]:
        # Awaited on this thread's own loop; each piece fetched off the loop, so it stays free.
        resp = await client.stream(f"/bytes/{n}", "GET", timeout=LONG_TIMEOUT)
        pieces = resp.iter_bytes()
        got = bytearray()
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            got += piece
        # Iterating straight from a task also works: it blocks this loop, not the scheduler.
        again = await client.stream(f"/bytes/{n}", "GET", timeout=LONG_TIMEOUT)
        return bytes(got), again.read()

    async def bounded(client: fusco_actor.Client) -> tuple[bytes, bytes]:
        return await asyncio.wait_for(consume(client), LONG_TIMEOUT)

    with fusco_actor.start(embedded_server.url) as client:
        first, second = asyncio.run(bounded(client))
    assert first == second == pattern(n)


def held_until(registered: threading.Event, body: bytes, closed_early: bool) -> Any:
    """Return a handler that answers ``body`` once ``registered`` is set, then ``ok``s.

    ``closed_early``: the client closes the first connection in the middle of
    ``body``, and the next request comes on a second one.
    """

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        assert registered.wait(LONG_TIMEOUT)  # the callback is in place: it runs on the loop
        if closed_early:
            with contextlib.suppress(OSError):
                conn.sendall(ok(body))
            conn.wait_closed_by_peer()
            conn = server.accept()
        else:
            conn.sendall(ok(body))
        serve_forever(conn)

    return handler


def test_iterating_on_the_scheduler_thread_raises_instead_of_deadlocking() -> None:
    body = pattern(600_000)
    outcome: dict[str, Any] = {}
    seen = threading.Event()
    registered = threading.Event()

    def on_head(future: Any) -> None:  # a done-callback: runs on the scheduler thread
        outcome["on_scheduler"] = threading.get_ident() == _future._scheduler_ident
        resp: StreamingResponse = future.get()
        try:
            next(iter(resp.iter_bytes()))
        except SchedulerBlockedError as exc:
            outcome["error"] = exc
        finally:
            seen.set()

    with SocketServerThread(held_until(registered, body, closed_early=False)) as server:
        with fusco_actor.start(server.url) as client:
            future = client.stream("/body", "GET", timeout=LONG_TIMEOUT)
            future.add_done_callback(on_head)
            registered.set()
            assert seen.wait(LONG_TIMEOUT)
            assert outcome["on_scheduler"]
            assert isinstance(outcome.get("error"), SchedulerBlockedError)
            # The refused attempt asked for nothing: another thread reads it all, in order.
            resp = future.get(timeout=LONG_TIMEOUT)
            connection = client._actor.connection
            assert resp.read() == body
            assert client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).body
            assert client._actor.connection is connection
        server.wait_done()
    assert len(server.connections) == 1


def test_closing_on_the_scheduler_thread_frees_the_client() -> None:
    closed = threading.Event()
    registered = threading.Event()
    on_scheduler: list[bool] = []

    def on_head(future: Any) -> None:  # closing never blocks: allowed in a callback
        on_scheduler.append(threading.get_ident() == _future._scheduler_ident)
        future.get().close()
        closed.set()

    with SocketServerThread(
        held_until(registered, pattern(5_000_000), closed_early=True)
    ) as server:
        with fusco_actor.start(server.url) as client:
            future = client.stream("/body", "GET", timeout=LONG_TIMEOUT)
            future.add_done_callback(on_head)
            registered.set()
            assert closed.wait(LONG_TIMEOUT)
            assert server.connections[0].closed_by_peer.wait(SHORT_TIMEOUT)
            assert client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).body
            with pytest.raises(ClientStopped):
                future.get().read()
        server.wait_done()
    assert on_scheduler == [True]
    assert len(server.connections) == 2


def test_an_abandoned_stream_is_closed_and_the_next_request_goes_on() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 1000)
        first.wait_closed_by_peer()
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            client.stream("/dropped", "GET", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
            gc.collect()  # the response is garbage: its __del__ closes it
            assert server.connections[0].closed_by_peer.wait(SHORT_TIMEOUT)
            assert client.request("/next", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).body
        server.wait_done()
    assert len(server.connections) == 2


def test_a_stream_complete_on_the_wire_but_not_yet_read_survives_the_peer_closing() -> None:
    body = b"c" * 50_000

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok(body, b"Connection: close\r\n"))
        first.close()
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = client.stream("/all", "GET", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
            assert server.connections[0].closed_by_server.wait(SHORT_TIMEOUT)
            assert resp.read() == body  # received whole before the close: served whole
            assert client.request("/next").get(timeout=LONG_TIMEOUT).body == b"ok"
        server.wait_done()
    assert len(server.connections) == 2
