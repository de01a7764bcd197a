"""The client against scripted loopback servers: keep-alive, framing, timeouts, retries, wire bytes.

Each test scripts the server side as a handler running in a
:class:`~tests.socketserver.SocketServerThread` and asserts on the bytes the
server read and on which side closed each connection.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

import fusco_actor
from fusco_actor.messages import Request
from tests.helpers import wait_for
from tests.socketserver import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    IncompleteRequest,
    ServerConnection,
    SocketServerThread,
    has_ipv6,
    ok,
    parse_request,
    read_request,
    refused_port,
    stalled_listener,
    target_of,
)

HTTP10_OK = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"


def serve_forever(conn: ServerConnection, respond: Any = None) -> None:
    """Answer every request on ``conn`` until the peer closes."""
    while True:
        try:
            raw = read_request(conn)
        except IncompleteRequest as exc:
            assert exc.partial == b"", f"peer closed mid-request: {exc.partial!r}"
            return
        conn.sendall(respond(raw) if respond else ok())


def get(client: fusco_actor.Client, path: str = "/", headers: Any = ()) -> fusco_actor.Response:
    """GET ``path`` through the blocking module API (fusco's request/6)."""
    return fusco_actor.request(client, path, "GET", list(headers), b"", SHORT_TIMEOUT)


# -- keep-alive and connection reuse ------------------------------------------------


def test_sequential_requests_reuse_one_keep_alive_connection() -> None:
    n = 5

    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: ok(target_of(raw)))

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            for i in range(n):
                resp = fusco_actor.request(client, f"/{i}", "GET", [], b"", SHORT_TIMEOUT)
                assert resp.status == 200
                assert resp.body == f"/{i}".encode()
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 1
    assert len(server.connections[0].requests) == n
    assert server.connections[0].closed_by_peer.is_set()


@pytest.mark.parametrize(
    ("response", "request_headers"),
    [
        pytest.param(HTTP10_OK, [], id="http10-no-keep-alive"),
        pytest.param(ok(extra=b"Connection: close\r\n"), [], id="response-connection-close"),
        pytest.param(ok(), [("Connection", "close")], id="request-connection-close"),
    ],
)
def test_a_response_that_ends_keep_alive_makes_the_client_close_and_reconnect(
    response: bytes, request_headers: list[tuple[str, str]]
) -> None:
    after_first: list[bytes] = []

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(response)
        # The server keeps its side open: the client must be the one to close.
        after_first.append(first.wait_closed_by_peer())
        second = server.accept()
        read_request(second)
        second.sendall(ok(b"second"))
        second.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = fusco_actor.request(client, "/", "GET", request_headers, b"", SHORT_TIMEOUT)
            assert resp.body == b"ok"
            resp = get(client)
            assert resp.body == b"second"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 2
    first = server.connections[0]
    assert first.closed_by_peer.is_set()
    assert not first.closed_by_server.is_set()
    assert after_first == [b""]  # nothing more was written on the first connection


def test_http10_response_with_keep_alive_keeps_the_connection() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(
            server.accept(),
            lambda raw: b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        )

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            for _ in range(3):
                assert get(client).version == "HTTP/1.0"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 1


# -- body framing ---------------------------------------------------------------------


def test_body_without_content_length_is_read_until_the_server_closes() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello ")
        conn.sendall(b"world")
        conn.close()
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = get(client)
            assert resp.body == b"hello world"
            # A read-until-close body can never leave the connection reusable.
            assert get(client).body == b"ok"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 2


def test_chunked_body_with_trailers_exposes_the_trailers() -> None:
    wire = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
        b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: abc123\r\nX-Other: 2\r\n\r\n"
    )

    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: wire)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            resp = get(client)
            assert resp.body == b"hello world"
            assert resp.trailers["X-Checksum"] == "abc123"
            assert list(resp.trailers) == [("x-checksum", "abc123"), ("x-other", "2")]
            assert "x-checksum" not in resp.headers
            assert resp.size == len(wire)
            # The chunked framing ended cleanly, so the connection is reused.
            assert get(client).status == 200
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 1


