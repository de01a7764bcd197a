"""The connect steps of :mod:`fusco_actor._aio_transport`: resolve, TCP, CONNECT tunnel, TLS.

They mirror ``_transport.open_connection`` step by step and import its pure
parts; :func:`fusco_actor._aio_transport.open_loop_connection` runs them in an
inner task under the deadline's timer, which is why none of them sets a
timeout of its own (but the loop's TLS handshake limit, set just after it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from typing import TYPE_CHECKING, Any, Final

from fusco_actor import _native
from fusco_actor._connect_parts import (
    configure_socket,
    connect_target,
    map_errors,
    socket_timeout,
    tls_context,
    tls_what,
    tunnel_answered,
    tunnel_request,
)
from fusco_actor._exceptions import ConnectError, FuscoError, ProxyError, TLSError
from fusco_actor._parser import ResponseParser

if TYPE_CHECKING:
    from fusco_actor._aio_transport import _LoopProtocol
    from fusco_actor._options import CheckedOptions, Destination

__all__ = ["ConnectSteps"]

HANDSHAKE_SLACK: Final = 1.0  # seconds: the loop's own handshake limit trails our timer
NO_DEADLINE_HANDSHAKE: Final = 86_400.0  # seconds: loops insist on a limit (asyncio: 60 s)
_CLOSED_ERRORS: Final = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ConnectSteps:
    """The steps of one connection attempt (run as a task); ``what`` names the current one.

    Args:
        destination: the origin.
        options: the client's options.
        deadline: the nearer of the connect and request deadlines, absolute
            ``time.monotonic()`` seconds (None = none); it only sizes the
            loop's TLS handshake limit.
        timeout_error: the class a timeout maps to.
    """

    __slots__ = ("deadline", "destination", "options", "timeout_error", "what")

    def __init__(
        self,
        destination: Destination,
        options: CheckedOptions,
        deadline: float | None,
        timeout_error: type[FuscoError],
    ) -> None:
        self.destination = destination
        self.options = options
        self.deadline = deadline
        self.timeout_error = timeout_error
        self.what = connect_target(destination, options)[2]

    async def run(
        self, loop: asyncio.AbstractEventLoop, protocol: _LoopProtocol
    ) -> tuple[asyncio.Transport, tuple[Any, ...], bool]:
        """Connect, tunnel and handshake with ``protocol`` as the transport's protocol.

        Returns:
            (the transport, the peer's address, whether it is tunnelled).

        Raises:
            FuscoError: as ``open_loop_connection``; whatever was made is closed first.
        """
        destination, options = self.destination, self.options
        host, port, what = connect_target(destination, options)
        with map_errors(self.timeout_error, what, ConnectError):
            sock = await _tcp_connect(loop, host, port, options, what)
        transport: asyncio.Transport | None = None
        try:
            with map_errors(self.timeout_error, what, ConnectError):
                address = sock.getpeername()
                nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                transport, _ = await loop.create_connection(lambda: protocol, sock=sock)
                _keep_nodelay(sock, nodelay)
                tunnelled = options.proxy is not None and destination.is_ssl
                if tunnelled:
                    await open_tunnel(protocol, transport, destination, options)
            if destination.is_ssl:
                # A certificate or handshake failure is the origin's, even through a tunnel;
                # asyncio reports a close during the handshake as a reset: a TLSError too.
                self.what = tls_what(destination, options)
                with map_errors(self.timeout_error, self.what, TLSError):
                    tls = await loop.start_tls(
                        transport,
                        protocol,
                        tls_context(options, tunnelled),
                        server_hostname=destination.host,
                        ssl_handshake_timeout=_handshake_limit(self.deadline),
                    )
                    if tls is None:  # pragma: no cover - only when the loop was closing
                        raise ConnectionAbortedError("the transport closed during the handshake")
                    transport = tls
        except BaseException:
            if transport is None:
                # Safe after a failed create_connection too: asyncio has already dropped the
                # descriptor from its selector, and uvloop holds an io-ref and detaches.
                sock.close()
            else:
                transport.abort()
            raise
        return transport, address, tunnelled


def _handshake_limit(deadline: float | None) -> float:
    """Return the loop's own handshake limit (seconds): just after our timer, which fires first.

    Raises:
        TimeoutError: the deadline has passed.
    """
    left = socket_timeout(deadline)
    return NO_DEADLINE_HANDSHAKE if left is None else left + HANDSHAKE_SLACK


def _keep_nodelay(sock: socket.socket, nodelay: int) -> None:
    """Put back the TCP_NODELAY the options chose: uvloop's transports turn it on.

    ``sock`` is the socket the transport was made from (it stays valid while the
    transport lives), not ``get_extra_info("socket")``: uvloop's stand-in makes a
    ``socket.socket`` per call, a gevent one (with a hub) in a patched process.
    """
    if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)


async def _resolve(
    loop: asyncio.AbstractEventLoop, host: str, port: int, family: int
) -> list[tuple[Any, ...]]:
    """Return ``getaddrinfo`` results for a stream socket, in the resolver's order.

    An IP literal is answered at once (``AI_NUMERICHOST`` cannot block); a name
    goes to the loop's resolver threads.

    Raises:
        socket.gaierror: the name did not resolve (``map_errors`` names it).
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return list(await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM))
    numeric = socket.AI_NUMERICHOST
    return list(_native.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, numeric))


