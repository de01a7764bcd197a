"""Hardening against careless callers and hostile peers, over real loopback sockets.

- Memory the peer cannot size: no buffer is allocated from a size the peer
  declared; ``max_body_size`` bounds a body.
- Streamed uploads keep their declared ``Content-Length``.
- The right error class when a deadline has already passed.
- Keep-alive works above file descriptor 1023.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import fusco_actor
from tests.helpers import client_socket, descriptors_above
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    SocketServerThread,
    echo_target,
    ok,
    parse_request,
    read_request,
)

# -- keep-alive with many open files ---------------------------------------------------


def test_keep_alive_is_reused_when_the_socket_descriptor_is_above_1023() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        echo_target(server.accept())

    with SocketServerThread(handler) as server, descriptors_above(1100):
        with fusco_actor.start(server.url) as client:
            for i in range(3):
                resp = fusco_actor.request(client, f"/{i}", "GET", [], b"", SHORT_TIMEOUT)
                assert resp.body == f"/{i}".encode()
            assert client_socket(client).fileno() > 1023
        server.wait_done()
    assert len(server.connections) == 1
    assert len(server.connections[0].requests) == 3


# -- memory the peer cannot size ---------------------------------------------------------


def test_a_huge_declared_content_length_is_read_as_bytes_arrive() -> None:
    """A ``Content-Length`` of ~1 EB must not be allocated: the short body is a ProtocolError."""

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n" + b"x" * 70_000
        )
        first.close()
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            with pytest.raises(fusco_actor.ProtocolError, match="missing"):
                fusco_actor.request(client, "/huge", "GET", [], b"", LONG_TIMEOUT)
            # The client did not crash: it serves the next request.
            resp = fusco_actor.request(client, "/next", "GET", [], b"", LONG_TIMEOUT)
            assert resp.body == b"/next"
        server.wait_done()


@pytest.mark.parametrize(
    ("answer", "limit"),
    [
        pytest.param(ok(b"x" * 2000), 1000, id="content-length"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"200\r\n"
            + b"x" * 512
            + b"\r\n" * 1
            + b"200\r\n"
            + b"x" * 512
            + b"\r\n0\r\n\r\n",
            1000,
            id="chunked",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 2000, 1000, id="until-close"),
    ],
)
def test_a_body_over_max_body_size_is_a_protocol_error_and_the_connection_closes(
    answer: bytes, limit: int
) -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(answer)
        assert first.wait_closed_by_peer() == b""
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, max_body_size=limit) as client:
            with pytest.raises(fusco_actor.ProtocolError, match="max_body_size"):
                fusco_actor.request(client, "/big", "GET", [], b"", LONG_TIMEOUT)
            resp = fusco_actor.request(client, "/next", "GET", [], b"", LONG_TIMEOUT)
            assert resp.body == b"/next"
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()


def test_a_body_at_max_body_size_is_returned() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, max_body_size=5) as client:
            assert (
                fusco_actor.request(client, "/abcd", "GET", [], b"", LONG_TIMEOUT).body == b"/abcd"
            )
        server.wait_done()


@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
def test_max_body_size_must_be_a_non_negative_integer(value: Any) -> None:
    with pytest.raises(fusco_actor.BadOption, match="max_body_size"):
        fusco_actor.start("http://127.0.0.1:9", max_body_size=value)


# -- streamed uploads keep their declared length --------------------------------------------


def _gen(*parts: bytes) -> Iterator[bytes]:
    yield from parts


def test_a_longer_stream_than_its_content_length_never_reaches_the_wire() -> None:
    """Today the surplus put a whole second request on the wire: request smuggling."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        got = first.read_until_closed()
        assert b"/smuggled" not in got
        server.connections[0].requests.append(got)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            with pytest.raises(fusco_actor.BadArgument, match="Content-Length"):
                fusco_actor.request(
                    client,
                    "/upload",
                    "POST",
                    [("Content-Length", "5")],
                    _gen(b"hello", smuggled),
                    LONG_TIMEOUT,
                )
            assert client._actor.connection is None  # closed at once
        server.wait_done()
    (received,) = server.connections[0].requests
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"content-length: 5" in head.lower()
    assert len(body) < 5  # the declared body was never completed
    assert server.connections[0].closed_by_peer.is_set()


def test_a_shorter_stream_than_its_content_length_fails_at_once() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        first.read_until_closed()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            # A deadline far away: the failure must not wait for it.
            future = client.request(
                "/upload", "POST", [("Content-Length", "10")], _gen(b"hello"), 60.0
            )
            with pytest.raises(fusco_actor.BadArgument, match="Content-Length"):
                future.get(timeout=SHORT_TIMEOUT)
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()


def test_a_stream_of_exactly_its_content_length_is_sent() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        raw = read_request(conn)
        conn.sendall(ok(parse_request(raw)[2]))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = fusco_actor.request(
                client, "/u", "POST", [("Content-Length", "10")], _gen(b"hello", b"", b"world"), 5.0
            )
            assert resp.body == b"helloworld"
        server.wait_done()


# -- the right error class ---------------------------------------------------------------


def test_a_spent_deadline_before_connect_is_a_timeout_not_a_connect_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        port = listener.getsockname()[1]
        for _ in range(20):
            client = fusco_actor.start(f"http://127.0.0.1:{port}", connect_timeout=0.0)
            with client, pytest.raises(fusco_actor.ConnectTimeout):
                fusco_actor.request(client, "/", "GET", [], b"", 5.0)
    finally:
        listener.close()


def test_a_streamed_body_is_read_only_as_fast_as_the_caller_consumes_it() -> None:
    """Bounded memory: a client that stops reading makes the server's send stall."""
    declared = 1 << 30  # 1 GiB declared; far less is ever sent
    stalled = threading.Event()
    sent = [0]

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % declared)
        block = b"x" * 65_536
        poller = select.poll()
        poller.register(conn.sock, select.POLLOUT)
        while not stalled.is_set():
            try:
                sent[0] += conn.sock.send(block)
            except BlockingIOError:
                if not poller.poll(500):  # not writable for 0.5 s: the client stopped reading
                    stalled.set()
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = client.stream("/big", "GET", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
            pieces = resp.iter_bytes()
            consumed = sum(len(next(pieces)) for _ in range(3))
            assert stalled.wait(LONG_TIMEOUT)
            # What the kernel buffers on loopback (a few MiB) plus one read of the client.
            assert sent[0] - consumed < 32 * 1_048_576
            resp.close()
        server.wait_done()


def test_a_streamed_body_over_max_body_size_fails_the_stream() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        # One write: the client may close as soon as the limit is passed.
        chunks = (b"400\r\n" + b"y" * 1024 + b"\r\n") * 4
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        )
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, max_body_size=3000) as client:
            resp = client.stream("/big", "GET", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
            with pytest.raises(fusco_actor.ProtocolError, match="max_body_size"):
                resp.read()
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()