def test_informational_100_before_the_final_response_is_skipped() -> None:
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX-A: 1\r\n\r\n" + ok(b"final")

    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: wire)

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        resp = get(client)
    assert resp.status == 200
    assert resp.body == b"final"
    assert "x-a" not in resp.headers
    assert resp.size == len(wire)  # the 1xx heads count in size


def test_truncated_content_length_body_raises_protocol_error() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
        conn.close()

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        with pytest.raises(fusco_actor.ProtocolError):
            get(client)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    # Bytes of the response arrived, so this is no stale keep-alive: no retry.
    assert len(server.connections) == 1


def test_response_head_over_max_head_size_raises_protocol_error() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2000 + b"\r\nContent-Length: 0\r\n\r\n")
        conn.wait_closed_by_peer()

    with (
        SocketServerThread(handler) as server,
        fusco_actor.start(server.url, max_head_size=1024) as client,
    ):
        with pytest.raises(fusco_actor.ProtocolError, match="max_head_size"):
            get(client)
        # The client closed the broken connection at once, not at disconnect.
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert server.connections[0].closed_by_peer.is_set()


# -- Expect: 100-continue -------------------------------------------------------------------


def test_expect_100_continue_sends_the_body_only_after_the_100() -> None:
    body = b"x" * 5000

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        conn.read_until(b"\r\n\r\n")
        # Well inside the client's 1 s wait: nothing may arrive before the 100.
        assert not conn.readable(0.3), "the body came before the 100"
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.read_exactly(len(body))
        conn.sendall(ok(b"stored"))
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            headers = [("Expect", "100-continue")]
            resp = fusco_actor.request(client, "/upload", "PUT", headers, body, SHORT_TIMEOUT)
            assert resp.status == 200
            assert resp.body == b"stored"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    transcript = server.connections[0].transcript
    first_send = next(i for i, (kind, _) in enumerate(transcript) if kind == "send")
    before = b"".join(data for kind, data in transcript[:first_send] if kind == "recv")
    after = b"".join(data for kind, data in transcript[first_send:] if kind == "recv")
    assert transcript[first_send] == ("send", b"HTTP/1.1 100 Continue\r\n\r\n")
    line, fields, rest = parse_request(before)
    assert line == b"PUT /upload HTTP/1.1"
    assert fields["expect"] == b"100-continue"
    assert fields["content-length"] == b"5000"
    assert rest == b""  # the head alone came before the 100
    assert after == body


def test_expect_100_continue_with_a_final_status_instead_never_sends_the_body() -> None:
    late: list[bytes] = []

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        conn.read_until(b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
        late.append(conn.wait_closed_by_peer())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            headers = [("Expect", "100-continue")]
            body = b"y" * 100
            resp = fusco_actor.request(client, "/upload", "POST", headers, body, SHORT_TIMEOUT)
            assert resp.status == 417
            assert resp.reason == "Expectation Failed"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert late == [b""]  # the connection closed without one byte of the body
    assert server.connections[0].closed_by_peer.is_set()


# -- timeouts and connect failures --------------------------------------------------------


def test_request_timeout_fails_the_request_and_the_next_request_reconnects() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        silent = server.accept()
        read_request(silent)  # ... and never answer
        silent.wait_closed_by_peer()
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            started = time.monotonic()
            with pytest.raises(fusco_actor.RequestTimeout):
                fusco_actor.request(client, "/slow", "GET", [], b"", 0.3)
            assert 0.3 <= time.monotonic() - started < 0.3 + SHORT_TIMEOUT
            assert fusco_actor.request(client, "/next", "GET", [], b"", SHORT_TIMEOUT).status == 200
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 2
    assert server.connections[0].closed_by_peer.is_set()
    assert len(server.connections[0].requests) == 1


def test_connect_timeout_raises_connect_timeout() -> None:
    with stalled_listener() as port:
        client = fusco_actor.start(f"http://127.0.0.1:{port}", connect_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(fusco_actor.ConnectTimeout):
            client.connect()
        assert 0.3 <= time.monotonic() - started < 0.3 + SHORT_TIMEOUT


@pytest.mark.parametrize(
    ("connect_timeout", "timeout", "error"),
    [
        pytest.param(0.3, 3.0, fusco_actor.ConnectTimeout, id="connect_timeout-first"),
        pytest.param(3.0, 0.3, fusco_actor.RequestTimeout, id="timeout-first"),
    ],
)
def test_the_smaller_of_timeout_and_connect_timeout_decides(
    connect_timeout: float, timeout: float, error: type[Exception]
) -> None:
    with stalled_listener() as port:
        client = fusco_actor.start(f"http://127.0.0.1:{port}", connect_timeout=connect_timeout)
        started = time.monotonic()
        with pytest.raises(error):
            fusco_actor.request(client, "/", "GET", [], b"", timeout)
        assert 0.3 <= time.monotonic() - started < 0.3 + SHORT_TIMEOUT


def test_refused_port_raises_connect_error() -> None:
    with refused_port() as port:
        client = fusco_actor.start(f"http://127.0.0.1:{port}")
        with pytest.raises(fusco_actor.ConnectError):
            get(client)
        # The client stays usable: the next call tries again and fails alike.
        with pytest.raises(fusco_actor.ConnectError):
            client.connect()


# -- send-retry (API §4) ------------------------------------------------------------------


def test_get_on_a_stale_keep_alive_connection_is_retried_on_a_new_connection() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok(b"first"))  # keep-alive: no Connection: close
        read_request(first)  # the second GET arrives on the kept-alive connection...
        first.close()  # ... which closes with no byte of response
        serve_forever(server.accept(), lambda raw: ok(b"second"))

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert get(client).body == b"first"
            assert get(client, "/b").body == b"second"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    first, second = server.connections
    assert first.closed_by_server.is_set()
    assert first.requests[1] == second.requests[0]  # the same GET, sent again


def test_server_closing_a_kept_alive_connection_after_a_response_is_survived_by_a_get() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok(b"first"))  # no Connection: close, yet the server closes
        first.close()
        serve_forever(server.accept(), lambda raw: ok(b"second"))

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert get(client).body == b"first"
            assert get(client).body == b"second"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 2