async def _sock_connect(loop: asyncio.AbstractEventLoop, sock: socket.socket, addr: Any) -> None:
    """Connect the non-blocking ``sock`` to the resolved ``addr``, as ``loop.sock_connect`` does.

    uvloop's ``sock_connect`` resolves ``addr`` again, through libuv's resolver
    threads (four of them, started on the first connect, and a hand-off per
    connect); the address is resolved already, so it is connected here.

    Raises:
        OSError: the connect failed (``TimeoutError`` for ``ETIMEDOUT``).
    """
    try:
        sock.connect(addr)
    except (BlockingIOError, InterruptedError):
        pass  # EINPROGRESS: wait until the socket is writable
    else:
        return
    fd = sock.fileno()
    writable: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not writable.done():
            writable.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await writable
    finally:
        loop.remove_writer(fd)
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))


async def _tcp_connect(
    loop: asyncio.AbstractEventLoop, host: str, port: int, options: CheckedOptions, what: str
) -> socket.socket:
    """Connect a non-blocking socket to the first address of ``host`` that answers.

    Raises:
        OSError: the last address's failure (``map_errors`` names it).
    """
    last: OSError | None = None
    for family, kind, proto, _, addr in await _resolve(loop, host, port, options.family):
        sock: socket.socket = _native.socket(family, kind, proto)  # never gevent's
        try:
            configure_socket(sock, options)
            sock.setblocking(False)
            await _sock_connect(loop, sock, addr)
        except TimeoutError:  # the kernel gave up (ETIMEDOUT): a timeout, not the next address
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            # The loops word a refusal "Connect call failed (addr)"; the threaded
            # client says the errno's own words, and so must this one.
            last = OSError(exc.errno, os.strerror(exc.errno)) if exc.errno else exc
            continue
        except BaseException:  # cancelled: the half-made socket must not leak
            sock.close()
            raise
        return sock
    raise last if last is not None else OSError(f"{what}: no address found")


async def open_tunnel(
    protocol: _LoopProtocol,
    transport: asyncio.Transport,
    destination: Destination,
    options: CheckedOptions,
) -> None:
    """Open an HTTP CONNECT tunnel (RFC 9110 §9.3.6) through the proxy on ``transport``.

    Raises:
        ProxyError: a non-2xx answer (``status``, ``reason``) or the proxy closing.
        ProtocolError: a malformed answer, or bytes after it.
    """
    transport.write(tunnel_request(destination, options))
    parser = ResponseParser(options.max_head_size)
    parser.expect(b"CONNECT")
    while not tunnel_answered(parser, destination):
        try:
            data = await protocol.receive_early()
        except _CLOSED_ERRORS as exc:
            raise ProxyError("proxy closed the tunnel", None, "connection closed") from exc
        if not data:
            # Before a final answer any close is the proxy's: after a 1xx or mid-head too.
            raise ProxyError("proxy closed before answering CONNECT", None, "closed")
        parser.feed(data)
