"""Wire: one open connection and its parser, writing requests and reading responses.

The client actor owns at most one :class:`Wire` at a time and drives it from
its own thread. A wire knows nothing of queues, retries or futures: it writes
the requests it is given (several at once when pipelining), reads responses
in order, and reports a connection that closed before a response began with
:class:`ClosedEarly`, so the actor can apply the send-retry rule.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from fusco_actor._cookies import CookieJar
from fusco_actor._encoder import LAST_CHUNK, chunk_frames, encode_head
from fusco_actor._events import (
    NEED_DATA,
    BodyChunk,
    EndOfResponse,
    Informational,
    PeerClosed,
    ResponseHead,
)
from fusco_actor._exceptions import BadArgument, ConnectionClosed, ProtocolError, RequestTimeout
from fusco_actor._headers import Headers
from fusco_actor._parser import ResponseParser
from fusco_actor._response import Response
from fusco_actor._transport import READ_SIZE, Connection, send_buffers

if TYPE_CHECKING:
    from fusco_actor._encoder import PreparedRequest
    from fusco_actor._inbox import Call
    from fusco_actor._options import CheckedOptions, Destination

__all__ = ["BodyStreamFailed", "ClosedEarly", "Origin", "Wire"]

EXPECT_CONTINUE_WAIT: Final = 1.0  # seconds an Expect: 100-continue body waits for the 100
DIRECT_READ_MIN: Final = 65_536  # bytes of Content-Length body read past the parser
SCRATCH_MAX: Final = 8 * 1_048_576  # bodies up to this size reuse one receive buffer
HEAD_READ_SIZE: Final = 65_536  # bytes asked of recv() while a head is awaited
HEADS_KEPT: Final = 256  # request heads an Origin keeps built (without cookies)
_NO_TRAILERS: Final = Headers()


class BodyStreamFailed(Exception):
    """The caller's body iterable raised; carries the caller's exception."""

    def __init__(self, original: BaseException) -> None:
        """Wrap the caller's exception."""
        super().__init__(repr(original))
        self.original = original


class ClosedEarly(Exception):
    """The connection closed before any byte of the response arrived."""

    def __init__(self, send_failed: bool) -> None:
        """Record whether the write itself failed (the server cannot have the request)."""
        super().__init__("connection closed before any byte of the response")
        self.send_failed = send_failed


class Origin:
    """What every request of one client shares: Host, proxy form, cookie jar."""

    __slots__ = ("_heads", "destination", "host_field", "jar", "proxy_fields", "target_prefix")

    def __init__(self, destination: Destination, options: CheckedOptions) -> None:
        """Precompute the per-client parts of every request head.

        With ``use_cookies`` the jar is the handle's (or its pool's), so that
        restarts and a pool's clients share it; one of its own otherwise.
        """
        self.destination = destination
        self.host_field = destination.host_field
        jar = options.cookie_jar
        if jar is None and options.use_cookies:
            jar = CookieJar(destination.host)
        self.jar = jar
        self.target_prefix = b""
        self.proxy_fields = b""
        # Without cookies a head depends on the prepared request alone: built once for
        # each (immutable, usually cached) PreparedRequest, kept alive by the entry.
        self._heads: dict[int, tuple[PreparedRequest, bytes]] = {}
        proxy = options.proxy
        if proxy is not None and not destination.is_ssl:
            # RFC 9112 §3.2.2: absolute-form when talking to a forward proxy.
            self.target_prefix = destination.origin.encode("idna")
            if proxy.username is not None:
                secret = f"{proxy.username}:{proxy.password or ''}".encode()
                self.proxy_fields = b"Proxy-Authorization: Basic %s\r\n" % base64.b64encode(secret)

    def head(self, call: Call) -> bytes:
        """Return the whole request head for ``call``."""
        prepared = call.prepared
        if self.jar is None:
            known = self._heads.get(id(prepared))
            if known is not None and known[0] is prepared:
                return known[1]
            head = self._encode(prepared, None)
            if len(self._heads) >= HEADS_KEPT:
                self._heads.clear()
            self._heads[id(prepared)] = (prepared, head)
            return head
        return self._encode(
            prepared,
            self.jar.header_value(
                self.destination.host,
                prepared.target.decode("latin-1"),
                self.destination.is_ssl,
                time.time(),
            ),
        )

    def _encode(self, prepared: PreparedRequest, cookie: str | None) -> bytes:
        """Return the head of ``prepared`` with this origin's Host, target form and ``cookie``."""
        target = None
        if self.target_prefix and prepared.target != b"*":
            target = self.target_prefix + prepared.target
        return encode_head(prepared, self.host_field, cookie, target, self.proxy_fields)

    def store_cookies(self, call: Call, head: ResponseHead) -> None:
        """Keep the response's cookies when ``use_cookies`` is on."""
        if self.jar is None:
            return
        cookies = head.headers.get_all("set-cookie")
        if cookies:
            self.jar.store(
                self.destination.host,
                call.prepared.target.decode("latin-1"),
                self.destination.is_ssl,
                cookies,
                time.time(),
            )


