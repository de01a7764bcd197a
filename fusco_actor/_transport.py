"""The ONLY socket, TLS and proxy-tunnel code: deadline-based connect, send and receive.

Every blocking call takes an absolute deadline (``time.monotonic()`` seconds,
None = no limit) and one helper, :func:`map_errors`, turns ``OSError``,
``ssl.SSLError`` and socket timeouts into the API's errors (after httpcore's
``map_exceptions``). Which timeout fired is decided by which deadline was the
nearer one when the operation started.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from fusco_actor._connect_parts import (
    configure_socket,
    connect_target,
    map_errors,
    nearest_deadline,
    socket_timeout,
    tls_context,
    tls_what,
    tunnel_answered,
    tunnel_request,
)
from fusco_actor._exceptions import (
    ConnectError,
    ConnectTimeout,
    FuscoError,
    ProxyError,
    RequestTimeout,
)
from fusco_actor._parser import ResponseParser

if TYPE_CHECKING:
    from fusco_actor._options import CheckedOptions, Destination

__all__ = ["Connection", "open_connection", "send_buffers"]

READ_SIZE: Final = 262_144
TIMEOUT_SLACK: Final = 0.005  # seconds a kernel timeout may differ from the deadline


def _mapped(exc: OSError, timeout_error: type[FuscoError], what: str) -> FuscoError:
    """Return the API error for an ``OSError`` raised by a send or receive."""
    try:
        with map_errors(timeout_error, what):
            raise exc
    except FuscoError as mapped:
        return mapped
    raise AssertionError("map_errors always maps an OSError")  # pragma: no cover


def _byte_view(data: memoryview) -> memoryview:
    """Return ``data`` as a flat view of bytes (copying a non-contiguous one)."""
    if data.format == "B" and data.ndim == 1:
        return data
    return data.cast("B") if data.c_contiguous else memoryview(data.tobytes())


class Connection:
    """One connected socket (plain or TLS) with deadline-based I/O.

    ``requests_done`` counts the responses completely read on it, so that the
    client can tell a reused keep-alive connection from a fresh one (API §4).
    """

    __slots__ = ("_armed", "_timeout", "address", "plain", "requests_done", "sock", "tunnelled")

    def __init__(self, sock: socket.socket, address: tuple[Any, ...], tunnelled: bool) -> None:
        """Wrap a connected socket; ``address`` is the peer's socket address."""
        self.sock = sock
        self.address = address
        self.tunnelled = tunnelled
        self.requests_done = 0
        # A plain socket stays in blocking mode with kernel timeouts (SO_RCVTIMEO,
        # SO_SNDTIMEO): one syscall per send or receive instead of Python's
        # ioctl + poll + call. TLS sockets use Python's socket timeout.
        self.plain = not isinstance(sock, ssl.SSLSocket)
        self._armed = {socket.SO_RCVTIMEO: 0.0, socket.SO_SNDTIMEO: 0.0}  # 0 = none
        if self.plain:
            sock.settimeout(None)
        self._timeout: float | None = sock.gettimeout()

    def _set_timeout(self, deadline: float | None) -> None:
        # settimeout() costs a syscall even when nothing changes: skip None -> None.
        if deadline is None:
            if self._timeout is not None:
                self.sock.settimeout(None)
                self._timeout = None
            return
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise RequestTimeout("timed out")
        self.sock.settimeout(timeout)
        self._timeout = timeout

    def _arm(self, option: int, deadline: float | None) -> None:
        """Set a kernel timeout for ``deadline``, unless the one set is within TIMEOUT_SLACK.

        Raises:
            RequestTimeout: the deadline has passed.
        """
        if deadline is None:
            want = 0.0
        else:
            want = deadline - time.monotonic()
            if want <= 0:
                raise RequestTimeout("timed out")
        current = self._armed[option]
        if (want == 0.0) == (current == 0.0) and abs(current - want) <= TIMEOUT_SLACK:
            return
        seconds = int(want)
        micros = max(int((want - seconds) * 1e6), 1 if want else 0)
        self.sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", seconds, micros))
        self._armed[option] = want

    def send_all(self, data: bytes | bytearray | memoryview, deadline: float | None) -> None:
        """Write all of ``data`` before ``deadline``, however slowly the peer reads.

        Each ``send`` is given only the time left (``sendall`` would give every
        partial write a fresh timeout, so a peer reading a little at a time
        could hold the send far past the deadline).

        Raises:
            RequestTimeout: the deadline passed.
            ConnectionClosed: the peer reset or closed the connection.
        """
        sock = self.sock
        # Partial sends are counted in bytes: a memoryview must count in bytes too.
        view = data if not isinstance(data, memoryview) else _byte_view(data)
        try:
            while True:
                if self.plain:
                    self._arm(socket.SO_SNDTIMEO, deadline)
                else:
                    self._set_timeout(deadline)
                try:
                    sent = sock.send(view)
                except BlockingIOError:  # SO_SNDTIMEO ran out; early by at most the slack
                    if deadline is not None and time.monotonic() >= deadline:
                        raise RequestTimeout("send: timed out") from None
                    continue
                if sent >= len(view):  # len() counts bytes for every view here
                    return
                view = memoryview(view)[sent:]
        except OSError as exc:
            raise _mapped(exc, RequestTimeout, "send") from exc

    def _receive(self, read: Any, arg: Any, deadline: float | None) -> Any:
        if not self.plain:
            self._set_timeout(deadline)
            return read(arg)
        while True:
            self._arm(socket.SO_RCVTIMEO, deadline)
            try:
                return read(arg)
            except BlockingIOError:  # SO_RCVTIMEO ran out; early by at most the slack
                if deadline is None or time.monotonic() >= deadline:
                    raise RequestTimeout("receive: timed out") from None

    def recv(self, deadline: float | None, size: int = READ_SIZE) -> bytes:
        """Return up to ``size`` bytes; ``b""`` when the peer closed.

        A reset by the peer reads as a close: both mean no more bytes.

        Raises:
            RequestTimeout: the deadline passed with nothing received.
        """
        try:
            data: bytes = self._receive(self.sock.recv, size, deadline)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return b""
        except OSError as exc:
            raise _mapped(exc, RequestTimeout, "receive") from exc
        return data

    def recv_into(self, view: memoryview, deadline: float | None) -> int:
        """Read into ``view``; return the byte count, 0 when the peer closed.

        Raises:
            RequestTimeout: the deadline passed with nothing received.
        """
        try:
            n: int = self._receive(self.sock.recv_into, view, deadline)
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
            return 0
        except OSError as exc:
            raise _mapped(exc, RequestTimeout, "receive") from exc
        return n

    def is_dropped(self) -> bool:
        """Return whether an idle connection was closed (or sent bytes) by the peer.

        On TLS a readable socket may hold only records without application
        data, such as the session tickets a TLS 1.3 server sends after the
        handshake (RFC 8446 §4.6.1). Those are read here and do not count:
        only a close or unexpected application bytes do.
        """
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        try:
            readable = _is_readable(sock)
        except (OSError, ValueError):
            return True
        if not readable or not isinstance(sock, ssl.SSLSocket):
            return readable
        previous = sock.gettimeout()
        try:
            sock.setblocking(False)
            sock.recv(1)  # any byte, or b"" for a close: either way unusable
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False  # only non-application records were there
        except OSError:
            return True
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(previous)
        return True

    def interrupt(self) -> None:
        """Shut the socket down from any thread: a send or receive blocked on it returns now."""
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, even under TLS: the SSL object is left alone
            # for the thread that may be inside it.
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the socket; never raises."""
        with contextlib.suppress(OSError):
            self.sock.close()


def _is_readable(sock: socket.socket) -> bool:
    """Return whether ``sock`` has bytes (or a close) to read, without waiting.

    ``poll`` rather than ``select``: select cannot watch a descriptor above
    FD_SETSIZE (1023), which a process with many open files reaches.
    """
    if _poll is None:  # pragma: no cover - platforms without poll (Windows)
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    poller = _poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_poll = getattr(select, "poll", None)


def _tcp_connect(
    host: str, port: int, options: CheckedOptions, deadline: float | None, what: str
) -> socket.socket:
    infos = socket.getaddrinfo(host, port, options.family, socket.SOCK_STREAM)
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            configure_socket(sock, options)
            sock.settimeout(socket_timeout(deadline))
            sock.connect(addr)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last if last is not None else OSError(f"{what}: no address found")


def _tunnel(
    sock: socket.socket, destination: Destination, options: CheckedOptions, deadline: float | None
) -> None:
    """Open an HTTP CONNECT tunnel (RFC 9110 §9.3.6) through the proxy on ``sock``.

    Raises:
        ProxyError: a non-2xx answer (``status``, ``reason``) or the proxy closing.
    """
    sock.settimeout(socket_timeout(deadline))
    try:
        sock.sendall(tunnel_request(destination, options))
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
        raise ProxyError("proxy closed before CONNECT was sent", None, "connection closed") from exc
    parser = ResponseParser(options.max_head_size)
    parser.expect(b"CONNECT")
    while not tunnel_answered(parser, destination):
        sock.settimeout(socket_timeout(deadline))
        try:
            data = sock.recv(65_536)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as exc:
            raise ProxyError("proxy closed the tunnel", None, "connection closed") from exc
        if not data:
            # Before a final answer any close is the proxy's: after a 1xx
            # or mid-head too (the parser would call those truncated).
            raise ProxyError("proxy closed before answering CONNECT", None, "closed")
        parser.feed(data)


def open_connection(
    destination: Destination, options: CheckedOptions, deadline: float | None
) -> Connection:
    """Connect to the destination (through the proxy when one is set).

    ``deadline`` is the request's; the connect also stops at ``connect_timeout``
    and whichever comes first decides the error.

    Raises:
        ConnectTimeout: ``connect_timeout`` passed first.
        RequestTimeout: the request's deadline passed first.
        ConnectError: refused, unreachable, DNS failure.
        TLSError: certificate or handshake failure.
        ProxyError: the proxy refused or closed the tunnel.
    """
    connect_deadline, by_connect_timeout = nearest_deadline(options.connect_timeout, deadline)
    timeout_error: type[FuscoError] = ConnectTimeout if by_connect_timeout else RequestTimeout
    proxy = options.proxy
    target_host, target_port, what = connect_target(destination, options)
    with map_errors(timeout_error, what, ConnectError):
        sock = _tcp_connect(target_host, target_port, options, connect_deadline, what)
    try:
        with map_errors(timeout_error, what, ConnectError):
            address = sock.getpeername()
            tunnelled = False
            if proxy is not None and destination.is_ssl:
                _tunnel(sock, destination, options, connect_deadline)
                tunnelled = True
        if destination.is_ssl:
            # A certificate or handshake failure is the origin's, even through a tunnel.
            with map_errors(timeout_error, tls_what(destination, options), ConnectError):
                context = tls_context(options, tunnelled)
                sock = context.wrap_socket(
                    sock, server_hostname=destination.host, do_handshake_on_connect=False
                )
                sock.settimeout(socket_timeout(connect_deadline))
                sock.do_handshake()
    except BaseException:
        sock.close()
        raise
    return Connection(sock, address, tunnelled)


def send_buffers(
    conn: Connection, buffers: Sequence[bytes | memoryview], deadline: float | None
) -> None:
    """Write several buffers in order (one ``sendall`` each; small ones joined)."""
    if len(buffers) == 1:
        conn.send_all(buffers[0], deadline)
        return
    total = sum(len(b) for b in buffers)
    if total <= 65_536:
        conn.send_all(b"".join(buffers), deadline)
        return
    for buf in buffers:
        conn.send_all(buf, deadline)
