"""No response desync: bytes left over after a response never answer a later request.

A careless or hostile server may write more than the response it owes: a body
on a HEAD, 204 or 304 answer, a body longer than its Content-Length, a second
response to one request, or a response pushed onto an idle keep-alive
connection. Whatever it is, the connection is closed and not reused; the next
request goes out on a fresh connection and gets its own response.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

import fusco_actor
from tests.socketserver import (
    SHORT_TIMEOUT,
    SocketServerThread,
    echo_target,
    ok,
    parse_request,
    read_request,
)

STALE = ok(b"stale")


@pytest.mark.parametrize(
    ("method", "answer"),
    [
        pytest.param("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale", id="head-body"),
        pytest.param(
            "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nstale", id="204-body"
        ),
        pytest.param(
            "GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nstale", id="304-body"
        ),
        pytest.param("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokstale", id="long-body"),
        pytest.param("GET", ok(b"/first") + STALE, id="two-responses"),
        pytest.param("GET", ok(b"/first") + b"\r\n" + STALE, id="two-responses-crlf"),
    ],
)
def test_bytes_after_a_complete_response_close_the_connection(method: str, answer: bytes) -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(answer)
        assert first.wait_closed_by_peer() == b""  # the client dropped it, sending nothing more
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            first = fusco_actor.request(client, "/first", method, [], b"", SHORT_TIMEOUT)
            assert first.status in (200, 204, 304)
            second = fusco_actor.request(client, "/second", "GET", [], b"", SHORT_TIMEOUT)
            assert second.body == b"/second"
            third = fusco_actor.request(client, "/third", "GET", [], b"", SHORT_TIMEOUT)
            assert third.body == b"/third"  # the fresh connection is in step
        server.wait_done()
    assert len(server.connections) == 2
    assert server.connections[0].closed_by_peer.is_set()
    assert not server.connections[0].closed_by_server.is_set()


def test_a_response_pushed_onto_an_idle_connection_is_never_taken_as_the_next_answer() -> None:
    pushed = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok(b"/first"))
        assert first.readable(SHORT_TIMEOUT) is False  # the client is idle
        first.sendall(STALE)
        pushed.set()
        assert first.wait_closed_by_peer() == b""
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert fusco_actor.request(client, "/first", "GET", [], b"", 5.0).body == b"/first"
            assert pushed.wait(5.0)
            second = fusco_actor.request(client, "/second", "GET", [], b"", 5.0)
            assert second.body == b"/second"
        server.wait_done()
    assert len(server.connections) == 2


def test_with_pipelining_bytes_beyond_the_expected_responses_close_the_connection() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        targets = [parse_request(read_request(first))[0].split(b" ")[1] for _ in range(2)]
        first.sendall(b"".join(ok(t) for t in targets) + STALE)
        assert first.wait_closed_by_peer() == b""
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=4) as client:
            futures = [client.request(f"/{i}", "GET", timeout=5.0) for i in range(2)]
            assert [f.get(timeout=5.0).body for f in futures] == [b"/0", b"/1"]
            third = client.request("/third", "GET", timeout=5.0).get(timeout=5.0)
            assert third.body == b"/third"
        server.wait_done()
    assert len(server.connections) == 2


def test_a_streamed_response_followed_by_stray_bytes_closes_the_connection() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok(b"/first") + STALE)
        assert first.wait_closed_by_peer() == b""
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            with client.stream("/first", "GET", timeout=5.0).get(timeout=5.0) as resp:
                assert resp.read() == b"/first"
            second = fusco_actor.request(client, "/second", "GET", [], b"", 5.0)
            assert second.body == b"/second"
        server.wait_done()
    assert len(server.connections) == 2