class Wire:
    """An open connection with its response parser (actor thread only)."""

    __slots__ = ("_scratch", "conn", "origin", "parser", "write_failed")

    def __init__(
        self, conn: Connection, origin: Origin, max_head_size: int, max_body_size: int | None
    ) -> None:
        """Start with an empty parser on a freshly opened connection (sizes in bytes)."""
        self.conn = conn
        self.origin = origin
        self.parser = ResponseParser(max_head_size, max_body_size)
        self.write_failed = False  # a pipelined write failed: read what came, write no more
        self._scratch = bytearray()  # receive buffer for large bodies, reused

    def close(self) -> None:
        """Close the connection; never raises."""
        self.conn.close()

    # -- writing ---------------------------------------------------------------

    def _start(self, call: Call) -> bytes:
        """Count an attempt of ``call``, tell the parser its method, return its head."""
        self.parser.expect(call.prepared.method)
        call.sends += 1
        call.started = time.monotonic()
        return self.origin.head(call)

    def write_batch(self, calls: list[Call]) -> None:
        """Write several pipelinable requests with one send.

        Raises:
            ClosedEarly: the write failed (``send_failed=True``).
            RequestTimeout: the first call's deadline passed while writing.
        """
        buffers: list[bytes | memoryview] = []
        for call in calls:
            buffers.append(self._start(call))
            if call.prepared.body:
                buffers.append(call.prepared.body)
        try:
            send_buffers(self.conn, buffers, calls[0].deadline)
        except ConnectionClosed:
            raise ClosedEarly(send_failed=True) from None

    def write_one(self, call: Call) -> ResponseHead | None:
        """Write one request of any kind; return a final head read early (Expect).

        Raises:
            ClosedEarly: the write failed, or the peer closed while we waited for 100.
            BodyStreamFailed: the caller's body iterable raised.
            RequestTimeout: the deadline passed.
        """
        prepared = call.prepared
        head = self._start(call)
        call.mark = self.parser.bytes_consumed
        deadline = call.deadline
        try:
            if prepared.expect_continue:
                self.conn.send_all(head, deadline)
                final = self._await_continue(call)
                if final is not None:
                    return final
                head = b""
            if prepared.stream is None:
                buffers = [head, prepared.body] if head else [prepared.body]
                send_buffers(self.conn, buffers, deadline)
            else:
                if head:
                    self.conn.send_all(head, deadline)
                for data in _stream_frames(call):
                    self.conn.send_all(data, deadline)
        except ConnectionClosed:
            raise ClosedEarly(send_failed=True) from None
        return None

    def _await_continue(self, call: Call) -> ResponseHead | None:
        """Wait up to 1 s for ``100 Continue``; return a final head if one came instead."""
        wait_until = time.monotonic() + EXPECT_CONTINUE_WAIT
        if call.deadline is not None:
            wait_until = min(wait_until, call.deadline)
        while True:
            event = self.parser.next_event()
            if event is NEED_DATA:
                try:
                    self._fill(wait_until)
                except RequestTimeout:
                    if call.deadline is not None and time.monotonic() >= call.deadline:
                        raise
                    return None  # RFC 9110 §10.1.1: send the body after a reasonable wait
                continue
            if isinstance(event, Informational):
                if event.status == 100:
                    return None
                continue
            if isinstance(event, PeerClosed):
                raise ClosedEarly(send_failed=False)
            assert isinstance(event, ResponseHead)
            return event

    # -- reading ---------------------------------------------------------------

    @property
    def in_step(self) -> bool:
        """Return whether every byte received belongs to a response still expected.

        Bytes buffered when no response is due (a body on a HEAD, 204 or 304
        answer, a body longer than its Content-Length, a second response to
        one request) would be parsed as the answer to a later request: such a
        connection must not be reused.
        """
        return self.parser.pending > 0 or self.parser.buffered == 0

    def _fill(self, deadline: float | None, size: int = READ_SIZE) -> None:
        data = self.conn.recv(deadline, size)
        if data:
            self.parser.feed(data)
        else:
            self.parser.feed_eof()

    def read_head(self, call: Call) -> ResponseHead:
        """Read up to the final response head of ``call``, skipping 1xx.

        Raises:
            ClosedEarly: the peer closed before any byte of this response.
            ProtocolError, RequestTimeout: as for :meth:`read_response`.
        """
        parser = self.parser
        if call.mark is None:
            call.mark = parser.bytes_consumed
        if not parser.buffered:  # nothing to parse yet: read before asking
            self._fill(call.deadline, HEAD_READ_SIZE)
        while True:
            event = self.parser.next_event()
            if event is NEED_DATA:
                self._fill(call.deadline, HEAD_READ_SIZE)
            elif isinstance(event, ResponseHead):
                return event
            elif isinstance(event, PeerClosed):
                raise ClosedEarly(send_failed=False)
            elif not isinstance(event, Informational):  # pragma: no cover - parser invariant
                raise ProtocolError(f"unexpected {event!r} before the response head")

    def iter_body(self, deadline: float | None) -> Iterator[bytes | Headers]:
        """Yield body chunks as they arrive, then the trailers (a ``Headers``) last."""
        while True:
            event = self.parser.next_event()
            if event is NEED_DATA:
                self._fill(deadline)
            elif isinstance(event, BodyChunk):
                yield event.data
            elif isinstance(event, EndOfResponse):
                yield event.trailers
                return

    def _read_body_directly(self, size: int, deadline: float | None) -> bytes:
        """Read a ``size``-byte Content-Length body into one buffer: one copy, not four.

        ``size`` is what the peer declared, so nothing is allocated from it:
        the buffer grows (doubling) as bytes arrive. Bodies up to SCRATCH_MAX
        reuse one warm buffer across responses, saving fresh pages to fault in.

        Raises:
            ProtocolError: the peer closed before the whole body came.
            RequestTimeout: the deadline passed.
        """
        target = self._scratch if size <= SCRATCH_MAX else bytearray()
        got = 0
        while got < size:
            if got == len(target):
                target += bytes(min(size, max(2 * got, DIRECT_READ_MIN)) - got)
            with memoryview(target) as whole, whole[got : min(size, len(target))] as view:
                n = self.parser.read_body_into(view)
                if n == 0:
                    n = self.conn.recv_into(view, deadline)
                    if n == 0:
                        raise ProtocolError(
                            f"connection closed with {size - got} bytes of the body missing"
                        )
                    self.parser.body_received(n)
            got += n
        with memoryview(target) as whole, whole[:size] as body:
            return bytes(body)

    def read_response(self, call: Call, head: ResponseHead | None = None) -> tuple[Response, bool]:
        """Read the whole response of ``call``; return it and whether the connection stays open.

        Raises:
            ClosedEarly: the peer closed before any byte of this response.
            ProtocolError: malformed, over-limit or truncated response.
            RequestTimeout: the call's deadline passed.
        """
        body_skipped = head is not None
        if head is None:
            head = self.read_head(call)
        trailers = _NO_TRAILERS
        body = self.parser.take_whole_body()
        if body is None:
            parts: list[bytes] = []
            remaining = self.parser.body_remaining
            if remaining is not None and remaining >= DIRECT_READ_MIN:
                parts.append(self._read_body_directly(remaining, call.deadline))
            for item in self.iter_body(call.deadline):
                if isinstance(item, Headers):
                    trailers = item if len(item) else _NO_TRAILERS
                else:
                    parts.append(item)
            body = parts[0] if len(parts) == 1 else b"".join(parts)
        keep = head.keep_alive and not call.prepared.close and not body_skipped and self.in_step
        if keep:
            self.conn.requests_done += 1
        self.origin.store_cookies(call, head)
        mark = call.mark if call.mark is not None else 0
        response = Response(
            status=head.status,
            reason=head.reason,
            version=head.version,
            headers=head.headers,
            trailers=trailers,
            body=body,
            size=self.parser.bytes_consumed - mark,
            elapsed=time.monotonic() - call.started,
        )
        return response, keep


