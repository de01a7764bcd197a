"""The parts of a connection attempt shared by the threaded and the event-loop transports.

Pure where they can be: deadlines and their socket timeouts, the mapping of
socket and TLS failures to the API's errors (after httpcore's
``map_exceptions``), the first hop (proxy or origin), socket options, the TLS
context and the words for TLS errors, and the HTTP CONNECT exchange
(RFC 9110 §9.3.6). ``_transport`` (blocking sockets) and ``_aio_connect``
(asyncio) run the same steps with them, so both fail alike.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fusco_actor._events import NEED_DATA, Informational, ResponseHead
from fusco_actor._exceptions import (
    ConnectError,
    ConnectionClosed,
    FuscoError,
    ProtocolError,
    ProxyError,
    RequestTimeout,
    TLSError,
)

if TYPE_CHECKING:
    from fusco_actor._options import CheckedOptions, Destination
    from fusco_actor._parser import ResponseParser

__all__ = [
    "ConnectInfo",
    "configure_socket",
    "connect_target",
    "default_ssl_context",
    "map_errors",
    "nearest_deadline",
    "remaining",
    "socket_timeout",
    "tls_context",
    "tls_failure",
    "tls_what",
    "tunnel_answered",
    "tunnel_request",
]


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What ``on_connect`` receives after each connection attempt.

    Attributes:
        ok: whether the connection (TCP, proxy tunnel and TLS) was made.
        error: the ``FuscoError`` when it was not, else None.
        connect_time: seconds the attempt took, TLS and any proxy tunnel included.
        address: the peer's socket address when connected, else None.
    """

    ok: bool
    error: FuscoError | None
    connect_time: float
    address: tuple[Any, ...] | None


