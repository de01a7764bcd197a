"""The asyncio I/O layer (``_aio_transport``) over real loopback sockets, on asyncio and uvloop.

What must hold: ``open_loop_connection`` connects as ``_transport.open_connection``
does, with the same error classes and messages (refused, timeouts, TLS
failures naming the origin, proxy refusals); connect options reach the
transport's socket; the owner hears data, EOF, loss and drained writes; reads
pause and writes push back; and a cancelled or timed-out attempt leaves no
descriptor open. Every test runs on a private loop of each kind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from fusco_actor import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    FuscoError,
    ProtocolError,
    ProxyError,
    RequestTimeout,
    TLSError,
)
from fusco_actor._aio_transport import LoopConnection, open_loop_connection
from fusco_actor._events import NEED_DATA, BodyChunk, EndOfResponse, ResponseHead
from fusco_actor._options import parse_destination, parse_options
from fusco_actor._parser import ResponseParser
from fusco_actor._transport import open_connection
from tests.integration.conftest import PROXY_CREDENTIALS, PROXY_PASSWORD, PROXY_USER
from tests.integration.realservers import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    Certificates,
    ProxyPyServer,
    SocketServerThread,
    UvicornServer,
    free_port,
    recv_head,
    response,
    scripted,
    server_handshake,
    wait_for_close,
)
from tests.socketserver import has_ipv6, refused_port, stalled_listener

integration = pytest.mark.integration

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
SCENARIO_BOUND = 3 * LONG_TIMEOUT  # seconds one test's coroutine may take in all


def _loop_factories() -> list[Any]:
    params = [pytest.param(asyncio.new_event_loop, id="asyncio")]
    try:
        import uvloop  # noqa: PLC0415 - optional: only where it installs
    except ImportError:  # pragma: no cover - platforms without uvloop
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip("no uvloop")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


Run = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=_loop_factories())
def run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Run a coroutine to completion on a private loop of the parametrized kind, bounded."""
    loop: asyncio.AbstractEventLoop = request.param()

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        return loop.run_until_complete(asyncio.wait_for(coro, SCENARIO_BOUND))

    try:
        yield runner
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class Recorder:
    """A ConnectionOwner that records each call in order and wakes whoever waits on it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.data = bytearray()
        self.changed = asyncio.Event()

    def _note(self, kind: str, value: Any = None) -> None:
        self.events.append((kind, value))
        self.changed.set()

    def on_data(self, data: bytes) -> None:
        self.data += data
        self._note("data", data)

    def on_eof(self) -> None:
        self._note("eof")

    def on_lost(self, exc: Exception | None) -> None:
        self._note("lost", exc)

    def on_writable(self) -> None:
        self._note("writable")

    def kinds(self) -> list[str]:
        """Return the kinds of calls in order, runs of ``data`` counted once."""
        out: list[str] = []
        for kind, _ in self.events:
            if not (kind == "data" and out and out[-1] == "data"):
                out.append(kind)
        return out

    async def until(self, condition: Callable[[], bool], timeout: float = LONG_TIMEOUT) -> None:
        """Wait until ``condition()`` holds after some call, or fail after ``timeout`` seconds."""
        limit = time.monotonic() + timeout
        while not condition():
            self.changed.clear()
            left = limit - time.monotonic()
            if left <= 0:
                pytest.fail(f"the owner did not see that in {timeout} s: {self.kinds()}")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pytest.fail(f"the owner did not see that in {timeout} s: {self.kinds()}")

    async def until_lost(self) -> None:
        await self.until(lambda: "lost" in self.kinds())


async def connect(
    url: str, deadline: float | None = None, **options: Any
) -> tuple[LoopConnection, Recorder]:
    """Open a loop connection to ``url`` with ``options``; the deadline defaults to LONG_TIMEOUT."""
    owner = Recorder()
    if deadline is None:
        deadline = time.monotonic() + LONG_TIMEOUT
    conn = await open_loop_connection(
        parse_destination(url), parse_options(options), deadline, owner
    )
    return conn, owner


def parse(data: bytes, method: bytes = b"GET") -> tuple[ResponseHead, bytes]:
    """Parse one whole response from ``data``."""
    parser = ResponseParser()
    parser.expect(method)
    parser.feed(data)
    parser.feed_eof()
    head: ResponseHead | None = None
    body = b""
    while True:
        event = parser.next_event()
        assert event is not NEED_DATA, f"incomplete response: {data!r}"
        if isinstance(event, ResponseHead):
            head = event
        elif isinstance(event, BodyChunk):
            body += event.data
        elif isinstance(event, EndOfResponse):
            assert head is not None
            return head, body


async def exchange(
    conn: LoopConnection, owner: Recorder, target: str, host: str
) -> tuple[ResponseHead, bytes]:
    """Write one ``Connection: close`` GET, wait for the server's close, parse the response.

    uvloop reports a TLS peer's TCP close without close_notify (Python's
    ``SSLSocket.close``) as a loss without an EOF; asyncio as both.
    """
    conn.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await owner.until_lost()
    kinds = owner.kinds()
    assert kinds == ["data", "eof", "lost"] or (conn.tunnelled and kinds == ["data", "lost"])
    assert owner.events[-1] == ("lost", None)
    assert conn.is_closed
    return parse(bytes(owner.data))


def threaded_error(url: str, deadline: float | None = None, **options: Any) -> FuscoError:
    """Return what the threaded ``open_connection`` raises for the same attempt."""
    with pytest.raises(FuscoError) as caught:
        open_connection(parse_destination(url), parse_options(options), deadline).close()
    return caught.value


def fd_count() -> int:
    """Return how many TCP sockets this process has open (loops make pipes and pairs lazily)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            inodes.update(line.split()[9] for line in list(lines)[1:])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            count += link.startswith("socket:[") and link[8:-1] in inodes
    return count


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


