"""Streaming downloads (``Client.stream``) and uploads (file objects, generators).

Against the embedded server for the plain cases, and scripted loopback servers
where the test needs to see the wire (who closed, how many connections) or a
fault (a truncated body, a stalled body).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

import fusco_actor
from fusco_actor import (
    ClientStopped,
    FuscoError,
    ProtocolError,
    RequestTimeout,
    StreamingResponse,
    Supervisor,
)
from fusco_actor._server import EmbeddedServer
from fusco_actor.testing import inject_crash
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    IncompleteRequest,
    ServerConnection,
    SocketServerThread,
    ok,
    parse_request,
    read_request,
)

MAX_PIECE = 256 * 1024  # bytes: the most one streamed piece may hold


def pattern(n: int) -> bytes:
    """Return the embedded server's ``/bytes/N`` body."""
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


def serve_forever(conn: ServerConnection) -> None:
    """Answer every request on ``conn`` with ``ok`` until the peer closes."""
    while True:
        try:
            read_request(conn)
        except IncompleteRequest as exc:
            assert exc.partial == b""
            return
        conn.sendall(ok())


def open_stream(client: fusco_actor.Client, path: str, **kwargs: Any) -> StreamingResponse:
    """Start streaming ``path``; a hang fails the test."""
    try:
        return client.stream(path, **kwargs).get(timeout=LONG_TIMEOUT)
    except pykka.Timeout:
        pytest.fail("the stream's head never came")


def consume_in_thread(pieces: Iterator[bytes]) -> dict[str, Any]:
    """Read ``pieces`` to the end in a thread (so a hang stays bounded); return the outcome."""
    result: dict[str, Any] = {"pieces": 0}

    def run() -> None:
        try:
            for _ in pieces:
                result["pieces"] += 1
        except FuscoError as exc:
            result["error"] = exc

    result["thread"] = thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return result


# -- downloads ----------------------------------------------------------------------