def test_post_on_a_reused_keep_alive_connection_closed_without_a_response_is_retried() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok())
        read_request(first)  # the POST, on the reused connection
        first.close()
        serve_forever(server.accept(), lambda raw: ok(b"posted"))

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            assert get(client).status == 200
            resp = fusco_actor.request(client, "/form", "POST", [], b"a=1", SHORT_TIMEOUT)
            assert resp.body == b"posted"
        assert server.handler_done.wait(SHORT_TIMEOUT)
    first, second = server.connections
    assert first.requests[1].startswith(b"POST /form ")
    assert second.requests == [first.requests[1]]


def test_post_on_a_fresh_connection_closed_without_a_response_raises_connection_closed() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.close()

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        with pytest.raises(fusco_actor.ConnectionClosed):
            fusco_actor.request(client, "/form", "POST", [], b"a=1", SHORT_TIMEOUT)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    # teardown accepted whatever waited in the backlog: there was no retry
    assert len(server.connections) == 1
    assert [r.split(b"\r\n")[0] for r in server.connections[0].requests] == [b"POST /form HTTP/1.1"]


def test_post_on_a_new_connection_after_a_dropped_idle_one_is_not_retried() -> None:
    dropped = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(ok())
        first.close()  # the idle keep-alive connection is dropped
        dropped.set()
        second = server.accept()
        read_request(second)  # the POST went out on a connection made for it...
        second.close()  # ... so the server may have acted on it: no retry

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        assert get(client).status == 200
        assert dropped.wait(SHORT_TIMEOUT)
        with pytest.raises(fusco_actor.ConnectionClosed):
            fusco_actor.request(client, "/form", "POST", [], b"a=1", SHORT_TIMEOUT)
    posts = [r for conn in server.connections for r in conn.requests if r.startswith(b"POST")]
    assert len(posts) == 1
    assert len(server.connections) == 2


def test_send_retry_zero_raises_connection_closed_without_retrying() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(ok())
        read_request(conn)
        conn.close()

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        assert get(client).status == 200
        with pytest.raises(fusco_actor.ConnectionClosed):
            fusco_actor.request(client, "/", "GET", [], b"", 0, SHORT_TIMEOUT)  # send_retry=0
    assert len(server.connections) == 1
    assert len(server.connections[0].requests) == 2


