"""ClientActor (a pykka.ThreadingActor owning one keep-alive connection) and its Client handle.

Theory of operation
-------------------
Callers never talk to the socket. ``Client.request`` validates its arguments
in the caller's thread (``messages.Request``), wraps them in a :class:`Call`
holding a :class:`ReplyFuture`, and puts it in the actor's :class:`Inbox`.
The actor thread takes commands in order and serves each on its one
connection::

    NEW --connect--> IDLE --write--> ACTIVE --response read--> IDLE (keep-alive)
                       ^                 |--close / error / timeout--> CLOSED
                       +--------next request reconnects----------------+

Requests in flight are kept in a FIFO (``self._in_flight``) and the parser is
told each method in order, so the receive side does not care how many are
outstanding (pipelining builds on this).

Crashes: an unexpected exception (a bug, or ``testing.inject_crash``) leaves
``on_receive``; pykka then calls ``on_failure`` in the actor thread. Any stop
ends in :meth:`ClientActor._terminate`, which closes the socket, closes the
inbox, and hands every command it still held — in flight first, then queued —
to the handle, which either fails them (``ClientStopped``) or, under a
supervisor, re-sends them on the next incarnation as API.md §3-§4 allow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import pykka

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
from fusco_actor._exceptions import (
    BadArgument,
    ClientStopped,
    ConnectionClosed,
    FuscoError,
    ProtocolError,
    RequestTimeout,
)
from fusco_actor._future import ReplyFuture
from fusco_actor._headers import Headers
from fusco_actor._inbox import Call, Command, ConnectCommand, DisconnectCommand, Inbox
from fusco_actor._parser import ResponseParser
from fusco_actor._response import Response
from fusco_actor._retry import may_resend
from fusco_actor._transport import ConnectInfo, Connection, open_connection, send_buffers

if TYPE_CHECKING:
    from collections.abc import Callable

    from fusco_actor._options import ClientOptions, Destination

__all__ = ["ClientActor", "InjectedCrash"]

logger = logging.getLogger(__name__)

EXPECT_CONTINUE_WAIT: Final = 1.0  # seconds an Expect: 100-continue body waits for the 100


class InjectedCrash(RuntimeError):
    """The exception ``testing.inject_crash`` makes a client actor raise."""


class _BodyStreamFailed(Exception):
    """The caller's body iterable raised; carries the caller's exception."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class _ClosedEarly(Exception):
    """The connection closed before any byte of the response arrived."""

    def __init__(self, send_failed: bool) -> None:
        super().__init__("connection closed before any byte of the response")
        self.send_failed = send_failed


