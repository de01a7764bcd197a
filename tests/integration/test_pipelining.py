"""HTTP/1.1 pipelining (option ``pipeline``) against scripted loopback servers.

Each server script reads requests as they come and, before every answer,
drains whatever else has arrived within a short quiet window, so it can tell
how many requests were on the wire unanswered at that moment. A client that
pipelines can only make that count bigger (it writes ahead), never a server
that reads late, so ``<= pipeline`` is a sound upper bound and ``== pipeline``
proves that pipelining happened.

Requests are queued behind a *gate*: a first request the server holds until
the test has put every further request into the client's inbox, so that the
client sees them all queued at once (deterministically, without a sleep).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import fusco_actor
from fusco_actor import ConnectionClosed, RequestTimeout
from fusco_actor._server import EmbeddedServer
from tests.helpers import outcome
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    ServerConnection,
    SocketServerThread,
    ok,
    parse_request,
    read_request,
    target_of,
)

QUIET = 0.15  # seconds without a byte after which the server takes the pipe as drained


def line_of(raw: bytes) -> bytes:
    """Return ``METHOD target`` of a raw request."""
    return parse_request(raw)[0].rsplit(b" ", 1)[0]


def drain(conn: ServerConnection, pending: deque[bytes]) -> None:
    """Read every whole request that arrives until the pipe stays quiet for ``QUIET`` s."""
    while conn.readable(QUIET):
        pending.append(read_request(conn, SHORT_TIMEOUT))


class Gate:
    """A first request the server holds until the test has queued the rest."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.released = threading.Event()

    def serve(self, conn: ServerConnection) -> None:
        """Server side: read ``/gate``, wait for the release, answer it."""
        assert target_of(read_request(conn)) == b"/gate"
        self.arrived.set()
        assert self.released.wait(LONG_TIMEOUT), "the test never released the gate"
        conn.sendall(ok(b"/gate"))

    def queue(self, client: fusco_actor.Client, *requests: Any) -> list[Any]:
        """Client side: send the gate, then queue ``requests`` behind it; return their futures.

        Each request is a path, or a tuple of ``Client.request`` arguments.
        """
        gate = client.request("/gate", timeout=LONG_TIMEOUT)
        assert self.arrived.wait(SHORT_TIMEOUT), "the gate request never reached the server"
        futures = []
        for r in requests:
            path, method, headers, body = r if isinstance(r, tuple) else (r, "GET", (), b"")
            futures.append(client.request(path, method, headers, body, timeout=LONG_TIMEOUT))
        self.released.set()
        assert outcome(gate).body == b"/gate"
        return futures


def test_requests_are_written_ahead_and_answers_matched_in_order() -> None:
    gate = Gate()
    paths = [f"/p{i}" for i in range(4)]

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        gate.serve(conn)
        # All four arrive before the first is answered: the client pipelines.
        got = [read_request(conn, SHORT_TIMEOUT) for _ in paths]
        for raw in got:
            conn.sendall(ok(target_of(raw)))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4) as client:
            futures = gate.queue(client, *paths)
            bodies = [outcome(f).body for f in futures]
        server.wait_done()
    assert bodies == [p.encode() for p in paths]
    assert [target_of(r) for r in server.connections[0].requests] == [
        b"/gate",
        *(p.encode() for p in paths),
    ]
    # On the wire: every request was received before the first pipelined answer went out.
    transcript = server.connections[0].transcript
    sends = [i for i, (kind, _) in enumerate(transcript) if kind == "send"]
    received_before = b"".join(d for kind, d in transcript[: sends[1]] if kind == "recv")
    assert all(b"GET %s HTTP/1.1" % p.encode() in received_before for p in paths)
    assert len(server.connections) == 1


