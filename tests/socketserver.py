"""A loopback socket server for socket-level tests (after urllib3's dummyserver/socketserver.py).

Each test scripts the server side as a *handler*, ``handler(listener, server)``,
that runs in a thread of its own: it accepts connections with
:meth:`SocketServerThread.accept`, reads requests with :func:`read_request` and
writes whatever bytes the scenario needs. Every connection records the bytes it
received, the bytes it sent (in order, as a transcript) and which side closed
first, so that tests can assert on the wire.

Every wait is bounded: blocking reads and accepts wake up every ``POLL``
seconds to look at the ``quit`` event, and give up after ``LONG_TIMEOUT``.
Leaving the ``with`` block sets ``quit``, joins the thread (or fails the test),
records any connection still waiting in the listen backlog (so a test can
assert that the client made no other connection), and re-raises whatever the
handler raised.

Example::

    def handler(listener, server):
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        ...  # talk to ("127.0.0.1", server.port)
    assert len(server.connections) == 1
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

import pytest

__all__ = [
    "LONG_TIMEOUT",
    "SHORT_TIMEOUT",
    "IncompleteRequest",
    "ServerConnection",
    "ServerStopped",
    "SocketServerThread",
    "echo_target",
    "has_ipv6",
    "ok",
    "parse_request",
    "read_request",
    "refused_port",
    "stalled_listener",
    "target_of",
]

SHORT_TIMEOUT: Final = 2.0  # seconds: something that should happen at once
LONG_TIMEOUT: Final = 10.0  # seconds: the most any single wait may take before the test fails
POLL: Final = 0.05  # seconds between looks at the quit event while blocked

Handler = Callable[[socket.socket, "SocketServerThread"], Any]


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    """Return whether ``sock`` becomes readable within ``timeout`` seconds (any fd number)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))


class ServerStopped(Exception):
    """Raised inside a handler blocked on I/O when the test sets ``quit``."""


class IncompleteRequest(Exception):
    """Raised by :func:`read_request` when the peer closed in the middle of a request.

    Attributes:
        partial: the bytes of the request received before the close.
    """

    def __init__(self, partial: bytes) -> None:
        super().__init__(f"peer closed after {len(partial)} bytes of a request")
        self.partial = partial