def test_send_retry_zero_as_a_start_option_disables_the_retry() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(ok())
        read_request(conn)
        conn.close()

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, send_retry=0) as client:
            assert client.request("/", timeout=SHORT_TIMEOUT).get().status == 200
            with pytest.raises(fusco_actor.ConnectionClosed):
                client.request("/", timeout=SHORT_TIMEOUT).get()
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections) == 1


# -- headers on the wire ---------------------------------------------------------------


def test_cookies_are_stored_and_sent_only_on_matching_paths() -> None:
    def respond(raw: bytes) -> bytes:
        if target_of(raw) == b"/app/login":
            return ok(extra=b"Set-Cookie: a=1; Path=/app\r\n")
        return ok()

    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), respond)

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, use_cookies=True) as client:
            for path, headers in [
                ("/app/login", []),
                ("/app/x", []),
                ("/other", []),
                ("/app/y", [("Cookie", "b=2")]),
            ]:
                assert get(client, path, headers).status == 200
        assert server.handler_done.wait(SHORT_TIMEOUT)
    sent = {target_of(raw): parse_request(raw)[1] for raw in server.connections[0].requests}
    assert "cookie" not in sent[b"/app/login"]
    assert sent[b"/app/x"]["cookie"] == b"a=1"
    assert "cookie" not in sent[b"/other"]
    assert sent[b"/app/y"]["cookie"] == b"b=2"  # the caller's own header, as it was
    assert server.connections[0].requests[3].count(b"Cookie:") == 1


def test_cookies_are_ignored_without_use_cookies() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: ok(extra=b"Set-Cookie: a=1; Path=/\r\n"))

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            for _ in range(2):
                get(client)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert all(b"Cookie:" not in raw for raw in server.connections[0].requests)


def test_host_header_includes_a_non_default_port() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            get(client)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    line, fields, _ = parse_request(server.connections[0].requests[0])
    assert line == b"GET / HTTP/1.1"
    assert fields["host"] == f"127.0.0.1:{server.port}".encode()


def test_host_header_omits_the_default_port() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    host = f"127.0.{random.randint(1, 254)}.{random.randint(2, 254)}"
    try:
        server = SocketServerThread(handler, host=host, port=80)
    except OSError as exc:
        pytest.skip(f"cannot bind {host}:80 here ({exc})")
    with server:
        with fusco_actor.start(f"http://{host}") as client:
            get(client)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    _, fields, _ = parse_request(server.connections[0].requests[0])
    assert fields["host"] == host.encode()


# -- argument and option errors ---------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"no_such_option": 1}, id="unknown-name"),
        pytest.param({"connect_timeout": "x"}, id="connect_timeout-str"),
        pytest.param({"connect_timeout": -1.0}, id="connect_timeout-negative"),
        pytest.param({"send_retry": -1}, id="send_retry-negative"),
        pytest.param({"send_retry": 1.5}, id="send_retry-float"),
        pytest.param({"max_head_size": 0}, id="max_head_size-zero"),
        pytest.param({"use_cookies": "yes"}, id="use_cookies-str"),
        pytest.param({"on_connect": 42}, id="on_connect-not-callable"),
    ],
)
def test_bad_option_is_raised_by_start_before_any_actor_starts(options: dict[str, Any]) -> None:
    before = pykka.ActorRegistry.get_all()
    with pytest.raises(fusco_actor.BadOption) as info:
        fusco_actor.start("http://127.0.0.1:9", **options)
    assert isinstance(info.value, ValueError)
    assert next(iter(options)) in str(info.value)  # the message names the option
    assert pykka.ActorRegistry.get_all() == before


@pytest.mark.parametrize(
    "destination",
    [
        "ftp://127.0.0.1:21",
        "http://",
        "127.0.0.1:8080",
        "http://127.0.0.1:99999",
        "http://[::1",
        ("127.0.0.1", 80),
        ("127.0.0.1", 80, "no"),
        42,
    ],
)
def test_bad_destination_raises_bad_argument_before_any_actor_starts(destination: Any) -> None:
    before = pykka.ActorRegistry.get_all()
    with pytest.raises(fusco_actor.BadArgument):
        fusco_actor.start(destination)
    assert pykka.ActorRegistry.get_all() == before