async def fds_back_to(count: int) -> None:
    """Let the loop run its close callbacks (a few turns, no timer) until ``count`` fds are open."""
    for _ in range(50):
        if fd_count() <= count:
            return
        await asyncio.sleep(0)
    assert fd_count() == count, "a descriptor leaked"


async def in_thread(event: threading.Event) -> None:
    """Wait for a server thread's ``event`` without blocking the loop; fail after LONG_TIMEOUT."""
    assert await asyncio.to_thread(event.wait, LONG_TIMEOUT), "the server thread did not get there"


# -- plain connections ------------------------------------------------------------------


@integration
def test_a_request_written_on_a_plain_connection_gets_its_response_through_the_owner(
    run: Run, http_server: UvicornServer
) -> None:
    async def scenario() -> None:
        conn, owner = await connect(http_server.url)
        assert conn.address == ("127.0.0.1", http_server.port)
        assert (conn.tunnelled, conn.requests_done, conn.is_closed) == (False, 0, False)
        head, body = await exchange(conn, owner, "/echo?x=1", f"127.0.0.1:{http_server.port}")
        assert head.status == 200
        assert b'"query": "x=1"' in body or b'"query":"x=1"' in body
        with pytest.raises(ConnectionClosed):
            conn.write(b"more")

    run(scenario())


def test_writelines_sends_the_parts_in_order_and_close_never_raises(run: Run) -> None:
    got: list[bytes] = []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            got.append(wait_for_close(conn))

    async def scenario(server: SocketServerThread) -> None:
        conn, owner = await connect(f"http://127.0.0.1:{server.port}")
        conn.writelines([b"one ", memoryview(b"two "), b"three"])
        conn.close()
        conn.close()
        conn.abort()
        await owner.until_lost()
        assert owner.events == [("lost", None)]
        conn.pause_reading()  # no-ops once closed
        conn.resume_reading()
        with pytest.raises(ConnectionClosed):
            conn.writelines([b"late"])

    with scripted(handler) as server:
        run(scenario(server))
    assert got == [b"one two three"]