def test_iter_bytes_yields_bounded_pieces(embedded_server: EmbeddedServer) -> None:
    n = 5_000_000
    with (
        fusco_actor.start(embedded_server.url) as client,
        open_stream(client, f"/bytes/{n}", timeout=LONG_TIMEOUT) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["content-length"] == str(n)
        sizes = []
        digest = bytearray()
        for piece in resp.iter_bytes():
            sizes.append(len(piece))
            if len(digest) < 4096:
                digest += piece[:4096]
        assert len(resp.trailers) == 0
    assert sum(sizes) == n
    assert len(sizes) > 5
    assert max(sizes) <= MAX_PIECE
    assert bytes(digest[:4096]) == pattern(4096)


def test_read_returns_the_whole_body(embedded_server: EmbeddedServer) -> None:
    with fusco_actor.start(embedded_server.url) as client:
        resp = open_stream(client, "/bytes/300000")
        assert resp.read() == pattern(300_000)
        # Once consumed, a second read is refused rather than silently empty.
        with pytest.raises(ClientStopped):
            resp.read()


def test_chunked_body_exposes_trailers(embedded_server: EmbeddedServer) -> None:
    with (
        fusco_actor.start(embedded_server.url) as client,
        open_stream(client, "/chunked/100000") as resp,
    ):
        assert resp.headers["transfer-encoding"] == "chunked"
        assert resp.read() == pattern(100_000)
        assert resp.trailers["X-Trailer"] == "done"
        assert list(resp.trailers) == [("x-trailer", "done")]


def test_reading_to_the_end_keeps_the_connection_alive(embedded_server: EmbeddedServer) -> None:
    with fusco_actor.start(embedded_server.url) as client:
        resp = open_stream(client, "/bytes/1000000")
        connection = client._actor.connection
        assert connection is not None
        assert len(resp.read()) == 1_000_000
        after = client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
        assert after.status == 200
        assert client._actor.connection is connection
        assert connection.requests_done == 2


def test_reading_to_the_end_keeps_the_connection_alive_on_the_wire() -> None:
    body = b"x" * 100_000

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(ok(body))
        serve_forever(conn)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert open_stream(client, "/big").read() == body
            assert client.request("/next").get(timeout=LONG_TIMEOUT).body == b"ok"
        server.wait_done()
    assert len(server.connections) == 1
    assert server.connections[0].closed_by_peer.is_set()


def test_closing_early_closes_the_connection() -> None:
    announced = 10_000_000

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % announced)
        first.sendall(b"y" * 20_000)  # far less than announced: the rest never comes
        first.wait_closed_by_peer()
        second = server.accept()
        serve_forever(second)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            with open_stream(client, "/big", timeout=LONG_TIMEOUT) as resp:
                piece = next(iter(resp.iter_bytes()))
                assert piece and set(piece) == {ord("y")}
            # Closed early: the client drops the half-read connection...
            assert server.connections[0].closed_by_peer.wait(SHORT_TIMEOUT)
            # ...and the next request goes on a new one.
            after = client.request("/next", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
            assert after.body == b"ok"
        server.wait_done()
    assert len(server.connections) == 2
    assert not server.connections[0].closed_by_server.is_set()


def test_requests_queued_behind_a_stream_wait_for_it(embedded_server: EmbeddedServer) -> None:
    with fusco_actor.start(embedded_server.url) as client:
        resp = open_stream(client, "/bytes/2000000", timeout=LONG_TIMEOUT)
        first = next(iter(resp.iter_bytes()))
        behind = client.request("/", timeout=LONG_TIMEOUT)
        with pytest.raises(pykka.Timeout):
            behind.get(timeout=0.3)  # the stream holds the connection
        assert not behind.done  # still waiting as the rest of the stream is read
        rest = resp.read()
        assert behind.get(timeout=LONG_TIMEOUT).status == 200
    assert len(first) + len(rest) == 2_000_000


def test_request_queued_behind_a_stream_is_not_sent_while_it_is_open() -> None:
    queued = threading.Event()
    quiet_while_open: list[bool] = []

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n" + b"a" * 10_000)
        assert queued.wait(LONG_TIMEOUT)
        quiet_while_open.append(not conn.readable(0.3))  # nothing written behind the stream
        conn.sendall(b"b" * 10_000)
        serve_forever(conn)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = open_stream(client, "/stream", timeout=LONG_TIMEOUT)
            pieces = resp.iter_bytes()
            got = bytearray(next(pieces))
            behind = client.request("/behind", timeout=LONG_TIMEOUT)
            queued.set()
            for piece in pieces:
                got += piece
            assert behind.get(timeout=LONG_TIMEOUT).body == b"ok"
        server.wait_done()
    assert got == b"a" * 10_000 + b"b" * 10_000
    assert quiet_while_open == [True]
    assert [parse_request(r)[0] for r in server.connections[0].requests] == [
        b"GET /stream HTTP/1.1",
        b"GET /behind HTTP/1.1",
    ]
    assert len(server.connections) == 1


def test_request_queued_behind_a_stream_closed_early_goes_on_a_new_connection(
    embedded_server: EmbeddedServer,
) -> None:
    with fusco_actor.start(embedded_server.url) as client:
        resp = open_stream(client, "/bytes/5000000", timeout=LONG_TIMEOUT)
        connection = client._actor.connection
        next(iter(resp.iter_bytes()))
        behind = client.request("/", timeout=LONG_TIMEOUT)
        resp.close()
        assert behind.get(timeout=LONG_TIMEOUT).body == b"Hello, fusco!\n"
        assert client._actor.connection is not connection


def test_truncated_streamed_body_is_a_protocol_error() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 5000)
        first.close()
        second = server.accept()
        serve_forever(second)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = open_stream(client, "/cut", timeout=LONG_TIMEOUT)
            got = bytearray()
            with pytest.raises(ProtocolError):
                for piece in resp.iter_bytes():
                    got += piece
            assert got == b"z" * 5000
            # The client stays usable, on a new connection.
            assert client.request("/next").get(timeout=LONG_TIMEOUT).body == b"ok"
        server.wait_done()
    assert len(server.connections) == 2


