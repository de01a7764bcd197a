"""Uploads on the loop engine: paced by the socket, bounded, ended by deadlines and cancels.

Each test runs under ``FUSCO_ACTOR_ENGINE=loop`` against a scripted loopback
server (issue 10: "uploads of files and iterables are sent as the socket
accepts them"; "a send to a peer that never reads ending at its deadline";
"a cancelled arequest freeing its client").
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import pytest

import fusco_actor
from fusco_actor._handle import ENGINE_ENV
from tests.integration.realservers import fetch
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    SocketServerThread,
    echo_target,
    ok,
    parse_request,
    read_request,
    target_of,
    wait_readable,
)

if TYPE_CHECKING:
    import ssl

    from tests.integration.realservers import UvicornServer

PIECE: Final = 65_536  # bytes per piece of the test bodies
SLACK: Final = 0.5  # seconds a deadline may be overrun by (loop timer, close, thread hop)
# uvloop's timers have millisecond resolution: a deadline may fire up to 1 ms early.
EARLY: Final = 0.005
STALL: Final = 0.5  # seconds the slow reader below stops reading: time for a greedy client
# The most bytes a generator may run ahead of what the server read: the transport's
# buffer (64 KiB + one piece), a piece pulled and one being pulled, the two kernel buffers
# (capped to 64 KiB each, which the kernel doubles) and the server's read: about 260 KiB
# measured; 64 MiB if unpaced.
AHEAD_BOUND: Final = 2**20


@pytest.fixture(autouse=True)
def _loop_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(ENGINE_ENV, "loop")
    yield


class Source:
    """A body generator that counts the bytes it produced and notes being closed."""

    def __init__(self, total: int | None = None) -> None:
        """Produce ``total`` bytes in PIECE-sized pieces (None: without end)."""
        self.total = total
        self.produced = 0
        self.closed = threading.Event()

    def pieces(self) -> Iterator[bytes]:
        """Return a one-shot generator of the body (it cannot be replayed)."""
        piece = b"u" * PIECE
        try:
            while self.total is None or self.produced < self.total:
                self.produced += PIECE
                yield piece
        finally:
            self.closed.set()


def small_buffers() -> dict[str, Any]:
    """Client options capping the kernel's send buffer, so the transport's pacing shows."""
    return {"connect_options": {"sockopts": [(socket.SOL_SOCKET, socket.SO_SNDBUF, 65_536)]}}


def test_an_upload_to_a_peer_that_never_reads_ends_at_its_deadline() -> None:
    source = Source()
    failed = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        stalled = server.accept()
        stalled.read_until(b"\r\n\r\n")  # then reads nothing, whatever comes
        assert failed.wait(LONG_TIMEOUT)
        stalled.read_until_closed()  # the client closed it at the deadline
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, **small_buffers()) as client:
            started = time.monotonic()
            with pytest.raises(fusco_actor.RequestTimeout):
                fusco_actor.request(client, "/up", "POST", [], source.pieces(), 1.0)
            took = time.monotonic() - started
            failed.set()
            assert 1.0 - EARLY <= took < 1.0 + SLACK, took
            assert source.closed.wait(SHORT_TIMEOUT)  # the stream is closed, not pulled on
            after = fusco_actor.request(client, "/after", "GET", [], b"", LONG_TIMEOUT)
            assert after.body == b"/after"  # the client stays usable: a new connection
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()
    assert len(server.connections) == 2


def test_a_64_mib_generator_upload_is_pulled_only_as_the_peer_reads() -> None:
    total = 64 * 2**20
    source = Source(total)
    ahead: list[int] = []  # bytes produced beyond those received, at each read

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        sock = conn.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65_536)
        data = b""
        while b"\r\n\r\n" not in data:
            assert wait_readable(sock, LONG_TIMEOUT)
            data += sock.recv(65_536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"content-length: %d" % total in head.lower()
        received = len(rest)
        time.sleep(STALL)  # a reader that stalls: a greedy client would race ahead now
        buffer = bytearray(256 * 1024)
        while received < total:
            assert wait_readable(sock, LONG_TIMEOUT)
            got = sock.recv_into(buffer)
            assert got, "the client closed mid-body"
            received += got
            ahead.append(source.produced - received)
        conn.sendall(ok(b"%d" % received))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, **small_buffers()) as client:
            headers = [("Content-Length", str(total))]
            resp = fusco_actor.request(client, "/big", "PUT", headers, source.pieces(), 30.0)
            assert resp.body == b"%d" % total
        server.wait_done()
    assert source.closed.is_set()
    assert ahead, "the server read nothing"
    assert max(ahead) <= AHEAD_BOUND, f"the generator ran {max(ahead)} bytes ahead"


def test_cancelling_an_arequest_mid_upload_closes_its_connection_and_frees_the_client() -> None:
    source = Source()
    some_body = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        uploading = server.accept()
        uploading.read_until(b"\r\n\r\n")
        uploading.read_exactly(4 * PIECE)
        some_body.set()
        uploading.read_until_closed()  # reads on: only the cancel ends this body
        echo_target(server.accept())

    async def scenario(client: fusco_actor.Client) -> bytes:
        upload = asyncio.ensure_future(
            client.arequest("/up", "POST", body=source.pieces(), timeout=LONG_TIMEOUT)
        )
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, some_body.wait, LONG_TIMEOUT)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload
        resp = await asyncio.wait_for(client.arequest("/next", "GET"), LONG_TIMEOUT)
        return resp.body

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert asyncio.run(scenario(client)) == b"/next"
            assert source.closed.wait(SHORT_TIMEOUT)
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()
    assert len(server.connections) == 2


def test_a_streamed_upload_is_never_pipelined_with_other_requests() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        first = [target_of(read_request(conn)) for _ in range(2)]
        assert first == [b"/a", b"/b"]
        assert not conn.readable(0.3), "the upload was written behind requests in flight"
        conn.sendall(ok(b"a") + ok(b"b"))
        line, fields, body = parse_request(read_request(conn))
        assert (line, fields["transfer-encoding"]) == (b"PUT /s HTTP/1.1", b"chunked")
        assert body == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"
        assert not conn.readable(0.3), "a request was written behind the upload"
        conn.sendall(ok(b"s"))
        assert target_of(read_request(conn)) == b"/c"
        conn.sendall(ok(b"c"))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, pipeline=8) as client:
            futures = [
                client.request("/a", timeout=LONG_TIMEOUT),
                client.request("/b", timeout=LONG_TIMEOUT),
                client.request("/s", "PUT", body=iter([b"one", b"two"]), timeout=LONG_TIMEOUT),
                client.request("/c", timeout=LONG_TIMEOUT),
            ]
            assert [f.get(timeout=LONG_TIMEOUT).body for f in futures] == [b"a", b"b", b"s", b"c"]
        server.wait_done()
    assert len(server.connections) == 1


def test_a_consumed_generator_is_never_sent_again_even_when_idempotent() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(ok())
        read_request(conn)  # the upload, whole; then a close with no byte of response
        conn.close()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, send_retry=2) as client:
            assert fusco_actor.request(client, "/warm", "GET", [], b"", LONG_TIMEOUT).body == b"ok"
            with pytest.raises(fusco_actor.ConnectionClosed):
                # PUT on a reused connection: the stale keep-alive case that re-sends,
                # except that a one-shot generator cannot be replayed.
                fusco_actor.request(client, "/s", "PUT", [], iter([b"once"]), LONG_TIMEOUT)
        server.wait_done()
    assert len(server.connections) == 1  # no second connection: never sent again


def test_expect_100_continue_without_an_answer_sends_the_body_after_one_second() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        conn.read_until(b"\r\n\r\n")
        waited = time.monotonic()
        assert conn.read_exactly(9) == b"4\r\nbody\r\n"  # no 100 ever: the client goes on
        gap = time.monotonic() - waited
        assert 0.8 <= gap < 1.0 + SLACK, gap
        assert conn.read_exactly(5) == b"0\r\n\r\n"
        conn.sendall(ok(b"stored"))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            headers = [("Expect", "100-continue")]
            body = iter([b"body"])
            resp = fusco_actor.request(client, "/up", "POST", headers, body, LONG_TIMEOUT)
            assert resp.body == b"stored"
        server.wait_done()


@pytest.mark.integration
def test_generator_and_file_uploads_over_tls_are_echoed_by_uvicorn(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    data = bytes(range(256)) * (8 * 2**20 // 256)
    source = (data[i : i + PIECE] for i in range(0, len(data), PIECE))
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        with fusco_actor.start(tls_server.url, ssl_context=trusting_context) as client:
            chunked = fetch(client, "/chunked", "POST", body=source)
            from_file = fetch(client, "/chunked", "PUT", body=f)
    assert chunked.body == data
    assert from_file.body == data


def test_a_disconnect_timeout_aborts_an_upload_to_a_peer_that_never_reads() -> None:
    source = Source()
    some_body, stopped = threading.Event(), threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        stalled = server.accept()
        stalled.read_until(b"\r\n\r\n")
        stalled.read_exactly(2 * PIECE)
        some_body.set()  # then reads nothing
        assert stopped.wait(LONG_TIMEOUT)
        stalled.read_until_closed()

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url, **small_buffers())
        upload = client.request("/up", "POST", body=source.pieces(), timeout=60.0)
        assert some_body.wait(LONG_TIMEOUT)
        started = time.monotonic()
        client.disconnect(timeout=0.5)
        took = time.monotonic() - started
        stopped.set()
        assert took < 0.5 + SLACK, took
        with pytest.raises(fusco_actor.ClientStopped):
            upload.get(timeout=SHORT_TIMEOUT)
        assert source.closed.wait(SHORT_TIMEOUT)
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_an_answer_right_after_the_last_byte_of_an_upload_keeps_the_connection(
    framing: str,
) -> None:
    """The body is whole once its last byte is written, not when the stream's end is pulled."""
    rounds = 30

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        for _ in range(rounds):
            read_request(conn)
            conn.sendall(ok())  # at once: the answer may beat the client's next pull
        conn.wait_closed_by_peer()

    headers = [("Content-Length", "8")] if framing == "content-length" else []
    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            for _ in range(rounds):
                body = iter([b"four", b"more"])
                resp = fusco_actor.request(client, "/u", "POST", headers, body, LONG_TIMEOUT)
                assert resp.body == b"ok"
        server.wait_done()
    assert len(server.connections) == 1  # every answer left the connection in step