def test_bytes_and_a_close_that_come_before_the_hand_over_reach_the_owner_in_order(
    run: Run,
) -> None:
    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            conn.sendall(b"server speaks first")

    async def scenario(server: SocketServerThread) -> None:
        _, owner = await connect(f"http://127.0.0.1:{server.port}")
        await owner.until_lost()
        assert bytes(owner.data) == b"server speaks first"
        assert owner.kinds() == ["data", "eof", "lost"]

    with scripted(handler) as server:
        run(scenario(server))


def test_a_refused_connection_is_a_connect_error_worded_as_the_threaded_one(run: Run) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        with pytest.raises(ConnectError) as caught:
            run(connect(url))
        assert type(caught.value) is ConnectError
        assert str(caught.value) == str(threaded_error(url))
        assert str(caught.value) == f"connect to {url}: Connection refused"


def test_a_name_is_resolved_off_the_loop_and_family_is_honoured(run: Run) -> None:
    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            wait_for_close(conn)

    async def scenario(server: SocketServerThread) -> None:
        conn, _ = await connect(
            f"http://localhost:{server.port}", connect_options={"family": socket.AF_INET}
        )
        assert conn.get_extra_info("socket").family == socket.AF_INET
        assert conn.address == ("127.0.0.1", server.port)
        conn.close()

    with scripted(handler) as server:
        run(scenario(server))


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
def test_an_ipv6_literal_connects_to_the_v6_loopback(run: Run) -> None:
    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            recv_head(conn)
            conn.sendall(response(b"v6", extra=b"Connection: close\r\n"))

    async def scenario(server: SocketServerThread) -> None:
        conn, owner = await connect(f"http://[::1]:{server.port}")
        assert conn.address[:2] == ("::1", server.port)
        assert conn.get_extra_info("socket").family == socket.AF_INET6
        head, body = await exchange(conn, owner, "/", f"[::1]:{server.port}")
        assert (head.status, body) == (200, b"v6")

    with scripted(handler, host="::1") as server:
        run(scenario(server))


# -- connect options --------------------------------------------------------------------


SOCKOPTS = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
    SOCKOPTS.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 42))


@pytest.mark.parametrize("nodelay", [True, False])
def test_source_address_sockopts_and_nodelay_reach_the_transport_socket(
    run: Run, nodelay: bool
) -> None:
    peers: list[Any] = []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            peers.append(conn.getpeername())
            wait_for_close(conn)

    source_port = free_port("127.0.0.2")

    async def scenario(server: SocketServerThread) -> None:
        conn, _ = await connect(
            f"http://127.0.0.1:{server.port}",
            connect_options={
                "source_address": ("127.0.0.2", source_port),
                "sockopts": SOCKOPTS,
                "tcp_nodelay": nodelay,
            },
        )
        sock = conn.get_extra_info("socket")
        assert sock.getsockname() == ("127.0.0.2", source_port)
        for level, option, value in SOCKOPTS:
            assert sock.getsockopt(level, option) == value
        # uvloop turns TCP_NODELAY on by itself: the option must still decide.
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == int(nodelay)
        conn.close()

    with scripted(handler) as server:
        run(scenario(server))
    assert peers == [("127.0.0.2", source_port)]


# -- deadlines ------------------------------------------------------------------------------


def test_connect_timeout_ends_a_stalled_connect_with_connect_timeout(run: Run) -> None:
    with stalled_listener() as port:
        started = time.monotonic()
        with pytest.raises(ConnectTimeout, match=f"connect to http://127.0.0.1:{port}: timed out"):
            run(connect(f"http://127.0.0.1:{port}", connect_timeout=0.3))
        assert 0.3 <= time.monotonic() - started < 0.3 + SHORT_TIMEOUT


def test_a_request_deadline_nearer_than_connect_timeout_is_a_request_timeout(run: Run) -> None:
    with stalled_listener() as port:

        async def scenario() -> None:
            await connect(
                f"http://127.0.0.1:{port}",
                deadline=time.monotonic() + 0.3,
                connect_timeout=LONG_TIMEOUT,
            )

        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="timed out"):
            run(scenario())
        assert time.monotonic() - started < 0.3 + SHORT_TIMEOUT