def remaining(deadline: float | None) -> float | None:
    """Return seconds left until ``deadline`` (never negative), None for no limit."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


def socket_timeout(deadline: float | None) -> float | None:
    """Return a socket timeout for ``deadline``: positive seconds, or None for no limit.

    A zero timeout would put the socket in non-blocking mode, where a spent
    deadline surfaces as ``BlockingIOError`` or ``SSLWantReadError`` (a
    ``ConnectError`` or ``TLSError``), so a spent deadline is raised here,
    before any socket call.

    Raises:
        TimeoutError: the deadline has passed (``map_errors`` names the timeout).
    """
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline passed")
    return left


@contextlib.contextmanager
def map_errors(
    timeout_error: type[FuscoError], what: str, closed_error: type[FuscoError] = ConnectionClosed
) -> Iterator[None]:
    """Translate socket and TLS failures into the API's errors.

    Args:
        timeout_error: the class raised when the socket timed out.
        what: words for the message, e.g. ``"connect to 127.0.0.1:80"``.
        closed_error: the class raised when the peer reset or closed.
    """
    try:
        yield
    except FuscoError:
        raise
    except TimeoutError as exc:
        raise timeout_error(f"{what}: timed out") from exc
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"{what}: certificate verify failed: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise TLSError(f"{what}: TLS failure: {exc.reason or exc}") from exc
    except socket.gaierror as exc:
        raise ConnectError(f"{what}: name resolution failed: {exc.strerror}") from exc
    except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
        raise closed_error(f"{what}: {exc.strerror or exc}") from exc
    except OSError as exc:
        raise ConnectError(f"{what}: {exc.strerror or exc}") from exc


def tls_failure(exc: BaseException | None) -> TLSError | None:
    """Return the ``TLSError`` a connection lost with ``exc`` after its handshake ends in.

    A TLS alert or a bad record on a read (TLS 1.3 refuses a missing client
    certificate only after the client's handshake, on its first read) is the
    request's error, as the threaded engine's read raises it: words
    ``"receive: TLS failure: ..."``. None for anything else: no error, a reset,
    or a TLS-level close (``SSLEOFError``, ``SSLZeroReturnError``), which is a
    close like any other.
    """
    if not isinstance(exc, ssl.SSLError) or isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)
    ):
        return None
    try:
        with map_errors(RequestTimeout, "receive"):
            raise exc
    except TLSError as mapped:
        return mapped
    return None  # pragma: no cover - map_errors maps every SSLError to TLSError


def nearest_deadline(
    connect_timeout: float | None, deadline: float | None
) -> tuple[float | None, bool]:
    """Return (absolute connect deadline, whether connect_timeout is the binding one)."""
    if connect_timeout is None:
        return deadline, False
    own = time.monotonic() + connect_timeout
    if deadline is None or own <= deadline:
        return own, True
    return deadline, False


def configure_socket(sock: socket.socket, options: CheckedOptions) -> None:
    """Apply ``sockopts``, then ``tcp_nodelay``, then bind ``source_address``, before connecting.

    Raises:
        OSError: an option or the bind was refused (the caller closes ``sock``).
    """
    for level, opt, value in options.sockopts:
        sock.setsockopt(level, opt, value)
    if options.tcp_nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if options.source_address is not None:
        sock.bind(options.source_address)


def connect_target(destination: Destination, options: CheckedOptions) -> tuple[str, int, str]:
    """Return (host, port, words for messages) of the first hop: proxy if set, else origin."""
    proxy = options.proxy
    if proxy is not None:
        return proxy.host, proxy.port, f"connect to proxy {proxy.host}:{proxy.port}"
    return destination.host, destination.port, f"connect to {destination.origin}"


def tls_what(destination: Destination, options: CheckedOptions) -> str:
    """Return the words for TLS errors: the origin's, even through a tunnel, and the proxy."""
    what = f"TLS with {destination.origin}"
    if options.proxy is not None:
        what += f" (through proxy {options.proxy.host}:{options.proxy.port})"
    return what


def tls_context(options: CheckedOptions, tunnelled: bool) -> ssl.SSLContext:
    """Return the context for the TLS session with the origin.

    ``proxy_ssl_context`` through a tunnel, else ``ssl_context``, else the
    shared verifying default context.
    """
    context = (options.proxy_ssl_context if tunnelled else None) or options.ssl_context
    return context if context is not None else default_ssl_context()


def _authority(destination: Destination) -> bytes:
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    return f"{host}:{destination.port}".encode("idna")


def tunnel_request(destination: Destination, options: CheckedOptions) -> bytes:
    """Return the CONNECT request (RFC 9110 §9.3.6) for ``destination`` through ``options.proxy``.

    ``Host`` is the same authority (IPv6 in brackets); ``Proxy-Authorization:
    Basic`` carries the proxy URL's user-info, if any.
    """
    proxy = options.proxy
    assert proxy is not None
    authority = _authority(destination)
    lines = [b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (authority, authority)]
    if proxy.username is not None:
        secret = f"{proxy.username}:{proxy.password or ''}".encode()
        lines.append(b"Proxy-Authorization: Basic %s\r\n" % base64.b64encode(secret))
    lines.append(b"\r\n")
    return b"".join(lines)


def tunnel_answered(parser: ResponseParser, destination: Destination) -> bool:
    """Pull the proxy's answer from ``parser``: True once a 2xx came, False while bytes are missing.

    Raises:
        ProxyError: a non-2xx final answer (``status``, ``reason``).
        ProtocolError: a malformed answer, or bytes after the 2xx answer.
    """
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            return False
        if isinstance(event, Informational):
            continue  # RFC 9110 §15.2: 1xx before the final answer are skipped
        if isinstance(event, ResponseHead):
            if not 200 <= event.status < 300:
                raise ProxyError(
                    f"proxy refused CONNECT {_authority(destination).decode()}: "
                    f"{event.status} {event.reason}",
                    event.status,
                    event.reason,
                )
            if parser.buffered:
                raise ProtocolError("proxy sent bytes after its CONNECT answer")
            return True


_DEFAULT_CONTEXT: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """Return the shared verifying context (SNI, hostname check, system CAs)."""
    global _DEFAULT_CONTEXT  # noqa: PLW0603 - built once, lazily
    if _DEFAULT_CONTEXT is None:
        _DEFAULT_CONTEXT = ssl.create_default_context()
    return _DEFAULT_CONTEXT