def _stream_frames(call: Call) -> Iterator[bytes | bytearray | memoryview]:
    """Yield the wire bytes of a streamed body: framed when chunked, else exactly its length.

    A stream with a ``Content-Length`` must yield exactly that many bytes. The
    piece that completes it is held back until the stream has ended, so a
    longer stream never puts a byte past the declared body on the wire (that
    would be a second request to the server: request smuggling).

    Raises:
        BodyStreamFailed: the iterable raised, yielded a wrong type, or
            yielded more or fewer bytes than its ``Content-Length``.
    """
    prepared = call.prepared
    assert prepared.stream is not None
    declared = prepared.stream_length
    sent = 0
    last: bytes | bytearray | memoryview = b""
    for chunk in _stream_pieces(prepared.stream):
        if declared is None:
            try:
                frame = chunk_frames(chunk)
            except BadArgument as exc:
                raise BodyStreamFailed(exc) from None
            if frame:
                yield frame
            continue
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise BodyStreamFailed(BadArgument(f"body stream yielded a {type(chunk).__name__}"))
        size = memoryview(chunk).nbytes
        if not size:
            continue
        if sent + size > declared:
            raise BodyStreamFailed(
                BadArgument(f"body stream yielded more than its Content-Length of {declared} bytes")
            )
        sent += size
        if sent == declared:
            last = chunk
        else:
            yield chunk
    if declared is None:
        yield LAST_CHUNK
        return
    if sent < declared:
        raise BodyStreamFailed(
            BadArgument(f"body stream ended after {sent} of its Content-Length of {declared} bytes")
        )
    if last:
        yield last


def _stream_pieces(stream: Iterable[Any]) -> Iterator[Any]:
    """Yield what the caller's body iterable yields; wrap what it raises."""
    iterator = iter(stream)
    while True:
        try:
            chunk = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise BodyStreamFailed(exc) from exc
        yield chunk
