"""Streamed downloads on the loop engine: ``client.stream`` served by ``LoopClientActor``.

Theory of operation
-------------------
When the head of a :class:`~fusco_actor._inbox.StreamCall`'s response is
parsed, :func:`start_stream` resolves the caller's future with a
:class:`~fusco_actor._streaming.StreamingResponse` and hands its body to a
:class:`LoopStream`, which holds the connection until the body is read to its
end or the response is closed (requests queued behind it wait, as in the
threaded engine)::

    consumer (any thread)                         scheduler thread
    iter_bytes: ask(NEXT) --call_soon_threadsafe--> LoopStream.on_request
                replies.get() <---- ("data" | "end" | "error", value) ----+

Flow control keeps memory bounded whatever the body size: while a piece waits
that the consumer has not asked for, the connection's reading is paused
(``pause_reading``); it resumes when the consumer asks. So the client holds at
most the pieces of one read (one socket read, at most ``MAX_PIECE`` bytes
each), and the rest stays in the kernel and the server.

The stream ends in one of these ways, each resolving the consumer's channel:

* the consumer takes the end: the connection goes back to keep-alive if the
  response allows it and nothing stray was received (else it closes);
* the consumer closes it early: the connection closes;
* the wire fails (truncated, malformed, over ``max_body_size``, lost): the
  pieces already received are delivered, then the ``ProtocolError``;
* the request's deadline passes (the whole exchange, as in the threaded
  engine): ``RequestTimeout`` at once, and the connection closes;
* the actor aborts, stops or crashes: ``ClientStopped`` at once.

Everything but the consumer's own calls runs on the scheduler thread. A
consumer iterating on the scheduler thread itself would wait for a reply that
thread must produce: it gets :class:`~fusco_actor._future.SchedulerBlockedError`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from fusco_actor import _future, _native
from fusco_actor._exceptions import ClientStopped, FuscoError, ProtocolError, RequestTimeout
from fusco_actor._future import ReplyFuture, SchedulerBlockedError
from fusco_actor._scheduler import get_scheduler
from fusco_actor._streaming import CLOSE, StreamChannel, StreamingResponse
from fusco_actor._timers import DeadlineTimer

if TYPE_CHECKING:
    from fusco_actor._aio_transport import LoopConnection
    from fusco_actor._events import ResponseHead
    from fusco_actor._headers import Headers
    from fusco_actor._loop_client import LoopClientActor

__all__ = ["LoopStream", "LoopStreamChannel", "connection_closed", "start_stream", "stop_stream"]

logger = logging.getLogger(__name__)

MAX_PIECE: Final = 256 * 1024  # bytes: the most one piece handed to the consumer holds


class _Replies(_native.SimpleQueue):  # type: ignore[misc]
    """The consumer's reply queue; a put also wakes a greenlet waiting in ``ask`` (gevent).

    Only a channel made while a green wait is installed has one; any other keeps
    the plain C queue, so without gevent a put costs no Python call.
    """

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        super().__init__()
        self.waiter: ReplyFuture[None] | None = None

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        waiter = self.waiter
        if waiter is not None:
            waiter.try_set(None)


class LoopStreamChannel(StreamChannel):
    """A stream channel whose requests are callbacks on the scheduler loop."""

    __slots__ = ("_loop", "_stream")

    def __init__(self, loop: asyncio.AbstractEventLoop, stream: LoopStream) -> None:
        """Bind the channel to the loop and the stream serving the body."""
        super().__init__()
        if _future._green_wait is not None:  # its consumer is a greenlet (gevent)
            self.replies = _Replies()
        self._loop = loop
        self._stream = stream

    def ask(self, request: str) -> tuple[str, Any]:
        """Send ``request`` and wait for the reply (consumer's thread, never the scheduler's).

        Raises:
            SchedulerBlockedError: called on the scheduler thread, where waiting
                would freeze the very actor that must reply.
        """
        if _native.get_ident() == _future._scheduler_ident:
            raise SchedulerBlockedError(
                "iterating a streamed body on the fusco_actor scheduler thread would freeze "
                "every actor, the one serving the body included; consume it from another thread"
            )
        replies = self.replies
        if not isinstance(replies, _Replies):
            self.tell(request)
            return replies.get()
        # A greenlet (gevent): wait on a future the next put resolves, yielding meanwhile.
        while True:
            waiter: ReplyFuture[None] = ReplyFuture()
            replies.waiter = waiter
            if request:
                self.tell(request)
                request = ""
            try:
                return replies.get_nowait()  # type: ignore[no-any-return]
            except queue.Empty:
                waiter.get()

    def tell(self, request: str) -> None:
        """Hand ``request`` to the stream on the loop (any thread); never raises."""
        try:
            self._loop.call_soon_threadsafe(self._stream.on_request, request)
        except RuntimeError:  # the loop is closed: nothing will ever serve the body
            self.fail(ClientStopped("the scheduler stopped while streaming the body"))


class LoopStream:
    """The body of one streamed response, served to its consumer (scheduler thread).

    Attached to its actor (``actor._stream is self``) until it ends or the
    connection goes; detached, it still serves what it buffered.
    """

    def __init__(
        self,
        actor: LoopClientActor,
        conn: LoopConnection,
        deadline: float | None,
        keep: bool,
    ) -> None:
        """Serve a body arriving on ``conn``; ``keep``: the head allows keep-alive."""
        loop = get_scheduler().loop
        self.channel = LoopStreamChannel(loop, self)
        self._actor: LoopClientActor | None = actor
        self._conn = conn
        self._keep = keep
        self._pieces: deque[bytes] = deque()  # received, not yet asked for
        self._trailers: Headers | None = None  # set once the body ended on the wire
        self._asked = False  # the consumer waits for a piece
        self._timer: DeadlineTimer | None = None
        if deadline is not None:
            self._timer = DeadlineTimer(loop, deadline, self._deadline_passed)

    @property
    def is_done(self) -> bool:
        """Whether the consumer's channel is resolved (end, error or close)."""
        return self.channel.done.is_set()

    # -- from the consumer (a loop callback) ----------------------------------------

    def on_request(self, request: str) -> None:
        """Serve the consumer's "next" or "close" (scheduler thread); never raises."""
        try:
            if self.is_done:
                return  # ended meanwhile: the consumer has its reply already
            if request == CLOSE:
                self.channel.done.set()
                self._pieces.clear()
                self._release(keep=False)
            elif self._pieces:
                self.channel.replies.put(("data", self._pieces.popleft()))
                if not self._pieces and self._trailers is None and self._actor is not None:
                    self._conn.resume_reading()
            elif self._trailers is not None:
                self._deliver_end()
            else:
                self._asked = True
                if self._actor is not None:
                    self._conn.resume_reading()
        except Exception:  # a bug: never leave the consumer waiting, nor the loop broken
            logger.exception("serving a streamed body failed")
            self.stop(ClientStopped("the client failed while streaming the body"))

    # -- from the actor (socket events) ---------------------------------------------

    def on_piece(self, data: bytes) -> None:
        """Hand ``data`` to a waiting consumer, or hold it and pause reading."""
        for start in range(0, len(data), MAX_PIECE):
            piece = data if len(data) <= MAX_PIECE else data[start : start + MAX_PIECE]
            if self._asked and not self._pieces:
                self._asked = False
                self.channel.replies.put(("data", piece))
            else:
                self._pieces.append(piece)
        if self._pieces:
            self._conn.pause_reading()

    def on_end(self, trailers: Headers) -> None:
        """Note the body's end; a consumer already waiting gets it now."""
        self._trailers = trailers
        if self._asked:
            self._asked = False
            self._deliver_end()

    def connection_lost(self, error: FuscoError) -> None:
        """Detach: the connection is gone (``error`` says why, if the body was not complete).

        A complete body is still served to its end (the connection is not kept);
        an incomplete one fails with ``error`` once the pieces received are delivered.
        """
        self._actor = None
        if self.is_done:
            return
        self._keep = False
        if self._trailers is not None:
            return
        replies = self.channel.replies
        while self._pieces:  # unasked ones too: the consumer takes them in order, then the error
            replies.put(("data", self._pieces.popleft()))
        self._cancel_timer()
        self.channel.fail(error)

    def stop(self, error: FuscoError) -> None:
        """Fail the consumer with ``error`` now, dropping what is buffered, and detach."""
        self._actor = None
        self._cancel_timer()
        self._pieces.clear()
        self.channel.fail(error)

    # -- ending -------------------------------------------------------------------

    def _deliver_end(self) -> None:
        assert self._trailers is not None
        self.channel.done.set()
        self.channel.replies.put(("end", self._trailers))
        self._release(keep=self._keep)

    def _deadline_passed(self) -> None:
        self._timer = None
        if self.is_done:
            return
        actor = self._actor
        self.stop(RequestTimeout("the streamed body was not read before the deadline"))
        if actor is not None:
            _released(actor, self, keep=False)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _release(self, keep: bool) -> None:
        self._cancel_timer()
        actor, self._actor = self._actor, None
        if actor is not None:
            _released(actor, self, keep)