@pytest.mark.parametrize(
    ("path", "method", "headers"),
    [
        pytest.param("x", "GET", [], id="path-without-slash"),
        pytest.param("/a b", "GET", [], id="path-with-space"),
        pytest.param("/", "GE T", [], id="method-not-a-token"),
        pytest.param("/", "GET", [("X-A", "1\r\nX-Injected: 1")], id="header-value-crlf"),
        pytest.param("/", "GET", [("X A", "1")], id="header-name-with-space"),
        pytest.param("/", "GET", [("X-A", "a\x00b")], id="header-value-nul"),
    ],
)
def test_bad_argument_is_raised_by_the_call_and_nothing_reaches_the_wire(
    path: str, method: str, headers: list[tuple[str, str]]
) -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url)
        with pytest.raises(fusco_actor.BadArgument):
            client.request(path, method, headers, b"", SHORT_TIMEOUT)
        with pytest.raises(fusco_actor.BadArgument):
            fusco_actor.request(client, path, method, headers, b"", SHORT_TIMEOUT)
        with pytest.raises(fusco_actor.BadArgument):
            Request(path, method, headers)
        client.disconnect(timeout=SHORT_TIMEOUT)  # served in order: anything queued went first
        assert not client.actor_ref.is_alive()
    assert server.connections == []


# -- addresses, threads, hooks ------------------------------------------------------------


@pytest.mark.skipif(not has_ipv6(), reason="::1 cannot be bound on this machine")
def test_ipv6_loopback_destination_in_brackets() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    with SocketServerThread(handler, host="::1") as server:
        assert server.url == f"http://[::1]:{server.port}"
        infos: list[fusco_actor.ConnectInfo] = []
        with fusco_actor.start(server.url, on_connect=infos.append) as client:
            assert get(client).status == 200
        assert server.handler_done.wait(SHORT_TIMEOUT)
    _, fields, _ = parse_request(server.connections[0].requests[0])
    assert fields["host"] == f"[::1]:{server.port}".encode()
    assert infos[0].address is not None
    assert infos[0].address[:2] == ("::1", server.port)


def test_many_threads_share_one_client_on_one_connection() -> None:
    threads, per_thread = 16, 50

    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: ok(target_of(raw)))

    errors: list[BaseException] = []
    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:

            def worker(t: int) -> None:
                try:
                    for i in range(per_thread):
                        path = f"/{t}/{i}"
                        resp = client.request(path, timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT)
                        assert resp.body == path.encode()
                except BaseException as exc:  # reported by the main thread
                    errors.append(exc)

            workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(LONG_TIMEOUT)
            assert not any(w.is_alive() for w in workers)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert errors == []
    assert len(server.connections) == 1
    assert len(server.connections[0].requests) == threads * per_thread


def test_on_connect_is_called_with_the_address_after_a_connect() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    infos: list[fusco_actor.ConnectInfo] = []
    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, on_connect=infos.append) as client:
            get(client)
            get(client)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(infos) == 1  # one connection, one call
    (info,) = infos
    assert info.ok is True
    assert info.error is None
    assert info.address == ("127.0.0.1", server.port)
    assert 0 <= info.connect_time < SHORT_TIMEOUT


def test_on_connect_is_called_with_the_error_after_a_refused_connect() -> None:
    infos: list[fusco_actor.ConnectInfo] = []
    with refused_port() as port:
        client = fusco_actor.start(f"http://127.0.0.1:{port}", on_connect=infos.append)
        with pytest.raises(fusco_actor.ConnectError) as raised:
            get(client)
    (info,) = infos
    assert info.ok is False
    assert info.address is None
    assert isinstance(info.error, fusco_actor.ConnectError)
    assert info.error is raised.value


def test_on_connect_that_raises_does_not_break_the_client(caplog: pytest.LogCaptureFixture) -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    def hook(info: fusco_actor.ConnectInfo) -> None:
        raise RuntimeError("hook failed")

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url, on_connect=hook) as client:
            assert get(client).status == 200
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert "on_connect" in caplog.text


# -- lifecycle -------------------------------------------------------------------------