@pytest.mark.parametrize(
    ("options", "spent_by", "error"),
    [({}, -1.0, RequestTimeout), ({"connect_timeout": 0}, 5.0, ConnectTimeout)],
    ids=["spent-deadline", "zero-connect-timeout"],
)
def test_a_spent_deadline_raises_before_any_socket_is_made(
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    spent_by: float,
    error: type[FuscoError],
) -> None:
    made: list[Any] = []

    async def scenario() -> None:
        monkeypatch.setattr(socket, "socket", lambda *a, **k: made.append(a))
        try:
            await connect("http://127.0.0.1:9", deadline=time.monotonic() + spent_by, **options)
        finally:
            monkeypatch.undo()

    with pytest.raises(error, match="timed out"):
        run(scenario())
    assert made == []


# -- TLS --------------------------------------------------------------------------------


@integration
def test_tls_with_a_trusted_certificate_carries_a_request(
    run: Run, tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    async def scenario() -> None:
        conn, owner = await connect(tls_server.url, ssl_context=trusting_context)
        assert conn.get_extra_info("ssl_object") is not None
        cert = conn.get_extra_info("peercert")
        assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
        head, body = await exchange(conn, owner, "/echo", f"127.0.0.1:{tls_server.port}")
        assert head.status == 200
        assert b'"scheme": "https"' in body or b'"scheme":"https"' in body

    run(scenario())


@integration
@pytest.mark.parametrize(
    ("server", "trust", "words"),
    [
        ("expired_tls_server", "ca", "certificate has expired"),
        ("wrong_name_tls_server", "ca", "mismatch"),
        ("tls_server", "other_ca", "unable to get local issuer certificate"),
    ],
    ids=["expired", "wrong-name", "untrusted-ca"],
)
def test_a_bad_certificate_is_a_tls_error_naming_the_origin_as_the_threaded_one(
    run: Run,
    request: pytest.FixtureRequest,
    certs: Certificates,
    server: str,
    trust: str,
    words: str,
) -> None:
    url = request.getfixturevalue(server).url
    context = certs.client_context(trust=getattr(certs, trust))
    with pytest.raises(TLSError) as caught:
        run(connect(url, ssl_context=context))
    message = str(caught.value)
    assert message.startswith(f"TLS with {url}: certificate verify failed: ")
    assert words in message
    assert message == str(threaded_error(url, ssl_context=context))


@integration
def test_a_client_certificate_passes_mutual_tls_and_none_fails_it(
    run: Run, mtls_server: UvicornServer, certs: Certificates
) -> None:
    async def scenario() -> None:
        conn, owner = await connect(
            mtls_server.url, ssl_context=certs.client_context(cert=certs.client)
        )
        head, _ = await exchange(conn, owner, "/ping", f"127.0.0.1:{mtls_server.port}")
        assert head.status == 200

    run(scenario())
    # In TLS 1.2 the server checks the client certificate inside the handshake.
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(TLSError, match=f"TLS with {mtls_server.url}"):
        run(connect(mtls_server.url, ssl_context=context))


def _silent_tls_server(hello: threading.Event, done: threading.Event) -> Any:
    """Return a handler that reads the ClientHello, never answers, and waits for the close."""

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            assert conn.recv(4096)
            hello.set()
            wait_for_close(conn)
        done.set()

    return handler


@needs_proc
@pytest.mark.parametrize("limit", ["connect_timeout", "deadline"])
def test_a_stalled_handshake_ends_at_its_deadline_named_as_tls_and_closes_its_socket(
    run: Run, certs: Certificates, limit: str
) -> None:
    hello, done = threading.Event(), threading.Event()
    before = fd_count()

    async def scenario(server: SocketServerThread) -> None:
        url = f"https://127.0.0.1:{server.port}"
        if limit == "connect_timeout":
            kwargs: dict[str, Any] = {"connect_timeout": 0.3}
            error: type[FuscoError] = ConnectTimeout
        else:
            kwargs = {"deadline": time.monotonic() + 0.3, "connect_timeout": LONG_TIMEOUT}
            error = RequestTimeout
        with pytest.raises(error, match=f"TLS with {url}: timed out"):
            await connect(url, ssl_context=certs.client_context(), **kwargs)
        await in_thread(done)  # the server saw the client close

    with scripted(_silent_tls_server(hello, done)) as server:
        run(scenario(server))
    assert fd_count() == before


# -- proxies ----------------------------------------------------------------------------


@integration
@pytest.mark.parametrize("proxy_name", ["open_proxy", "auth_proxy"])
def test_a_connect_tunnel_through_proxy_py_then_tls_carries_a_request(
    run: Run,
    request: pytest.FixtureRequest,
    tls_server: UvicornServer,
    trusting_context: ssl.SSLContext,
    proxy_name: str,
) -> None:
    proxy: ProxyPyServer = request.getfixturevalue(proxy_name)
    credentials = PROXY_CREDENTIALS if proxy_name == "auth_proxy" else None

    async def scenario() -> None:
        conn, owner = await connect(
            tls_server.url, proxy=proxy.url(credentials), ssl_context=trusting_context
        )
        assert conn.tunnelled
        assert conn.address == ("127.0.0.1", proxy.port)
        head, body = await exchange(conn, owner, "/echo", f"127.0.0.1:{tls_server.port}")
        assert head.status == 200
        assert b"https" in body
        assert b"proxy-authorization" not in body.lower()

    run(scenario())


@integration
def test_a_proxy_asking_for_credentials_is_a_proxy_error_407(
    run: Run, auth_proxy: ProxyPyServer, tls_server: UvicornServer
) -> None:
    with pytest.raises(ProxyError) as caught:
        run(connect(tls_server.url, proxy=auth_proxy.url("alice:wrong")))
    assert (caught.value.status, caught.value.reason) == (407, "Proxy Authentication Required")
    threaded = threaded_error(tls_server.url, proxy=auth_proxy.url("alice:wrong"))
    assert str(caught.value) == str(threaded)


@integration
def test_tls_in_the_tunnel_uses_proxy_ssl_context_and_names_origin_and_proxy(
    run: Run,
    open_proxy: ProxyPyServer,
    tls_server: UvicornServer,
    expired_tls_server: UvicornServer,
    certs: Certificates,
) -> None:
    async def scenario() -> None:
        conn, _ = await connect(
            tls_server.url,
            proxy=open_proxy.url(),
            ssl_context=certs.client_context(trust=certs.other_ca),  # would fail
            proxy_ssl_context=certs.client_context(),
        )
        assert conn.tunnelled
        conn.close()

    run(scenario())
    options: dict[str, Any] = {
        "proxy": open_proxy.url(),
        "proxy_ssl_context": certs.client_context(),
    }
    with pytest.raises(TLSError) as caught:
        run(connect(expired_tls_server.url, **options))
    assert str(caught.value).startswith(
        f"TLS with {expired_tls_server.url} (through proxy 127.0.0.1:{open_proxy.port}): "
        "certificate verify failed: certificate has expired"
    )
    assert str(caught.value) == str(threaded_error(expired_tls_server.url, **options))


@integration
def test_an_http_origin_through_a_proxy_connects_to_the_proxy_only(
    run: Run, open_proxy: ProxyPyServer, http_server: UvicornServer
) -> None:
    async def scenario() -> None:
        conn, owner = await connect(http_server.url, proxy=open_proxy.url())
        assert (conn.address, conn.tunnelled) == (("127.0.0.1", open_proxy.port), False)
        head, _ = await exchange(conn, owner, f"{http_server.url}/ping", "127.0.0.1")
        assert head.status == 200

    run(scenario())


def fake_proxy(
    answer: list[bytes],
    connects: list[bytes],
    tls: ssl.SSLContext | None = None,
    close_after: bool = False,
    seen: threading.Event | None = None,
    done: threading.Event | None = None,
) -> Any:
    """Return a scripted proxy: it records CONNECT (then sets ``seen``), writes ``answer``,
    then plays a TLS origin with ``tls``, or else waits for the client to close (then ``done``).
    """

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            connects.append(recv_head(conn)[0])
            if seen is not None:
                seen.set()
            for part in answer:
                conn.sendall(part)
            if close_after:
                return
            if tls is None:
                wait_for_close(conn)
                if done is not None:
                    done.set()
                return
            with server_handshake(conn, tls) as origin:
                recv_head(origin)
                origin.sendall(response(b"tunnelled", extra=b"Connection: close\r\n"))

    return handler


@pytest.mark.parametrize(
    "answer",
    [
        [ESTABLISHED],
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            ESTABLISHED[:9],
            ESTABLISHED[9:],
        ],
    ],
    ids=["200", "1xx-then-split-200"],
)
def test_connect_names_the_origin_sends_credentials_and_skips_1xx(
    run: Run, certs: Certificates, answer: list[bytes]
) -> None:
    connects: list[bytes] = []

    async def scenario(server: SocketServerThread) -> None:
        conn, owner = await connect(
            "https://127.0.0.1:8443",
            proxy=f"http://{PROXY_CREDENTIALS}@127.0.0.1:{server.port}",
            ssl_context=certs.client_context(),
        )
        assert conn.tunnelled
        head, body = await exchange(conn, owner, "/", "127.0.0.1:8443")
        assert (head.status, body) == (200, b"tunnelled")

    with scripted(fake_proxy(answer, connects, tls=certs.server_context())) as server:
        run(scenario(server))
    basic = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode())
    assert connects == [
        b"CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
        b"Proxy-Authorization: Basic " + basic + b"\r\n\r\n"
    ]


