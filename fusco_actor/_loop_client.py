"""LoopClientActor: the client actor on the scheduler loop (issue 10; not the default yet).

Theory of operation
-------------------
The actor owns one :class:`~fusco_actor._aio_transport.LoopConnection` and is
its ``ConnectionOwner``: every method runs on the scheduler thread, in a
mailbox turn or in a socket callback, and none blocks. Requests flow::

    inbox --admit--> _to_send --write (one writelines per pump)--> _in_flight
    socket bytes --on_data--> ResponseParser events --> oldest call resolved

Connecting is a task on the loop (``open_loop_connection``); its end pumps
again. Each call in flight has a loop timer at its deadline. A connection lost
before any byte of a response re-sends or fails the calls in flight by the
send-retry rule (README "Send-retry"), as the threaded actor does. ``disconnect`` is
served in order: once nothing is held the connection closes and the actor stops.
Crashes (``testing.inject_crash``, a bug in a callback) and pykka's stop
message are handled as the threaded actor handles them: see ``_loop_failure``.

A body that is not fixed bytes (an iterable, a file) or that waits for
``100 Continue`` goes out after its head through an ``_loop_upload.Upload``,
paced by the transport's flow control (``on_writable``).

``client.stream``'s body is served by :mod:`~fusco_actor._loop_stream`, which
holds the connection (``_stream``) from the response head until the body is
read or closed. Selected with ``FUSCO_ACTOR_ENGINE=loop`` until it serves
everything the threaded ``ClientActor`` does (see docs/engine.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from fusco_actor._aio_transport import LoopConnection, open_loop_connection
from fusco_actor._connect_parts import ConnectInfo, tls_failure
from fusco_actor._events import (
    NEED_DATA,
    BodyChunk,
    EndOfResponse,
    Informational,
    PeerClosed,
    ResponseHead,
)
from fusco_actor._exceptions import (
    ClientStopped,
    ConnectionClosed,
    FuscoError,
    ProtocolError,
    RequestTimeout,
)
from fusco_actor._headers import Headers
from fusco_actor._inbox import (
    Call,
    Command,
    ConnectCommand,
    DisconnectCommand,
    StreamCall,
    WakeCommand,
    fail_stopped,
)
from fusco_actor._loop_failure import (
    DeferredStop,
    answer_stops,
    callback_failed,
    check_crash,
    crash_guarded,
    defer_stop,
    finish_deferred_stop,
    held_once,
    take_withheld,
    withhold,
)
from fusco_actor._loop_stream import LoopStream, connection_closed, start_stream, stop_stream
from fusco_actor._loop_upload import Upload, needs_upload
from fusco_actor._parser import ResponseParser
from fusco_actor._response import Response
from fusco_actor._scheduler import LoopActor, get_scheduler
from fusco_actor._timers import DeadlineQueue, DeadlineTimer
from fusco_actor._wire import Origin

if TYPE_CHECKING:
    from collections.abc import Callable

    from fusco_actor._future import ReplyFuture
    from fusco_actor._options import CheckedOptions, Destination

__all__ = ["LoopClientActor"]

logger = logging.getLogger(__name__)
_NO_TRAILERS = Headers()


class LoopClientActor(LoopActor):
    """One connection to one host, served on the scheduler thread (see module docstring)."""

    def __init__(self, destination: Destination, options: CheckedOptions, owner: Any) -> None:
        """Prepare the actor (scheduler not yet involved); nothing connects until asked."""
        super().__init__()
        self._destination = destination
        self._options = options
        self._owner = owner
        owner._attach(self)
        self.actor_inbox.on_rejected = owner._on_rejected  # type: ignore[attr-defined]
        self._origin = Origin(destination, options)
        self._conn: LoopConnection | None = None
        self._parser: ResponseParser | None = None
        self._connecting: asyncio.Task[LoopConnection] | None = None
        self._to_send: deque[Call] = deque()
        self._in_flight: deque[Call] = deque()
        self._loop = get_scheduler().loop
        # One loop timer for all the calls' deadlines, at the earliest (see DeadlineQueue).
        self._timers = DeadlineQueue(self._loop, self._timed_out)
        self._upload: Upload | None = None  # the body going out piece by piece, if any
        self._head: ResponseHead | None = None
        self._stream: LoopStream | None = None  # a streamed body holding the connection
        self._parts: list[bytes] = []
        self._mark = 0  # parser.bytes_consumed where the current response began
        self._for_write = False  # the connect under way was started to write (not by connect())
        self._fresh = False  # the connection was opened for the next write: not "reused" (§4)
        self._connect_waiters: list[ConnectCommand] = []
        self._connect_for: Command | None = None  # whom the connect under way is for
        self._stopping: DeferredStop | None = None  # a stop waiting for what is in hand
        self._handed_over: list[Command] = []  # what _terminate handed to the owner
        self._disconnect: DisconnectCommand | None = None
        self._aborted: str | None = None
        self._terminated = False
        self._pump_due = False  # a command of this turn asked for a pump (see on_turn_end)
        self.crash_next = False
        self.finished = threading.Event()

    # -- what the handle and tests look at -------------------------------------------

    @property
    def connection(self) -> LoopConnection | None:
        """Return the open connection, if any."""
        return self._conn

    def run_inline(self, call: Call) -> bool:
        """Return False: on the loop, a blocking caller always queues (no caller-runs)."""
        return False

    def abort(self, reason: str) -> None:
        """Close the connection and fail everything held with ``ClientStopped`` (any thread)."""
        self._aborted = reason
        for command in self._handed_over:  # a crash report may still carry them
            fail_stopped(command, reason)
        get_scheduler().call_soon(self._abort_now, reason)

    # -- mailbox ------------------------------------------------------------------------

    def _serve_envelope(self, envelope: Any) -> None:
        """Serve a stop request once what is in hand is done (see ``_loop_failure``)."""
        if envelope.__class__ is Call and self._stopping is None:
            self._admit(envelope)  # on_receive's path for a call, in short
            self._pump_due = True
            return
        if not defer_stop(self, envelope):
            super()._serve_envelope(envelope)

    def on_receive(self, message: Any) -> Any:
        """Serve one command (scheduler thread)."""
        if isinstance(message, Command) and withhold(self, message):
            return None  # a stop is under way: not started here
        if isinstance(message, Call):
            self._admit(message)
        elif isinstance(message, ConnectCommand):
            if message.future.claim():
                self._connect_waiters.append(message)
                self._arm_connect_timer(message)
                self._ensure_connection(message.future.deadline, for_write=False)
        elif isinstance(message, DisconnectCommand):
            # Served in order: what was sent before it is served, what comes after is refused.
            self._disconnect = message
            for rejected in self.actor_inbox.close():  # type: ignore[attr-defined]
                self._owner._on_rejected(rejected)
            self._maybe_finish_disconnect()
        elif not isinstance(message, WakeCommand):
            return super().on_receive(message)
        self._pump_due = True  # once per turn: a burst of calls goes out in one write
        return None

    def on_turn_end(self) -> None:
        """Pump once for all the commands this turn served (scheduler thread)."""
        if self._pump_due:
            self._pump_due = False
            self._pump()

    def on_stop(self) -> None:
        """Hand over what is held; a crash unless ``disconnect`` asked (scheduler thread)."""
        self._terminate(crashed=self._disconnect is None)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Hand what the crashed actor held to the owner (scheduler thread)."""
        self._terminate(crashed=True)

    def _terminate(self, crashed: bool) -> None:
        if self._terminated:
            return
        self._terminated = True
        stop_stream(self, ClientStopped("the client stopped while streaming the body"))
        self._close_connection()
        withheld, stop_replies = take_withheld(self)
        held: list[Command] = [*self._in_flight, *self._to_send, *self._connect_waiters, *withheld]
        if self._disconnect is not None:
            held.append(self._disconnect)  # resolved (None) by the owner, as fail_stopped does
        for call in (*self._in_flight, *self._to_send):
            self._disarm(call)
        self._timers.clear()
        self._in_flight.clear()
        self._to_send.clear()
        self._connect_waiters.clear()
        held += self.actor_inbox.close()  # type: ignore[attr-defined]
        try:
            self._handed_over = held = held_once(held)
            self._owner._on_exit(self.actor_ref, held, crashed, None)
        finally:
            self.finished.set()
            answer_stops(stop_replies)  # pykka's stop requests: answered once stopped

    # -- requests ---------------------------------------------------------------------

    def _admit(self, call: Call) -> None:
        # Not claimed yet: until it is written, its caller may still expire or withdraw it.
        self._to_send.append(call)

    def _claim(self, call: Call) -> bool:
        """Take ``call`` over just before its first write; False if it must not go."""
        if call.sends == 0:
            if not call.future.claim():
                return False  # expired in the queue, or withdrawn
            if call.deadline is not None and time.monotonic() >= call.deadline:
                timed_out = RequestTimeout("request timed out while queued; it was not sent")
                call.future.try_fail(timed_out)
                return False
            if call.send_retry is None:
                call.send_retry = self._options.send_retry
        call.future.canceller = self._cancel  # this incarnation's, after a restart too
        return not call.future.done

    def _pump(self) -> None:
        """Write what may go now, connecting first when needed (scheduler thread)."""
        while self._to_send and (self._to_send[0].future.done or self._resend_expired()):
            self._disarm(self._to_send.popleft())  # withdrawn (a re-send has a timer) or expired
        if self._aborted is not None or not self._to_send:
            self._maybe_finish_disconnect()
            return
        if self._stream is not None:
            return  # a streamed body holds the connection until it is read or closed
        conn = self._conn
        parser = self._parser
        # A connection opened for this write and closed before it is written on: the
        # write fails below and counts as a send (§4), rather than reconnecting for free.
        dropped = conn is not None and conn.is_closed and not self._fresh
        if conn is not None and conn.is_closed and self._fresh and not self._in_flight:
            failure = tls_failure(conn.lost_error)
            if failure is not None:  # refused right after the handshake: this call's error
                self._close_connection()
                self._reset_response()
                self._to_send.popleft().future.try_fail(failure)
                self._pump()
                return
        if (
            conn is not None
            and parser is not None
            and not self._in_flight
            and (parser.buffered or dropped or (not self._fresh and conn.has_unread()))
        ):
            # Bytes (or a close) on an idle connection: never read them as the next answer.
            self._close_connection()
            self._reset_response()
            conn = None
        if conn is None or dropped:
            check_crash(self)  # "before it sends": the call is still queued, handed over
            self._ensure_connection(self._to_send[0].deadline, for_write=True)
            return
        limit = self._options.pipeline
        batch: list[bytes | memoryview] = []
        assert parser is not None
        while self._to_send:
            call = self._to_send[0]
            if call.future.done:
                self._disarm(self._to_send.popleft())
                continue
            alone = not call.pipelinable
            if self._in_flight and (alone or not self._in_flight[-1].pipelinable):
                break
            if len(self._in_flight) >= (1 if alone else limit):
                break
            if self.crash_next:
                check_crash(self)  # "before it sends": the call is still queued, handed over
            if not self._claim(call):
                self._disarm(self._to_send.popleft())
                continue
            head = self._origin.head(call)  # may raise (a bug): the call is still held
            parser.expect(call.prepared.method)
            call.sends += 1
            call.started = time.monotonic()
            call.reused = not self._fresh
            call.mark = None
            batch.append(head)
            if needs_upload(call.prepared):  # alone: its body follows the head (_loop_upload)
                self._upload = Upload(call, conn, self)
            elif call.prepared.body:
                batch.append(call.prepared.body)
            self._in_flight.append(call)  # held by one queue or the other at every step
            self._to_send.popleft()
            if call.sends == 1 or call not in self._timers:  # a re-send keeps its timer
                self._arm_timer(call)
            if alone:
                break
        if batch:
            self._fresh = False
            try:
                conn.writelines(batch)
            except ConnectionClosed:
                self._lose_connection(send_failed=True)
                return
            if self._upload is not None:
                get_scheduler().loop.call_soon(self.upload_step, self._upload.begin)

    def _resend_expired(self) -> bool:
        """Fail the re-send at the head of the queue if its deadline passed (before any connect)."""
        call = self._to_send[0]
        if not call.sends or call.deadline is None or time.monotonic() < call.deadline:
            return False
        self._disarm(call)
        call.future.try_fail(
            RequestTimeout(f"request timed out before it could be sent again ({call.sends} sends)")
        )
        return True

    def _arm_timer(self, call: Call) -> None:
        if call.deadline is None:
            return
        self._timers.add(call, call.deadline)

    def _arm_connect_timer(self, command: ConnectCommand) -> None:
        deadline = command.future.deadline
        if deadline is None:
            return
        DeadlineTimer(get_scheduler().loop, deadline, self._connect_timed_out, command)

    @crash_guarded
    def _connect_timed_out(self, command: ConnectCommand) -> None:
        if any(c is command for c in self._connect_waiters):
            self._connect_waiters.remove(command)
            command.future.try_fail(RequestTimeout("connect timed out"))
            self._maybe_finish_disconnect()

    def _disarm(self, call: Call) -> None:
        self._timers.remove(call)

    @crash_guarded
    def _timed_out(self, call: Call) -> None:
        if any(c is call for c in self._to_send):  # waiting to be sent again
            self._to_send.remove(call)
            self._timers.remove(call)
            call.future.try_fail(RequestTimeout("request timed out before it could be sent again"))
            self._pump()
            return
        if not any(c is call for c in self._in_flight):
            return
        was_head = self._in_flight[0] is call
        self._in_flight.remove(call)
        self._timers.remove(call)
        call.future.try_fail(RequestTimeout("request timed out"))
        if was_head:
            self._reset_response()  # its half-read response ends with it
        self._lose_connection(send_failed=False)

    def _cancel(self, future: ReplyFuture[Any]) -> None:
        """Stop a claimed call its caller cancelled (any thread): see ``_cancel_now``."""
        get_scheduler().call_soon(self._cancel_now, future)

    @crash_guarded
    def _cancel_now(self, future: ReplyFuture[Any]) -> None:
        if len(self._in_flight) == 1 and self._in_flight[0].future is future:
            self._disarm(self._in_flight.popleft())
            self._close_connection()
            self._reset_response()
        self._pump()

    # -- the connection -----------------------------------------------------------------

    def _ensure_connection(
        self, deadline: float | None, for_write: bool, starter: Command | None = None
    ) -> None:
        if self._connecting is not None or (self._conn is not None and not self._conn.is_closed):
            if self._conn is not None:
                self._settle_connect_waiters(None)
            return
        started = time.monotonic()
        self._for_write = for_write
        # The command whose deadline bounds this connect: its failure is charged to it alone.
        if starter is None:
            starters: Any = self._to_send if for_write else self._connect_waiters[-1:]
            starter = starters[0] if starters else None
        self._connect_for = starter
        task = get_scheduler().loop.create_task(
            open_loop_connection(self._destination, self._options, deadline, self)
        )
        self._connecting = task
        task.add_done_callback(lambda t: self._connected(t, started))

    @crash_guarded
    def _connected(self, task: asyncio.Task[LoopConnection], started: float) -> None:
        if task is not self._connecting or self._terminated:
            if not task.cancelled() and task.exception() is None:
                task.result().abort()  # a connect overtaken by a close or a stop
            return
        self._connecting = None
        took = time.monotonic() - started
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            failure = error if isinstance(error, FuscoError) else ProtocolError(repr(error))
            self._notify(ConnectInfo(False, failure, took, None))
            self._connect_failed(failure)
            return
        conn = task.result()
        if self._aborted is not None:
            conn.abort()
            return
        self._conn = conn
        self._connect_for = None
        self._fresh = self._for_write
        self._parser = ResponseParser(self._options.max_head_size, self._options.max_body_size)
        self._mark = 0
        self._notify(ConnectInfo(True, None, took, conn.address))
        self._settle_connect_waiters(None)
        self._pump()

    def _connect_failed(self, failure: FuscoError) -> None:
        """Fail the command the connect was for; the others get a connect of their own.

        As in the threaded actor, where each command makes its own attempt in
        turn, bounded by its own deadline: a failure is charged to one command.
        """
        starter, self._connect_for = self._connect_for, None
        if starter is not None:
            if any(c is starter for c in self._to_send):
                self._to_send.remove(starter)  # type: ignore[arg-type]
                self._disarm(starter)  # type: ignore[arg-type]
            elif any(c is starter for c in self._connect_waiters):
                self._connect_waiters.remove(starter)  # type: ignore[arg-type]
            starter.future.try_fail(failure)
        if self._connect_waiters and not self._to_send:
            waiter = self._connect_waiters[0]
            self._ensure_connection(waiter.future.deadline, for_write=False, starter=waiter)
        self._pump()

    def _settle_connect_waiters(self, error: FuscoError | None) -> None:
        waiters, self._connect_waiters = self._connect_waiters, []
        for command in waiters:
            if error is None:
                command.future.try_set(None)
            else:
                command.future.try_fail(error)

    def _notify(self, info: ConnectInfo) -> None:
        callback = self._options.on_connect
        if callback is None:
            return
        try:
            callback(info)
        except Exception:
            logger.exception("on_connect callback raised; ignored")

    def _close_connection(self) -> None:
        self._end_upload()
        connection_closed(self)
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.abort()
        task, self._connecting = self._connecting, None
        if task is not None:
            task.cancel()

    def _reset_response(self) -> None:
        self._parser = None
        self._head = None
        self._parts = []

    # -- ConnectionOwner: socket events (scheduler thread) -----------------------------------

    def on_data(self, data: bytes) -> None:
        """Feed the parser and resolve every response it completes (crash-guarded inline)."""
        parser = self._parser
        if parser is None:
            return
        try:
            parser.feed(data)
            self._read_events()
        except BaseException:  # nothing may reach the loop (as crash_guarded)
            callback_failed(self)

    @crash_guarded
    def on_eof(self) -> None:
        """Handle the peer closing its side: a read-until-close body ends, the rest is lost."""
        if self._conn is None or not self._conn.is_closed:
            return  # a connection no longer held (an EOF closes the one held first)
        if self._parser is not None:
            self._parser.feed_eof()
            self._read_events()

    @crash_guarded
    def on_lost(self, exc: Exception | None) -> None:
        """Handle the end of the connection."""
        if self._conn is None or not self._conn.is_closed:
            return  # a connection no longer held: the one held is marked closed before this
        failure = tls_failure(exc)
        if failure is not None and self._stream is not None:  # the streamed body ends with it
            connection_closed(self, failure)
            self._reset_response()
        elif failure is not None and self._in_flight:  # an alert, not a close: no re-send
            call = self._in_flight.popleft()
            self._disarm(call)
            call.future.try_fail(failure)
            self._reset_response()
        elif self._parser is not None:
            self._parser.feed_eof()
            self._read_events()
        if self._conn is not None:
            self._lose_connection(send_failed=False)

    @crash_guarded
    def on_writable(self) -> None:
        """Send more of the body going out, if any (the transport drained)."""
        if self._upload is not None:
            self._upload.on_writable()

    # -- UploadOwner: the body going out piece by piece (scheduler thread) ------------------

    def upload_failed(self, call: Call, error: BaseException) -> None:
        """Fail ``call`` with what its body stream raised; close, so no request completes."""
        if any(c is call for c in self._in_flight):
            self._in_flight.remove(call)
        self._disarm(call)
        self._close_connection()  # first: the caller may look at the client once it fails
        self._reset_response()
        call.future.try_fail(error)
        self._maybe_finish_disconnect()
        self._pump()

    @crash_guarded
    def upload_step(self, step: Callable[..., None], *args: Any) -> None:
        """Run ``step(*args)`` of the upload as a loop callback: what it raises is a crash."""
        step(*args)

    def upload_lost(self) -> None:
        """Treat a body write that found the connection closed as a failed send.

        A failed send may be re-sent: README.md, "Send-retry".
        """
        self._lose_connection(send_failed=True)

    def _end_upload(self) -> bool:
        """End the upload under way; return whether its whole body went out (True if none)."""
        upload, self._upload = self._upload, None
        return upload is None or upload.end()

    def _read_events(self) -> None:
        parser = self._parser
        while parser is not None and parser is self._parser:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                if self._stream is not None:
                    connection_closed(self, exc)
                elif self._in_flight:
                    call = self._in_flight.popleft()
                    self._disarm(call)
                    call.future.try_fail(exc)
                self._reset_response()  # the failed response is accounted for
                self._lose_connection(send_failed=False)
                return
            if event is NEED_DATA:
                if self._pump_due:  # once for every response these bytes completed
                    self._pump_due = False
                    self._pump()
                return
            if self._upload is not None and isinstance(event, (Informational, ResponseHead)):
                self._upload.heard(event)  # Expect: 100-continue
            if isinstance(event, Informational):
                continue
            if isinstance(event, ResponseHead):
                if self._in_flight and isinstance(self._in_flight[0], StreamCall):
                    start_stream(self, event)  # its body is streamed, never taken whole
                    continue
                self._head = event
                body = parser.take_whole_body()  # the usual small response: no more events
                if body is not None:
                    self._complete(_NO_TRAILERS, body)
            elif isinstance(event, BodyChunk):
                if self._stream is not None:
                    check_crash(self)  # one check per body piece, as the threaded actor does
                    self._stream.on_piece(event.data)
                else:
                    self._parts.append(event.data)
            elif isinstance(event, EndOfResponse):
                if self._stream is not None:
                    self._stream.on_end(event.trailers)
                else:
                    self._complete(event.trailers)
            elif isinstance(event, PeerClosed):
                self._lose_connection(send_failed=False)
                return

    def _complete(self, trailers: Headers, whole: bytes | None = None) -> None:
        """Resolve the oldest call with the response read (its body is ``whole`` or the parts)."""
        if self.crash_next:
            check_crash(self)  # "right after it receives": the call is still held, handed over
        head = self._head
        self._head = None
        if whole is not None:
            body = whole
        else:
            parts = self._parts
            self._parts = []
            body = parts[0] if len(parts) == 1 else b"".join(parts)
        parser = self._parser
        assert head is not None and parser is not None and self._conn is not None
        in_flight = self._in_flight
        call = in_flight[0]  # popped once its response is built: always held
        self._origin.store_cookies(call, head)
        response = Response(
            status=head.status,
            reason=head.reason,
            version=head.version,
            headers=head.headers,
            trailers=trailers if trailers is _NO_TRAILERS or len(trailers) else _NO_TRAILERS,
            body=body,
            size=parser.bytes_consumed - self._mark,
            elapsed=time.monotonic() - call.started,
        )
        self._mark = parser.bytes_consumed
        in_flight.popleft()
        self._timers.remove(call)  # _disarm
        # A body cut short leaves the server out of step.
        body_sent = self._upload is None or self._end_upload()
        keep = head.keep_alive and not call.prepared.close and body_sent
        in_step = parser.pending > 0 or parser.buffered == 0
        if keep:
            self._conn.requests_done += 1
        call.future.try_set(response)
        if not keep or not in_step:
            for unseen in in_flight:  # RFC 9112 §9.6: never seen by the server
                unseen.sends -= 1
            self._lose_connection(send_failed=False)
            return
        if self._disconnect is not None or self._stopping is not None:
            self._maybe_finish_disconnect()
        self._pump_due = True  # _read_events pumps once the bytes at hand are read

    def _lose_connection(self, send_failed: bool) -> None:
        """Close; re-send or fail each call in flight (README "Send-retry"); go on (scheduler)."""
        began = self._head is not None or (self._parser is not None and self._parser.in_response)
        if self._upload is not None and self._upload.cut_short:
            send_failed = True  # the server cannot have had the whole request
        self._close_connection()
        self._reset_response()
        if began and self._in_flight:  # a response that began is never sent again (Send-retry)
            oldest = self._in_flight.popleft()
            self._disarm(oldest)
            oldest.future.try_fail(
                ProtocolError("the connection closed in the middle of the response")
            )
        again: list[Call] = []
        for call in self._in_flight:
            if call.future.done:
                self._disarm(call)
                continue
            if call.may_go_again(send_failed):
                again.append(call)
            else:
                self._disarm(call)
                call.future.try_fail(call.closed_early(self._destination.origin))
        self._in_flight.clear()
        self._to_send.extendleft(reversed(again))
        self._maybe_finish_disconnect()
        self._pump()

    # -- stopping -------------------------------------------------------------------------

    def _maybe_finish_disconnect(self) -> None:
        finish_deferred_stop(self)
        command = self._disconnect
        if command is None or command.future.done or self._to_send or self._in_flight:
            return
        if self._stream is not None:  # served in order: after the body being streamed
            return
        if self._connect_waiters:  # a connect asked for before the disconnect ends first
            return
        self._close_connection()
        command.future.try_set(None)
        self.stop()

    @crash_guarded
    def _abort_now(self, reason: str) -> None:
        if self._terminated:
            return  # stopped meanwhile: what it held was handed over
        stop_stream(self, ClientStopped(reason))
        self._close_connection()
        for call in (*self._in_flight, *self._to_send):
            self._disarm(call)
            fail_stopped(call, reason)
        self._in_flight.clear()
        self._to_send.clear()
        if self._disconnect is not None:
            self._disconnect.future.try_set(None)
        self.stop()