def test_stream_timeout_while_the_consumer_is_slow() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"s" * 1000)
        first.wait_closed_by_peer()  # the client gives up at the deadline
        second = server.accept()
        serve_forever(second)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = open_stream(client, "/slow", timeout=0.5)
            pieces = resp.iter_bytes()
            assert next(pieces) == b"s" * 1000
            # The consumer dawdles past the deadline; the client closes the connection.
            assert server.connections[0].closed_by_peer.wait(SHORT_TIMEOUT)
            with pytest.raises(RequestTimeout):
                next(pieces)
            assert client.request("/next").get(timeout=LONG_TIMEOUT).body == b"ok"
        server.wait_done()
    assert len(server.connections) == 2


# -- uploads ------------------------------------------------------------------------


def test_file_object_upload(embedded_server: EmbeddedServer) -> None:
    data = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        with (
            fusco_actor.start(embedded_server.url) as client,
            open_stream(client, "/echo", method="POST", body=f, timeout=LONG_TIMEOUT) as resp,
        ):
            assert resp.status == 200
            assert int(resp.headers["content-length"]) == len(data)
            assert resp.read() == data


def test_file_object_upload_is_sent_with_content_length() -> None:
    data = b"f" * 3_000_000
    seen: dict[str, Any] = {}

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        raw = read_request(conn)
        seen["line"], seen["headers"], seen["body"] = parse_request(raw)
        conn.sendall(ok())
        conn.wait_closed_by_peer()

    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        with SocketServerThread(handler) as server:
            with fusco_actor.start(server.url) as client:
                resp = client.request("/up", "PUT", body=f, timeout=LONG_TIMEOUT)
                assert resp.get(timeout=LONG_TIMEOUT).body == b"ok"
            server.wait_done()
    assert seen["line"] == b"PUT /up HTTP/1.1"
    assert seen["headers"]["content-length"] == b"3000000"
    assert "transfer-encoding" not in seen["headers"]
    assert seen["body"] == data


def generate(total: int, piece: int) -> Iterator[bytes]:
    """Yield ``total`` bytes in pieces of ``piece`` bytes (a body never held whole)."""
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        yield b"%d" % (sent % 10) * n
        sent += n


def test_generator_upload_to_echo(embedded_server: EmbeddedServer) -> None:
    total = 1_000_000
    expected = b"".join(generate(total, 70_000))
    with fusco_actor.start(embedded_server.url) as client:
        stream = client.stream("/echo", "POST", body=generate(total, 70_000), timeout=LONG_TIMEOUT)
        with stream.get(timeout=LONG_TIMEOUT) as resp:
            assert resp.read() == expected


def test_generator_upload_is_chunk_framed_on_the_wire() -> None:
    seen: dict[str, Any] = {}

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        raw = read_request(conn)
        seen["line"], seen["headers"], seen["rest"] = parse_request(raw)
        conn.sendall(ok())
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            body = (piece for piece in (b"hello", b"", b" wor", b"ld"))
            resp = client.request("/up", "POST", body=body, timeout=LONG_TIMEOUT)
            assert resp.get(timeout=LONG_TIMEOUT).body == b"ok"
        server.wait_done()
    assert seen["line"] == b"POST /up HTTP/1.1"
    assert seen["headers"]["transfer-encoding"] == b"chunked"
    assert "content-length" not in seen["headers"]
    # An empty piece is skipped: it would be the last-chunk marker.
    assert seen["rest"] == b"5\r\nhello\r\n4\r\n wor\r\n2\r\nld\r\n0\r\n\r\n"


# -- crashes ------------------------------------------------------------------------


def test_crash_mid_stream_fails_the_consumer_instead_of_hanging(
    embedded_server: EmbeddedServer,
) -> None:
    sup = Supervisor.start(max_restarts=5, max_seconds=10.0)
    try:
        client = sup.start_client(embedded_server.url)
        resp = open_stream(client, "/bytes/5000000", timeout=LONG_TIMEOUT)
        pieces = resp.iter_bytes()
        assert next(pieces)
        inject_crash(client)  # the incarnation raises at its next step, mid-body
        result = consume_in_thread(pieces)
        result["thread"].join(SHORT_TIMEOUT)
        assert not result["thread"].is_alive(), "the consumer hung after the crash"
        assert isinstance(result.get("error"), FuscoError), result
        # The handle keeps working on the restarted incarnation.
        after = client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
        assert after.status == 200
        assert sup.restarts(client) == 1
    finally:
        sup.stop(LONG_TIMEOUT)