def test_connect_to_an_ipv6_origin_brackets_it(run: Run) -> None:
    connects: list[bytes] = []
    refusal = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    with scripted(fake_proxy([refusal], connects)) as server, pytest.raises(ProxyError):
        run(connect("https://[::1]:8443", proxy=f"http://127.0.0.1:{server.port}"))
    assert connects == [b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"]


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied", 403, "Forbidden"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 502 Bad Gateway\r\n\r\n", 502, "Bad Gateway"),
    ],
)
def test_a_non_2xx_connect_answer_is_a_proxy_error_worded_as_the_threaded_one(
    run: Run, answer: bytes, status: int, reason: str
) -> None:
    errors: list[FuscoError] = []
    for attempt in ("loop", "threaded"):
        with scripted(fake_proxy([answer], [])) as server:
            url, proxy = "https://127.0.0.1:8443", f"http://127.0.0.1:{server.port}"
            if attempt == "threaded":
                errors.append(threaded_error(url, proxy=proxy))
                continue
            with pytest.raises(ProxyError) as caught:
                run(connect(url, proxy=proxy))
            errors.append(caught.value)
    loop_error, threaded = errors
    assert isinstance(loop_error, ProxyError)
    assert (loop_error.status, loop_error.reason) == (status, reason)
    words = f"proxy refused CONNECT 127.0.0.1:8443: {status} {reason}"
    assert str(loop_error) == str(threaded) == words