def test_disconnect_serves_queued_requests_then_later_requests_fail_with_client_stopped() -> None:
    release = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        assert release.wait(LONG_TIMEOUT)  # hold the first answer until all is queued
        conn.sendall(ok(b"0"))
        serve_forever(conn, lambda raw: ok(target_of(raw)[1:]))

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url)
        queued = [client.request(f"/{i}", timeout=LONG_TIMEOUT) for i in range(3)]
        # Queue the disconnect behind them (from another thread: it blocks until served).
        stopper = threading.Thread(target=client.disconnect, args=(LONG_TIMEOUT,), daemon=True)
        stopper.start()
        assert wait_for(lambda: client.actor_ref.actor_inbox.queued == 4)  # type: ignore[attr-defined]
        after = client.request("/late", timeout=LONG_TIMEOUT)
        release.set()
        stopper.join(LONG_TIMEOUT)
        assert not stopper.is_alive()
        client.disconnect(timeout=LONG_TIMEOUT)  # already stopped: returns at once
        assert not client.actor_ref.is_alive()
        assert [f.get(timeout=SHORT_TIMEOUT).body for f in queued] == [b"0", b"1", b"2"]
        with pytest.raises(fusco_actor.ClientStopped):
            after.get(timeout=SHORT_TIMEOUT)
        with pytest.raises(fusco_actor.ClientStopped):
            client.request("/later", timeout=LONG_TIMEOUT).get(timeout=SHORT_TIMEOUT)
        with pytest.raises(fusco_actor.ClientStopped):
            get(client)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert len(server.connections[0].requests) == 3
    assert server.connections[0].closed_by_peer.is_set()


def test_context_manager_disconnects_on_exit() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept())

    with SocketServerThread(handler) as server:
        with fusco_actor.start(server.url) as client:
            client.connect()
        assert not client.actor_ref.is_alive()
        assert server.handler_done.wait(SHORT_TIMEOUT)
    assert server.connections[0].closed_by_peer.is_set()
    assert server.connections[0].requests == []


def test_body_generator_that_raises_fails_the_request_and_closes_the_connection() -> None:
    outcome: list[Any] = []

    class BodyFailed(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"first part"
        raise BodyFailed("disk on fire")

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        try:
            read_request(conn)
        except IncompleteRequest as exc:
            outcome.append(exc.partial)
        else:
            outcome.append("complete")

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        with pytest.raises(BodyFailed, match="disk on fire"):
            fusco_actor.request(client, "/upload", "POST", [], body(), SHORT_TIMEOUT)
        assert server.handler_done.wait(SHORT_TIMEOUT)
    (partial,) = outcome
    assert partial != "complete"
    assert b"Transfer-Encoding: chunked" in partial
    assert partial.endswith(b"a\r\nfirst part\r\n")  # no last chunk ever came
    assert server.connections[0].closed_by_peer.is_set()
    assert len(server.connections) == 1  # a one-shot generator is never re-sent


def test_ask_with_a_request_message_returns_a_future_of_a_response() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: ok(target_of(raw)))

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        future = client.actor_ref.ask(Request("/asked", "GET", timeout=SHORT_TIMEOUT), block=False)
        assert isinstance(future, pykka.Future)
        resp = future.get(timeout=SHORT_TIMEOUT)
    assert isinstance(resp, fusco_actor.Response)
    assert resp.body == b"/asked"


def test_response_fields_describe_the_exchange() -> None:
    wire = (
        b"HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Type: text/plain\r\nx-a:  2 \r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )

    def handler(listener: Any, server: SocketServerThread) -> None:
        serve_forever(server.accept(), lambda raw: wire)

    with SocketServerThread(handler) as server, fusco_actor.start(server.url) as client:
        resp = get(client)
    assert resp.status == 201
    assert resp.reason == "Created"
    assert resp.version == "HTTP/1.1"
    assert list(resp.headers) == [
        ("x-a", "1"),
        ("content-type", "text/plain"),
        ("x-a", "2"),
        ("content-length", "5"),
    ]
    assert resp.headers["X-A"] == "1, 2"
    assert resp.headers.get_all("x-a") == ["1", "2"]
    assert len(resp.headers) == 4
    assert resp.body == b"hello"
    assert len(resp.trailers) == 0
    assert resp.size == len(wire)
    assert resp.elapsed > 0