def test_never_more_than_pipeline_requests_outstanding() -> None:
    gate = Gate()
    n, pipeline = 12, 4
    outstanding: list[int] = []

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        gate.serve(conn)
        pending: deque[bytes] = deque()
        for _ in range(n):
            if not pending:
                pending.append(read_request(conn, SHORT_TIMEOUT))
            drain(conn, pending)
            outstanding.append(len(pending))
            conn.sendall(ok(target_of(pending.popleft())))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=pipeline) as client:
            futures = gate.queue(client, *(f"/{i}" for i in range(n)))
            bodies = [outcome(f).body for f in futures]
        server.wait_done()
    assert bodies == [f"/{i}".encode() for i in range(n)]
    assert max(outstanding) == pipeline, outstanding
    assert len(server.connections) == 1


def test_post_waits_for_an_empty_pipe_and_goes_alone() -> None:
    gate = Gate()
    log: list[tuple[bytes, tuple[bytes, ...]]] = []  # (answered, what was unanswered then)

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        gate.serve(conn)
        pending: deque[bytes] = deque()
        for _ in range(5):
            if not pending:
                pending.append(read_request(conn, SHORT_TIMEOUT))
            drain(conn, pending)
            log.append((line_of(pending[0]), tuple(line_of(r) for r in pending)))
            raw = pending.popleft()
            conn.sendall(ok(parse_request(raw)[2] or target_of(raw)))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4) as client:
            futures = gate.queue(client, "/a", "/b", ("/c", "POST", (), b"post-body"), "/d", "/e")
            bodies = [outcome(f).body for f in futures]
        server.wait_done()
    assert bodies == [b"/a", b"/b", b"post-body", b"/d", b"/e"]
    assert log == [
        (b"GET /a", (b"GET /a", b"GET /b")),  # the POST is held back while the pipe is busy
        (b"GET /b", (b"GET /b",)),
        (b"POST /c", (b"POST /c",)),  # alone: nothing follows it until it was answered
        (b"GET /d", (b"GET /d", b"GET /e")),
        (b"GET /e", (b"GET /e",)),
    ]
    assert server.connections[0].received.count(b"POST ") == 1


def test_mixed_get_and_post_all_correct_and_post_sent_once_alone() -> None:
    gate = Gate()
    log: list[tuple[bytes, ...]] = []  # what was unanswered at each answer

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        gate.serve(conn)
        pending: deque[bytes] = deque()
        for _ in range(4):
            if not pending:
                pending.append(read_request(conn, SHORT_TIMEOUT))
            drain(conn, pending)
            log.append(tuple(line_of(r) for r in pending))
            raw = pending.popleft()
            body = parse_request(raw)[2]
            conn.sendall(ok(b"echo:" + body if body else target_of(raw)))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4) as client:
            futures = gate.queue(client, "/g1", "/g2", ("/p", "POST", (), b"xyz"), "/g3")
            responses = [outcome(f) for f in futures]
        server.wait_done()
    assert [r.body for r in responses] == [b"/g1", b"/g2", b"echo:xyz", b"/g3"]
    assert all(r.status == 200 for r in responses)
    received = bytes(server.connections[0].received)
    assert received.count(b"POST /p HTTP/1.1") == 1
    assert [entry for entry in log if b"POST /p" in entry] == [(b"POST /p",)]
    assert len(server.connections) == 1


def _answer_two_then(conn: ServerConnection, second_extra: bytes) -> list[bytes]:
    """Read four pipelined requests, answer two (the 2nd with ``second_extra``), close."""
    got = [read_request(conn, SHORT_TIMEOUT) for _ in range(4)]
    conn.sendall(ok(target_of(got[0])))
    conn.sendall(ok(target_of(got[1]), second_extra))
    conn.close()
    return got


def test_mid_pipe_close_resends_the_unanswered_gets_on_a_new_connection() -> None:
    gate = Gate()

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        gate.serve(first)
        _answer_two_then(first, b"")  # closes without Connection: close
        second = server.accept()
        for _ in range(2):
            second.sendall(ok(target_of(read_request(second, SHORT_TIMEOUT))))
        second.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4, send_retry=1) as client:
            futures = gate.queue(client, "/1", "/2", "/3", "/4")
            results = [outcome(f) for f in futures]
        server.wait_done()
    assert [r.body for r in results] == [b"/1", b"/2", b"/3", b"/4"]
    assert len(server.connections) == 2
    assert [target_of(r) for r in server.connections[1].requests] == [b"/3", b"/4"]
    assert server.connections[0].closed_by_server.is_set()