@pytest.mark.parametrize(
    "answer",
    [[], [b"HTTP/1.1 100 Continue\r\n\r\n"], [b"HTTP/1.1 200 Connection est"]],
    ids=["no-byte", "after-1xx", "mid-head"],
)
def test_a_proxy_that_closes_before_its_answer_is_a_proxy_error(
    run: Run, answer: list[bytes]
) -> None:
    closing = fake_proxy(answer, [], close_after=True)
    with (
        scripted(closing) as server,
        pytest.raises(ProxyError, match="proxy closed before answering CONNECT") as caught,
    ):
        run(connect("https://127.0.0.1:8443", proxy=f"http://127.0.0.1:{server.port}"))
    assert caught.value.status is None


def test_a_proxy_that_resets_before_its_answer_is_a_proxy_error(run: Run) -> None:
    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            recv_head(conn)
            # SO_LINGER on with 0 seconds: the close is a reset.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with (
        scripted(handler) as server,
        pytest.raises(ProxyError, match="proxy closed") as caught,
    ):
        run(connect("https://127.0.0.1:8443", proxy=f"http://127.0.0.1:{server.port}"))
    assert caught.value.status is None


def test_bytes_after_the_connect_answer_are_a_protocol_error(run: Run) -> None:
    eager = fake_proxy([ESTABLISHED + b"\x16\x03\x01early"], [])
    with (
        scripted(eager) as server,
        pytest.raises(ProtocolError, match="bytes after its CONNECT answer"),
    ):
        run(connect("https://127.0.0.1:8443", proxy=f"http://127.0.0.1:{server.port}"))


