"""The asyncio socket, TLS and proxy-tunnel code (with :mod:`~fusco_actor._aio_connect`).

Connections driven by an event loop, for the loop-based client actor; the
threaded client keeps :mod:`~fusco_actor._transport`. Nothing else on the
client side (the embedded server of ``fusco bench`` aside) touches an
asyncio transport or a non-blocking socket.

Theory of operation
-------------------
:func:`open_loop_connection` is the event-loop twin of
:func:`fusco_actor._transport.open_connection`: the same steps, deadlines,
error classes and messages. It imports every pure part from there (the
CONNECT request and the reading of its answer, the TLS context, the words of
the messages, :func:`~fusco_actor._connect_parts.map_errors`) rather than copying it.

The steps live in :mod:`~fusco_actor._aio_connect`:

1. Resolve: an IP literal at once, a name with ``loop.getaddrinfo`` (resolver
   threads; the loop never blocks). For each address in order, a non-blocking
   socket gets the options and ``await loop.sock_connect``; the first that
   connects wins, as in ``_transport._tcp_connect``.
2. ``loop.create_connection(sock=...)`` wraps it in a transport whose
   protocol, :class:`_LoopProtocol`, holds what arrives until the owner
   takes over.
3. An ``https`` origin through a proxy: CONNECT (RFC 9110 §9.3.6) over that
   transport, its answer read with the pure ``ResponseParser``.
4. An ``https`` origin: ``loop.start_tls`` on the same protocol.

The steps run in an inner task. The caller's coroutine waits for it under one
loop timer set from the nearer of ``connect_timeout`` and the request deadline
(``time.monotonic()`` seconds made into a delay: a loop's ``time()`` is its own
clock, and uvloop's is not ``time.monotonic()``). The timer cancels the inner
task, and the step it was in names the timeout. A deadline already spent
raises before any socket exists, and no zero delay is handed to anything.
Cancelling the caller cancels the inner task and waits for its clean-up: the
socket or transport made so far is closed, and one made at that very moment is
aborted. A transport releases its descriptor one loop iteration after it is
aborted (both loops close it from a callback).

After the hand-over the protocol calls the owner on the loop thread:
``on_data``, ``on_eof``, ``on_lost`` and ``on_writable``. Bytes, an EOF or a
loss that came between the handshake and the hand-over are delivered first,
in order, from a ``call_soon`` callback (so after the caller has the
connection; bytes are held while reading is paused). A peer's EOF closes the
connection: see :meth:`_LoopProtocol.eof_received`.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
from typing import TYPE_CHECKING, Any, Final, Protocol

from fusco_actor import _native
from fusco_actor._aio_connect import ConnectSteps
from fusco_actor._connect_parts import map_errors, nearest_deadline, socket_timeout
from fusco_actor._exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    FuscoError,
    RequestTimeout,
)
from fusco_actor._timers import DeadlineTimer

if TYPE_CHECKING:
    from fusco_actor._options import CheckedOptions, Destination

__all__ = ["ConnectionOwner", "LoopConnection", "open_loop_connection"]

WRITE_HIGH_WATER: Final = 65_536  # bytes buffered in the transport before pause_writing
WRITE_LOW_WATER: Final = 16_384  # bytes it drains to before resume_writing (uvloop: 16 bytes)


class ConnectionOwner(Protocol):
    """What a :class:`LoopConnection` reports to; every call runs on the loop thread.

    The calls must not block and should not raise: an exception escaping one
    makes the transport report it to the loop's exception handler and abort,
    and ``on_lost`` then receives it.
    """

    def on_data(self, data: bytes) -> None:
        """Receive bytes from the peer (any slicing)."""

    def on_eof(self) -> None:
        """Hear that the peer closed its sending side; the connection then closes.

        ``on_lost`` may come without it: uvloop reports a TLS peer's TCP close
        that came without close_notify as a loss only.
        """

    def on_lost(self, exc: Exception | None) -> None:
        """Hear that the connection is gone (after ``close``/``abort`` too).

        ``exc`` is None after a clean close, else the raw ``OSError`` or
        ``ssl.SSLError`` (``_connect_parts.map_errors`` turns it into an API error).
        """

    def on_writable(self) -> None:
        """Hear that the write buffer drained below ``WRITE_LOW_WATER`` bytes."""


class _LoopProtocol(asyncio.Protocol):
    """The transport's protocol: buffers until the hand-over, then forwards to the owner."""

    __slots__ = (
        "_early",
        "_early_eof",
        "_early_lost",
        "_lost_exc",
        "_waiter",
        "closed",
        "loop",
        "owner",
        "paused",
        "pending_owner",
        "write_blocked",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.owner: ConnectionOwner | None = None
        self.pending_owner: ConnectionOwner | None = None
        self.closed = False
        self.paused = False
        self.write_blocked = False
        self._early: list[bytes] = []
        self._early_eof = False
        self._early_lost = False
        self._lost_exc: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is not None:
            owner.on_data(data)
            return
        self._early.append(data)
        self._wake()

    def eof_received(self) -> None:
        """Forward the peer's EOF; returning None lets the transport close.

        An HTTP/1.1 client has no use for a half-closed connection: a server
        that stops sending has ended the exchange, so whatever follows must go
        on a new connection (RFC 9112 §9.6), and TLS transports cannot stay
        half-open anyway. So the connection is closed from here on: writes
        raise ``ConnectionClosed`` and ``on_lost`` follows.
        """
        self.closed = True
        owner = self.owner
        if owner is not None:
            owner.on_eof()
            return
        self._early_eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.write_blocked = False
        self._lost_exc = exc  # for LoopConnection.lost_error, and receive_early before the owner
        owner = self.owner
        if owner is not None:
            self.owner = None  # no cycle left behind: owner -> connection -> protocol
            owner.on_lost(exc)
            return
        self._early_lost = True
        self._wake()
        if self.pending_owner is not None:  # the loss is replayed even while paused
            self.loop.call_soon(self.replay)

    def pause_writing(self) -> None:
        self.write_blocked = True

    def resume_writing(self) -> None:
        self.write_blocked = False
        if self.owner is not None:
            self.owner.on_writable()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def receive_early(self) -> bytes:
        """Return the bytes that arrived before the hand-over; ``b""`` once the peer closed.

        Raises:
            Exception: what the connection was lost with (a reset, say).
        """
        while not self._early:
            if self._lost_exc is not None:
                raise self._lost_exc
            if self._early_eof or self._early_lost:
                return b""
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = b"".join(self._early)
        self._early.clear()
        return data

    def hand_over(self, owner: ConnectionOwner) -> None:
        """Forward everything to ``owner`` from now on, what came early first (in a callback)."""
        if not (self._early or self._early_eof or self._early_lost):
            self.owner = owner
            return
        self.pending_owner = owner
        self.loop.call_soon(self.replay)

    def replay(self) -> None:
        """Deliver what came early, in order: held while paused, unless the connection is gone."""
        owner = self.pending_owner
        if owner is None or (self.paused and not self._early_lost):
            return  # resume_reading or connection_lost calls again
        self.pending_owner = None
        early, self._early = self._early, []
        for data in early:
            owner.on_data(data)
        if self._early_eof:
            owner.on_eof()
        if self._early_lost:
            owner.on_lost(self._lost_exc)
        else:
            self.owner = owner


class LoopConnection:
    """One connected asyncio transport (plain or TLS, possibly through a CONNECT tunnel).

    Every method runs on the loop thread. ``address`` is the peer's socket
    address (the proxy's when there is one); ``tunnelled`` says whether it
    runs through a CONNECT tunnel; ``requests_done`` counts the responses read
    completely on it, for the owner's keep-alive bookkeeping (API §4).
    """

    __slots__ = ("_protocol", "_transport", "address", "requests_done", "tunnelled")

    def __init__(
        self,
        transport: asyncio.Transport,
        protocol: _LoopProtocol,
        address: tuple[Any, ...],
        tunnelled: bool,
    ) -> None:
        """Wrap a connected ``transport`` and its protocol (see :func:`open_loop_connection`)."""
        self._transport = transport
        self._protocol = protocol
        self.address = address
        self.tunnelled = tunnelled
        self.requests_done = 0

    def __repr__(self) -> str:
        state = "closed" if self._protocol.closed else "open"
        return f"<LoopConnection {self.address!r} {state} tunnelled={self.tunnelled}>"

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data``; the transport sends what it can at once and buffers the rest.

        Raises:
            ConnectionClosed: the connection is closed (by us, or the peer's EOF
                or loss): nothing can be sent on it any more.
        """
        if self._protocol.closed:
            raise ConnectionClosed("send: the connection is closed")
        try:
            self._transport.write(data)
        except RuntimeError as exc:  # uvloop: the handle closed before connection_lost ran
            raise ConnectionClosed("send: the connection is closed") from exc

    def writelines(self, parts: list[bytes | memoryview]) -> None:
        """Queue several buffers in order: one ``writev``/``sendmsg`` where the loop can.

        Raises:
            ConnectionClosed: the connection is closed.
        """
        if self._protocol.closed:
            raise ConnectionClosed("send: the connection is closed")
        try:
            self._transport.writelines(parts)
        except RuntimeError as exc:
            raise ConnectionClosed("send: the connection is closed") from exc

    @property
    def write_blocked(self) -> bool:
        """Whether more than ``WRITE_HIGH_WATER`` bytes wait to be sent (until ``on_writable``)."""
        return self._protocol.write_blocked

    def pause_reading(self) -> None:
        """Stop ``on_data`` calls until :meth:`resume_reading` (flow control); no-op once closed.

        ``on_eof`` cannot come while paused either; ``on_lost`` still can.
        """
        protocol = self._protocol
        if not protocol.closed and not protocol.paused:
            protocol.paused = True
            if not self._transport.is_closing():  # uvloop raises on a closed handle
                self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume ``on_data`` calls (bytes held meanwhile come first); no-op once closed."""
        protocol = self._protocol
        if protocol.paused:
            protocol.paused = False
            if not protocol.closed and not self._transport.is_closing():
                self._transport.resume_reading()
            if protocol.pending_owner is not None:
                protocol.loop.call_soon(protocol.replay)

    def close(self) -> None:
        """Close after the buffered bytes are sent (TLS: with close_notify); never raises."""
        self._protocol.closed = True
        with contextlib.suppress(Exception):
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping buffered bytes; never raises. ``on_lost(None)`` follows."""
        self._protocol.closed = True
        with contextlib.suppress(Exception):
            self._transport.abort()

    @property
    def lost_error(self) -> Exception | None:
        """Return what the connection was lost with (``OSError``, ``ssl.SSLError``), else None.

        Set once it is lost: an owner that hears of a loss before it holds the
        connection (a TLS alert right after the handshake) finds it here.
        """
        return self._protocol._lost_exc

    def has_unread(self) -> bool:
        """Return whether the socket holds bytes (or a close) the loop has not read yet.

        The loop reads a socket only when it polls: a request written on an idle
        connection in the meantime would take those bytes as its answer. (TLS: a
        record without application data counts too; the caller then reconnects.)
        """
        sock = self._transport.get_extra_info("socket")
        try:
            fd = -1 if sock is None else sock.fileno()
            if fd < 0:
                return True
            poller = _native.poll()  # never gevent's: it would run a hub here
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    @property
    def is_closed(self) -> bool:
        """Whether the connection is closed or closing: by us, or the peer's EOF or loss."""
        return self._protocol.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return the transport's extra info: ``"socket"``, ``"sockname"``, ``"peercert"``..."""
        return self._transport.get_extra_info(name, default)


async def open_loop_connection(
    destination: Destination,
    options: CheckedOptions,
    deadline: float | None,
    owner: ConnectionOwner,
) -> LoopConnection:
    r"""Connect to the destination (through the proxy when one is set) on the running loop.

    Args:
        destination: the origin.
        options: the client's options (connect options, TLS contexts, proxy).
        deadline: the request's, absolute ``time.monotonic()`` seconds; None =
            no limit. The connect also stops at ``options.connect_timeout``
            (seconds) and whichever comes first decides the error.
        owner: receives the connection's events once this returns.

    Returns:
        The connection, with ``owner`` attached.

    Raises:
        ConnectTimeout: ``connect_timeout`` passed first.
        RequestTimeout: the request's deadline passed first (or had passed).
        ConnectError: refused, unreachable, DNS failure.
        TLSError: certificate or handshake failure (naming the origin).
        ProxyError: the proxy refused (``status``, ``reason``) or closed.
        ProtocolError: the proxy's answer was malformed or followed by bytes.
        asyncio.CancelledError: the caller was cancelled; nothing is left open.

    Example::

        conn = await open_loop_connection(parse_destination("http://127.0.0.1:8080"),
                                          parse_options({}), time.monotonic() + 5.0, owner)
        conn.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
    """
    connect_deadline, by_connect_timeout = nearest_deadline(options.connect_timeout, deadline)
    timeout_error: type[FuscoError] = ConnectTimeout if by_connect_timeout else RequestTimeout
    steps = ConnectSteps(destination, options, connect_deadline, timeout_error)
    with map_errors(timeout_error, steps.what, ConnectError):
        delay = socket_timeout(connect_deadline)  # spent: raised before any socket exists
    loop = asyncio.get_running_loop()
    protocol = _LoopProtocol(loop)
    inner = loop.create_task(steps.run(loop, protocol))
    timer = None
    if delay is not None and connect_deadline is not None:
        timer = DeadlineTimer(loop, connect_deadline, inner.cancel)
    try:
        await asyncio.wait((inner,))
    except asyncio.CancelledError:
        inner.cancel()
        await _finished(inner)
        if not inner.cancelled() and inner.exception() is None:
            inner.result()[0].abort()  # made just as we were cancelled: nobody will own it
        raise
    finally:
        if timer is not None:
            timer.cancel()
    if inner.cancelled():  # only the timer cancels it
        with map_errors(timeout_error, steps.what, ConnectError):
            raise TimeoutError("the deadline passed")
    transport, address, tunnelled = inner.result()
    if not transport.is_closing():  # uvloop raises on a closed handle; the owner hears the loss
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER, low=WRITE_LOW_WATER)
    protocol.hand_over(owner)
    return LoopConnection(transport, protocol, address, tunnelled)


async def _finished(task: asyncio.Task[Any]) -> None:
    """Wait until ``task`` is done, through further cancellations (its clean-up is short)."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait((task,))