@pytest.mark.parametrize("how", ["request", "stream"])
def test_an_answer_before_the_body_ends_closes_the_connection(how: str) -> None:
    """The server waits for the rest of the body: the connection cannot carry another request."""
    source = Source()

    def handler(listener: Any, server: SocketServerThread) -> None:
        early = server.accept()
        early.read_until(b"\r\n\r\n")
        early.read_exactly(PIECE)
        early.sendall(ok(b"early"))  # answered mid-body, without reading the rest
        early.read_until_closed()
        echo_target(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            if how == "request":
                resp = fusco_actor.request(client, "/up", "POST", [], source.pieces(), 5.0)
                assert resp.body == b"early"
            else:
                future = client.stream("/up", "POST", body=source.pieces(), timeout=5.0)
                with future.get(timeout=LONG_TIMEOUT) as streamed:
                    assert streamed.read() == b"early"
            assert source.closed.wait(SHORT_TIMEOUT)  # no longer pulled
            after = fusco_actor.request(client, "/after", "GET", [], b"", LONG_TIMEOUT)
            assert after.body == b"/after"
        server.wait_done()
    assert server.connections[0].closed_by_peer.is_set()
    assert len(server.connections) == 2


def test_reader_threads_end_once_uploads_are_done() -> None:
    def readers() -> int:
        return sum(t.name == "fusco-upload-reader" for t in threading.enumerate())

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(ok())
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            body = Source(4 * PIECE).pieces()
            response = fusco_actor.request(client, "/up", "POST", [], body, LONG_TIMEOUT)
            assert response.body == b"ok"
            assert readers() >= 1  # the pull ran on a reader thread
        server.wait_done()
    for thread in threading.enumerate():
        if thread.name == "fusco-upload-reader":
            thread.join(LONG_TIMEOUT)  # it ends after READER_IDLE seconds without work
    assert readers() == 0, "an idle upload reader thread was left running"