# -- flow control ------------------------------------------------------------------------


def test_paused_reading_delivers_nothing_until_resumed_then_everything(run: Run) -> None:
    stuck, release = threading.Event(), threading.Event()
    sent: list[int] = []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            conn.setblocking(False)
            block, total = b"y" * 65_536, 0
            while total < 256 * 2**20:  # until the client's buffers are full
                try:
                    total += conn.send(block)
                except BlockingIOError:
                    break
            sent.append(total)
            stuck.set()
            release.wait(LONG_TIMEOUT)

    async def scenario(server: SocketServerThread) -> None:
        conn, owner = await connect(f"http://127.0.0.1:{server.port}")
        conn.pause_reading()
        await in_thread(stuck)  # the loop ran all along: nothing may have been delivered
        assert owner.events == []
        conn.resume_reading()
        release.set()
        await owner.until_lost()
        assert len(owner.data) == sent[0]
        assert owner.kinds() == ["data", "eof", "lost"]

    with scripted(handler) as server:
        run(scenario(server))


def test_writes_block_against_a_peer_that_does_not_read_and_unblock_when_it_reads(
    run: Run,
) -> None:
    read, got = threading.Event(), []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            read.wait(LONG_TIMEOUT)
            got.append(len(wait_for_close(conn)))

    async def scenario(server: SocketServerThread) -> int:
        conn, owner = await connect(
            f"http://127.0.0.1:{server.port}",
            connect_options={"sockopts": [(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)]},
        )
        chunk, written = b"x" * 65_536, 0
        while not conn.write_blocked:
            conn.write(chunk)
            written += len(chunk)
            assert written < 64 * 2**20, "the transport never pushed back"
        assert "writable" not in owner.kinds()
        read.set()
        await owner.until(lambda: "writable" in owner.kinds())
        assert not conn.write_blocked
        conn.close()
        await owner.until_lost()
        return written

    with scripted(handler) as server:
        written = run(scenario(server))
    assert got == [written]


# -- cancellation ------------------------------------------------------------------------


@needs_proc
def test_cancelling_a_stalled_tcp_connect_closes_its_socket(run: Run) -> None:
    with stalled_listener() as port:
        before = fd_count()

        async def scenario() -> None:
            task = asyncio.ensure_future(connect(f"http://127.0.0.1:{port}"))
            for _ in range(50):  # a few loop turns: the socket exists, its connect hangs
                if fd_count() > before:
                    break
                await asyncio.sleep(0)
            assert fd_count() == before + 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert fd_count() == before  # a raw socket closes at once

        run(scenario())


@needs_proc
def test_cancelling_during_the_tls_handshake_closes_the_transport(
    run: Run, certs: Certificates
) -> None:
    hello, done = threading.Event(), threading.Event()
    before = fd_count()

    async def scenario(server: SocketServerThread) -> None:
        task = asyncio.ensure_future(
            connect(f"https://127.0.0.1:{server.port}", ssl_context=certs.client_context())
        )
        await in_thread(hello)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await in_thread(done)

    with scripted(_silent_tls_server(hello, done)) as server:
        run(scenario(server))
    assert fd_count() == before


@needs_proc
def test_cancelling_while_the_proxy_has_not_answered_closes_the_transport(run: Run) -> None:
    seen, done = threading.Event(), threading.Event()
    before = fd_count()

    async def scenario(server: SocketServerThread) -> None:
        task = asyncio.ensure_future(
            connect("https://127.0.0.1:8443", proxy=f"http://127.0.0.1:{server.port}")
        )
        await in_thread(seen)  # the proxy has read CONNECT and will never answer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await in_thread(done)  # the proxy saw the client close

    with scripted(fake_proxy([], [], seen=seen, done=done)) as server:
        run(scenario(server))
    assert fd_count() == before