class ClientActor(pykka.ThreadingActor):
    """The actor that owns one connection to one host and serves requests in order.

    All methods run in the actor's own thread. On stop and on crash every
    command it still holds is handed to ``owner`` (see module docstring);
    none is left unresolved.
    """

    use_daemon_thread = True

    @staticmethod
    def _create_actor_inbox() -> Inbox:  # type: ignore[override]
        return Inbox()

    @staticmethod
    def _create_future() -> ReplyFuture[Any]:
        return ReplyFuture()

    def __init__(self, destination: Destination, options: ClientOptions, owner: Any) -> None:
        """Prepare the actor; nothing connects until the first request or ``connect``."""
        super().__init__()
        self._destination = destination
        self._options = options
        self._owner = owner
        owner._attach(self)
        self.actor_inbox.on_rejected = owner.on_rejected  # type: ignore[attr-defined]
        self._host_field = destination.host_field
        self._conn: Connection | None = None
        self._parser = ResponseParser(options.max_head_size)
        self._in_flight: deque[Call] = deque()
        self._jar = CookieJar() if options.use_cookies else None
        self._disconnecting = False
        self._terminated = False
        self.crash_next = False
        self.finished = threading.Event()
        self._target_prefix = b""
        self._proxy_fields = b""
        if options.proxy is not None and not destination.is_ssl:
            # RFC 9112 §3.2.2: absolute-form when talking to a forward proxy.
            self._target_prefix = destination.origin.encode("idna")
            if options.proxy.username is not None:
                import base64

                secret = f"{options.proxy.username}:{options.proxy.password or ''}".encode()
                self._proxy_fields = b"Proxy-Authorization: Basic %s\r\n" % base64.b64encode(secret)

    # -- pykka hooks ----------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Serve one command (actor thread)."""
        if isinstance(message, Call):
            self._serve(message)
        elif isinstance(message, ConnectCommand):
            self._serve_connect(message)
        elif isinstance(message, DisconnectCommand):
            self._serve_disconnect(message)
        else:
            return super().on_receive(message)
        return None

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """A crash: hand what the actor held to the owner (actor thread)."""
        self._terminate(crashed=True, reason=exception_value)

    def on_stop(self) -> None:
        """A stop: a crash too unless ``disconnect`` asked for it (actor thread)."""
        self._terminate(crashed=not self._disconnecting, reason=None)

    def _terminate(self, crashed: bool, reason: BaseException | None) -> None:
        if self._terminated:
            return
        self._terminated = True
        try:
            self._close()
            held: list[Command] = list(self._in_flight)
            self._in_flight.clear()
            held += self.actor_inbox.close()  # type: ignore[attr-defined]
            self._owner.on_exit(self.actor_ref, held, crashed, reason)
        finally:
            self.finished.set()

    def _check_crash(self) -> None:
        if self.crash_next:
            self.crash_next = False
            raise InjectedCrash("crash injected by fusco_actor.testing.inject_crash")

    # -- connection -----------------------------------------------------------

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self, deadline: float | None) -> Connection:
        """Return an open connection, reconnecting when the idle one was dropped."""
        conn = self._conn
        if conn is not None:
            if not conn.is_dropped():
                return conn
            self._close()
        started = time.monotonic()
        try:
            conn = open_connection(self._destination, self._options, deadline)
        except FuscoError as exc:
            self._notify(ConnectInfo(False, exc, time.monotonic() - started, None))
            raise
        self._notify(ConnectInfo(True, None, time.monotonic() - started, conn.address))
        self._conn = conn
        self._parser = ResponseParser(self._options.max_head_size)
        return conn

    def _notify(self, info: ConnectInfo) -> None:
        callback: Callable[[ConnectInfo], Any] | None = self._options.on_connect
        if callback is None:
            return
        try:
            callback(info)
        except Exception:
            logger.exception("on_connect callback raised; ignored")

    def _serve_connect(self, command: ConnectCommand) -> None:
        if not command.future.claim():
            return
        try:
            self._connect(command.future.deadline)
        except FuscoError as exc:
            command.future.try_fail(exc)
        else:
            command.future.try_set(None)

    def _serve_disconnect(self, command: DisconnectCommand) -> None:
        self._disconnecting = True
        self._close()
        for later in self.actor_inbox.close():  # type: ignore[attr-defined]
            self._owner.on_rejected(later)
        command.future.try_set(None)
        self.stop()

    # -- one exchange ---------------------------------------------------------

    def _serve(self, call: Call) -> None:
        future = call.future
        if not future.claim():
            return  # expired in the queue, or resolved by someone else
        deadline = call.deadline
        if deadline is not None and time.monotonic() >= deadline:
            future.try_fail(RequestTimeout("request timed out while queued; it was not sent"))
            return
        if call.send_retry is None:
            call.send_retry = self._options.send_retry
        self._in_flight.append(call)
        try:
            response = self._exchange(call)
        except FuscoError as exc:
            self._in_flight.clear()
            future.try_fail(exc)
            return
        except _BodyStreamFailed as exc:
            self._in_flight.clear()
            self._close()
            future.try_fail(exc.original)
            return
        self._check_crash()
        self._in_flight.clear()
        future.try_set(response)

    def _exchange(self, call: Call) -> Response:
        prepared = call.prepared
        replayable = prepared.stream is None or iter(prepared.stream) is not prepared.stream
        while True:
            self._check_crash()
            previous = self._conn
            conn = self._connect(call.deadline)
            # API §4: reused = open before this attempt; a dropped idle one replaced is fresh.
            reused = conn is previous
            started = time.monotonic()
            try:
                consumed_before = self._parser.bytes_consumed
                pushed = self._send(conn, call)
                return self._receive(conn, call, started, consumed_before, pushed)
            except _ClosedEarly as closed:
                self._close()
                retry = replayable and may_resend(
                    idempotent=prepared.idempotent,
                    send_failed=closed.send_failed,
                    reused=reused,
                    sends=call.sends,
                    send_retry=call.send_retry or 0,
                )
                if not retry:
                    raise ConnectionClosed(
                        f"connection to {self._destination.origin} closed before any byte of the "
                        f"response ({call.sends} send(s), send_retry={call.send_retry})"
                    ) from None
            except (FuscoError, _BodyStreamFailed):
                self._close()
                raise

    def _send(self, conn: Connection, call: Call) -> ResponseHead | None:
        """Write the request; return a final head already read (Expect: 100-continue)."""
        prepared = call.prepared
        cookie = None
        if self._jar is not None:
            cookie = self._jar.header_value(
                self._destination.host,
                prepared.target.decode("latin-1"),
                self._destination.is_ssl,
                time.time(),
            )
        target = self._target_prefix + prepared.target if self._target_prefix else None
        head = encode_head(prepared, self._host_field, cookie, target, self._proxy_fields)
        self._parser.expect(prepared.method)
        call.sends += 1
        deadline = call.deadline
        try:
            if prepared.expect_continue:
                conn.send_all(head, deadline)
                final = self._await_continue(conn, call)
                if final is not None:
                    return final
                head = b""
            if prepared.stream is None:
                send_buffers(conn, [head, prepared.body] if head else [prepared.body], deadline)
            else:
                self._send_stream(conn, call, head)
        except ConnectionClosed:
            raise _ClosedEarly(send_failed=True) from None
        return None

    def _send_stream(self, conn: Connection, call: Call, head: bytes) -> None:
        prepared = call.prepared
        assert prepared.stream is not None
        deadline = call.deadline
        if head:
            conn.send_all(head, deadline)
        iterator = iter(prepared.stream)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                break
            except Exception as exc:
                raise _BodyStreamFailed(exc) from exc
            if prepared.chunked:
                data = chunk_frames(chunk)
            elif isinstance(chunk, (bytes, bytearray, memoryview)):
                data = chunk
            else:
                raise _BodyStreamFailed(BadArgument(f"body stream yielded a {type(chunk).__name__}"))
            if data:
                conn.send_all(data, deadline)
        if prepared.chunked:
            conn.send_all(LAST_CHUNK, deadline)

    def _await_continue(self, conn: Connection, call: Call) -> ResponseHead | None:
        """Wait up to 1 s for ``100 Continue``; return a final head if one came instead."""
        wait_until = time.monotonic() + EXPECT_CONTINUE_WAIT
        if call.deadline is not None:
            wait_until = min(wait_until, call.deadline)
        while True:
            event = self._parser.next_event()
            if event is NEED_DATA:
                try:
                    data = conn.recv(wait_until)
                except RequestTimeout:
                    if call.deadline is not None and time.monotonic() >= call.deadline:
                        raise
                    return None  # RFC 9110 §10.1.1: send the body after a reasonable wait
                if not data:
                    self._parser.feed_eof()
                else:
                    self._parser.feed(data)
                continue
            if isinstance(event, Informational):
                if event.status == 100:
                    return None
                continue
            if isinstance(event, PeerClosed):
                raise _ClosedEarly(send_failed=False)
            assert isinstance(event, ResponseHead)
            return event

    def _receive(
        self,
        conn: Connection,
        call: Call,
        started: float,
        consumed_before: int,
        head: ResponseHead | None,
    ) -> Response:
        parser = self._parser
        deadline = call.deadline
        body: list[bytes] = []
        body_skipped = head is not None
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                data = conn.recv(deadline)
                if data:
                    parser.feed(data)
                else:
                    parser.feed_eof()
            elif isinstance(event, BodyChunk):
                body.append(event.data)
            elif isinstance(event, ResponseHead):
                head = event
            elif isinstance(event, EndOfResponse):
                break
            elif isinstance(event, PeerClosed):
                raise _ClosedEarly(send_failed=False)
            # Informational: RFC 9110 §15.2 - skipped.
        if head is None:  # pragma: no cover - the parser always gives a head first
            raise ProtocolError("response ended without a head")
        if not head.keep_alive or call.prepared.close or body_skipped:
            self._close()
        else:
            conn.requests_done += 1
        if self._jar is not None:
            cookies = head.headers.get_all("set-cookie")
            if cookies:
                self._jar.store(
                    self._destination.host,
                    call.prepared.target.decode("latin-1"),
                    self._destination.is_ssl,
                    cookies,
                    time.time(),
                )
        return Response(
            status=head.status,
            reason=head.reason,
            version=head.version,
            headers=head.headers,
            trailers=event.trailers if event.trailers else _NO_TRAILERS,
            body=body[0] if len(body) == 1 else b"".join(body),
            size=parser.bytes_consumed - consumed_before,
            elapsed=time.monotonic() - started,
        )


_NO_TRAILERS: Final = Headers()