def test_mid_pipe_close_with_send_retry_0_fails_the_unanswered_gets() -> None:
    gate = Gate()

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        gate.serve(first)
        _answer_two_then(first, b"")

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4, send_retry=0) as client:
            futures = gate.queue(client, "/1", "/2", "/3", "/4")
            results = [outcome(f) for f in futures]
        server.wait_done()
    assert [r.body for r in results[:2]] == [b"/1", b"/2"]
    assert all(isinstance(r, ConnectionClosed) for r in results[2:]), results
    assert len(server.connections) == 1  # nothing re-sent (no other connection, not even queued)


def test_connection_close_mid_pipe_resends_the_rest_even_with_send_retry_0() -> None:
    gate = Gate()

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        gate.serve(first)
        _answer_two_then(first, b"Connection: close\r\n")
        second = server.accept()
        for _ in range(2):
            second.sendall(ok(target_of(read_request(second, SHORT_TIMEOUT))))
        second.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4, send_retry=0) as client:
            futures = gate.queue(client, "/1", "/2", "/3", "/4")
            results = [outcome(f) for f in futures]
        server.wait_done()
    # RFC 9112 §9.6: the server processed none of the requests after the "close" one.
    assert [r.body for r in results] == [b"/1", b"/2", b"/3", b"/4"]
    assert len(server.connections) == 2
    assert [target_of(r) for r in server.connections[1].requests] == [b"/3", b"/4"]


def test_request_timeout_inside_the_pipe_closes_and_resends_the_rest() -> None:
    gate = Gate()
    short = 0.5

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        gate.serve(first)
        got = [read_request(first, SHORT_TIMEOUT) for _ in range(4)]
        first.sendall(ok(target_of(got[0])))
        first.wait_closed_by_peer(SHORT_TIMEOUT)  # /2 is never answered: the client gives up
        second = server.accept()
        for _ in range(2):
            second.sendall(ok(target_of(read_request(second, SHORT_TIMEOUT))))
        second.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4, send_retry=1) as client:
            gate_future = client.request("/gate", timeout=LONG_TIMEOUT)
            assert gate.arrived.wait(SHORT_TIMEOUT)
            started = time.monotonic()
            futures = [
                client.request("/1", timeout=LONG_TIMEOUT),
                client.request("/2", timeout=short),
                client.request("/3", timeout=LONG_TIMEOUT),
                client.request("/4", timeout=LONG_TIMEOUT),
            ]
            gate.released.set()
            assert outcome(gate_future).status == 200
            timed_out = outcome(futures[1])
            took = time.monotonic() - started
            results = [outcome(f) for f in futures]
        server.wait_done()
    assert isinstance(timed_out, RequestTimeout)
    assert short <= took < short + 1.0
    assert results[0].body == b"/1"
    assert [r.body for r in results[2:]] == [b"/3", b"/4"]
    assert server.connections[0].closed_by_peer.is_set()
    assert [target_of(r) for r in server.connections[1].requests] == [b"/3", b"/4"]
    assert len(server.connections) == 2


def test_pipeline_16_against_the_embedded_server(embedded_server: EmbeddedServer) -> None:
    sizes = [(i * 97) % 5000 for i in range(2000)]
    pattern = b"0123456789abcdef" * (max(sizes) // 16 + 1)
    with fusco_actor.start(embedded_server.url, pipeline=16) as client:
        futures = [client.request(f"/bytes/{n}", timeout=LONG_TIMEOUT) for n in sizes]
        responses = [outcome(f) for f in futures]
        connection = client._actor.connection
    assert all(r.status == 200 for r in responses), {type(r) for r in responses}
    assert [r.body for r in responses] == [pattern[:n] for n in sizes]
    assert connection is not None  # one keep-alive connection served them all
    assert connection.requests_done == len(sizes)