class ServerConnection:
    """One accepted connection: recording I/O with bounded waits.

    Attributes:
        sock: the accepted socket.
        index: 0 for the first connection the server accepted, 1 for the next...
        received: every byte read from the peer, in order.
        transcript: ``("recv" | "send", bytes)`` entries in the order they happened.
        requests: each complete request :func:`read_request` returned.
        closed_by_peer: set when a read returned ``b""`` (or a reset) before
            the server closed its side.
        closed_by_server: set when the server closed the connection before it
            had read the peer's close.
    """

    def __init__(self, sock: socket.socket, index: int, quit_event: threading.Event) -> None:
        self.sock = sock
        self.index = index
        self.received = bytearray()
        self.transcript: list[tuple[str, bytes]] = []
        self.requests: list[bytes] = []
        self.closed_by_peer = threading.Event()
        self.closed_by_server = threading.Event()
        self._buffer = bytearray()
        self._quit = quit_event
        self._closed = False
        sock.setblocking(False)

    def __repr__(self) -> str:
        who = "peer" if self.closed_by_peer.is_set() else "server" if self._closed else "nobody"
        return f"<ServerConnection #{self.index} received={len(self.received)} closed by {who}>"

    # -- waiting -------------------------------------------------------------

    def _wait_readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the socket to become readable."""
        limit = time.monotonic() + timeout
        while True:
            if self._quit.is_set():
                raise ServerStopped
            left = limit - time.monotonic()
            if left <= 0:
                return False
            if wait_readable(self.sock, min(POLL, left)):
                return True

    def readable(self, timeout: float) -> bool:
        """Return whether bytes (or a close) arrive within ``timeout`` seconds, reading nothing."""
        return bool(self._buffer) or self._wait_readable(timeout)

    def _recv_more(self, timeout: float = LONG_TIMEOUT) -> bool:
        """Read once into the buffer; return False when the peer closed.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        if not self._wait_readable(timeout):
            raise TimeoutError(f"connection #{self.index}: nothing received in {timeout} s")
        try:
            data = self.sock.recv(65_536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            if not self._closed:
                self.closed_by_peer.set()
            return False
        self.received += data
        self._buffer += data
        self.transcript.append(("recv", data))
        return True

    # -- reading -------------------------------------------------------------

    def read_until(self, marker: bytes, timeout: float = LONG_TIMEOUT) -> bytes:
        """Return the buffered bytes up to and including ``marker``.

        Raises:
            IncompleteRequest: the peer closed first.
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        while True:
            at = self._buffer.find(marker)
            if at >= 0:
                end = at + len(marker)
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                return data
            if not self._recv_more(timeout):
                raise IncompleteRequest(bytes(self._buffer))

    def read_exactly(self, n: int, timeout: float = LONG_TIMEOUT) -> bytes:
        """Return the next ``n`` bytes.

        Raises:
            IncompleteRequest: the peer closed first.
            TimeoutError: nothing arrived within ``timeout`` seconds.
        """
        while len(self._buffer) < n:
            if not self._recv_more(timeout):
                raise IncompleteRequest(bytes(self._buffer))
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def read_until_closed(self, timeout: float = LONG_TIMEOUT) -> bytes:
        """Return every byte that arrives until the peer closes its side.

        Raises:
            TimeoutError: the peer kept the connection open for ``timeout`` seconds.
        """
        while self._recv_more(timeout):
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def wait_closed_by_peer(self, timeout: float = LONG_TIMEOUT) -> bytes:
        """Wait until the peer closes; return the bytes that came meanwhile."""
        return self.read_until_closed(timeout)

    # -- writing -------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        """Write all of ``data`` (bounded by ``LONG_TIMEOUT``)."""
        self.transcript.append(("send", data))
        self.sock.settimeout(LONG_TIMEOUT)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)

    def close(self) -> None:
        """Close the connection from the server side (records who closed first)."""
        if not self._closed and not self.closed_by_peer.is_set():
            self.closed_by_server.set()
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


def parse_request(raw: bytes) -> tuple[bytes, dict[str, bytes], bytes]:
    """Split a raw request into (request line, headers with lower-cased names, rest)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict[str, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.decode("latin-1").lower()
        headers[key] = headers[key] + b", " + value.strip() if key in headers else value.strip()
    return lines[0], headers, rest


def read_request(conn: ServerConnection, timeout: float = LONG_TIMEOUT) -> bytes:
    """Read one whole request (head, then a body by Content-Length or chunked) and return its bytes.

    Raises:
        IncompleteRequest: the peer closed in the middle (``partial`` holds what came).
        TimeoutError: nothing arrived within ``timeout`` seconds.
    """
    got = bytearray()
    try:
        head = conn.read_until(b"\r\n\r\n", timeout)
        got += head
        _, headers, _ = parse_request(head)
        if headers.get("transfer-encoding", b"").lower() == b"chunked":
            while True:
                size_line = conn.read_until(b"\r\n", timeout)
                got += size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers, then the blank line
                        line = conn.read_until(b"\r\n", timeout)
                        got += line
                        if line == b"\r\n":
                            break
                    break
                got += conn.read_exactly(size + 2, timeout)
        else:
            got += conn.read_exactly(int(headers.get("content-length", b"0")), timeout)
    except IncompleteRequest as exc:
        raise IncompleteRequest(bytes(got) + exc.partial) from None
    request = bytes(got)
    conn.requests.append(request)
    return request


def ok(body: bytes = b"ok", extra: bytes = b"") -> bytes:
    """Return an HTTP/1.1 200 response with a Content-Length body (``extra``: header lines)."""
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


def target_of(raw: bytes) -> bytes:
    """Return the request target of a raw request."""
    return parse_request(raw)[0].split(b" ")[1]


def echo_target(conn: ServerConnection) -> None:
    """Answer every request on ``conn`` with its own target as the body, until the peer closes."""
    while True:
        try:
            raw = read_request(conn)
        except IncompleteRequest as exc:
            assert exc.partial == b"", f"peer closed mid-request: {exc.partial!r}"
            return
        conn.sendall(ok(target_of(raw)))


class SocketServerThread(threading.Thread):
    """Run ``handler(listener, server)`` in a thread over a listening loopback socket.

    Args:
        handler: the scripted server side; it returns when its scenario is done.
        host: ``"127.0.0.1"`` (or another 127.0.0.0/8 address) or ``"::1"``.
        backlog: the listen backlog.
        port: the port to bind; 0 (the default) lets the kernel choose.

    Attributes:
        port: the bound port.
        ready: set once the thread runs the handler.
        handler_done: set once the handler returned (or raised).
        quit: set by the test's teardown; blocked reads raise ``ServerStopped``.
        connections: every connection accepted (by the handler or, at
            teardown, found waiting in the backlog), in order.
        error: what the handler raised, if anything (re-raised at teardown).
    """

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", backlog: int = 16, port: int = 0
    ) -> None:
        name = getattr(handler, "__name__", "handler")
        super().__init__(name=f"SocketServerThread-{name}", daemon=True)
        self.handler = handler
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host, port))
            self.listener.listen(backlog)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.port: int = self.listener.getsockname()[1]
        self.ready = threading.Event()
        self.quit = threading.Event()
        self.handler_done = threading.Event()
        self.connections: list[ServerConnection] = []
        self.error: BaseException | None = None

    @property
    def url(self) -> str:
        """Return ``http://host:port`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def accept(self, timeout: float = LONG_TIMEOUT) -> ServerConnection:
        """Accept the next connection within ``timeout`` seconds.

        Raises:
            TimeoutError: no connection came.
            ServerStopped: the test set ``quit``.
        """
        limit = time.monotonic() + timeout
        while True:
            if self.quit.is_set():
                raise ServerStopped
            left = limit - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no connection accepted in {timeout} s")
            if wait_readable(self.listener, min(POLL, left)):
                try:
                    sock, _ = self.listener.accept()
                except BlockingIOError:
                    continue
                return self._record(sock)

    def _record(self, sock: socket.socket) -> ServerConnection:
        conn = ServerConnection(sock, len(self.connections), self.quit)
        self.connections.append(conn)
        return conn

    def run(self) -> None:
        """Run the handler (server thread); then drain the backlog and close everything."""
        self.ready.set()
        try:
            self.handler(self.listener, self)
        except ServerStopped:
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            self.handler_done.set()
            self.quit.wait(LONG_TIMEOUT)
            self._drain_backlog()
            for conn in self.connections:
                conn.close()
            self.listener.close()

    def _drain_backlog(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self._record(sock)

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> SocketServerThread:
        self.start()
        if not self.ready.wait(SHORT_TIMEOUT):
            pytest.fail("the socket server thread did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self.error is not None:
            # The handler's failure explains the test's own (chained as __context__).
            raise self.error

    def stop(self) -> None:
        """Set ``quit`` and join the thread; fail the test if it does not end."""
        self.quit.set()
        self.join(LONG_TIMEOUT)
        if self.is_alive():
            pytest.fail(f"{self.name} did not stop within {LONG_TIMEOUT} s")

    def wait_done(self, timeout: float = LONG_TIMEOUT) -> None:
        """Wait until the handler returned (the thread then waits for ``quit``)."""
        if not self.handler_done.wait(timeout):
            pytest.fail(f"the handler did not finish within {timeout} s")


def has_ipv6() -> bool:
    """Return whether a socket can be bound to ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def refused_port() -> Any:
    """Yield a loopback port that refuses connections: bound, never listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def fill_backlog(port: int, fillers: list[socket.socket]) -> bool:
    """Connect to loopback ``port`` until a connect hangs (its accept queue is full).

    The sockets go into ``fillers`` (the caller closes them); False if 16
    connects all completed and the backlog never filled.
    """
    for _ in range(16):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        fillers.append(filler)
        filler.connect_ex(("127.0.0.1", port))
        _, writable, _ = select.select([], [filler], [], 0.2)
        if not writable:
            return True  # this one hangs: the backlog is full
    return False


@contextlib.contextmanager
def stalled_listener() -> Any:
    """Yield a loopback port whose connects hang: ``listen(0)`` with the backlog filled.

    Linux drops a SYN when the accept queue is full, so a new connect neither
    completes nor fails until the client gives up. Stays on 127.0.0.1.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        if not fill_backlog(port, fillers):
            pytest.skip("could not fill the listen backlog on this kernel")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