# -- the actor's hooks (scheduler thread) ---------------------------------------------


def start_stream(actor: LoopClientActor, head: ResponseHead) -> None:
    """Resolve the oldest call (a StreamCall) at its response head; its body follows.

    The call leaves ``_in_flight``: from here the stream holds the connection.
    """
    call = actor._in_flight.popleft()
    actor._disarm(call)  # the stream's own timer keeps the deadline
    actor._origin.store_cookies(call, head)
    assert actor._conn is not None
    keep = head.keep_alive and not call.prepared.close
    stream = LoopStream(actor, actor._conn, call.deadline, keep)
    actor._stream = stream
    response = StreamingResponse(
        head.status, head.reason, head.version, head.headers, stream.channel
    )
    if not call.future.try_set(response):  # cancelled meanwhile: nobody reads the body
        stream.on_request(CLOSE)


def stop_stream(actor: LoopClientActor, error: FuscoError) -> None:
    """Fail the stream being served, if any, with ``error`` (abort, stop, crash)."""
    stream, actor._stream = actor._stream, None
    if stream is not None:
        stream.stop(error)


def connection_closed(actor: LoopClientActor, error: FuscoError | None = None) -> None:
    """Tell the stream being served, if any, that its connection is going."""
    stream, actor._stream = actor._stream, None
    if stream is not None:
        stream.connection_lost(
            error or ProtocolError("the connection closed in the middle of the streamed body")
        )


def _released(actor: LoopClientActor, stream: LoopStream, keep: bool) -> None:
    """Keep the connection (read to the end, in step) or close it; then go on serving."""
    if actor._stream is not stream:
        return
    actor._stream = None
    try:
        conn, parser = actor._conn, actor._parser
        body_sent = actor._end_upload()  # a request body cut short: out of step
        if (
            keep
            and body_sent
            and conn is not None
            and not conn.is_closed
            and parser is not None
            and (parser.pending > 0 or parser.buffered == 0)  # nothing stray came after it
        ):
            conn.requests_done += 1
            actor._mark = parser.bytes_consumed
            conn.resume_reading()
        else:
            actor._close_connection()
            actor._reset_response()
        actor._maybe_finish_disconnect()
        actor._pump()
    except Exception:  # a bug: logged, never out of a loop callback
        logger.exception("resuming the client after a streamed body failed")
