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
supervisor, re-sends them on the next incarnation as README "Supervision" and "Send-retry" allow.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import pykka

from fusco_actor._connect_parts import ConnectInfo, remaining
from fusco_actor._exceptions import ClientStopped, ConnectionClosed, FuscoError, RequestTimeout
from fusco_actor._future import ReplyFuture
from fusco_actor._headers import Headers
from fusco_actor._inbox import (
    Call,
    Command,
    ConnectCommand,
    DisconnectCommand,
    Inbox,
    StreamCall,
    WakeCommand,
    fail_stopped,
)
from fusco_actor._streaming import CLOSE, StreamChannel, StreamingResponse
from fusco_actor._transport import Connection, open_connection
from fusco_actor._wire import BodyStreamFailed, ClosedEarly, Origin, Wire

if TYPE_CHECKING:
    from collections.abc import Callable

    from fusco_actor._events import ResponseHead
    from fusco_actor._options import CheckedOptions, Destination

__all__ = ["ClientActor", "InjectedCrash"]

logger = logging.getLogger(__name__)


class InjectedCrash(RuntimeError):
    """The exception ``testing.inject_crash`` makes a client actor raise."""


class ClientActor(pykka.ThreadingActor):
    """The actor that owns one connection to one host and serves requests in order.

    All methods run in the actor's own thread. On stop and on crash every
    command it still holds is handed to ``owner`` (see module docstring);
    none is left unresolved.
    """

    use_daemon_thread = True
    #: Let a blocked caller run its own request while the actor is idle (see ``run_inline``).
    CALLER_RUNS = True

    @staticmethod
    def _create_actor_inbox() -> Inbox:
        return Inbox()

    @staticmethod
    def _create_future() -> ReplyFuture[Any]:
        return ReplyFuture()

    def __init__(self, destination: Destination, options: CheckedOptions, owner: Any) -> None:
        """Prepare the actor; nothing connects until the first request or ``connect``."""
        super().__init__()
        self._destination = destination
        self._options = options
        self._owner = owner
        owner._attach(self)
        self.actor_inbox.on_rejected = owner._on_rejected  # type: ignore[attr-defined]
        self._origin = Origin(destination, options)
        self._wire: Wire | None = None
        self._to_send: deque[Call] = deque()  # admitted, not yet written (in order)
        self._in_flight: deque[Call] = deque()  # written, response not yet read (in order)
        self._stream: StreamChannel | None = None  # the body being streamed, if any
        self._disconnecting = False
        self._aborted: str | None = None  # why abort() failed everything held, once it has
        self._terminated = False
        self.crash_next = False
        self.finished = threading.Event()
        # The turn: held by whichever thread serves (the actor's, or a blocked caller's).
        self._turn = threading.Lock()
        self._crash_in_caller: BaseException | None = None
        self._current: Any = None  # the message being served
        self._received = 0  # commands on_receive has begun to serve (under the turn)
        self._caller_runs = self.CALLER_RUNS and options.pipeline == 1
        self._canceller = self._cancel_claimed  # one bound method for every call
        self._cancel_lock = threading.Lock()  # see _cancel_claimed

    @property
    def connection(self) -> Connection | None:
        """Return the open connection, if any (for tests and introspection)."""
        return self._wire.conn if self._wire is not None else None

    # -- pykka hooks ----------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        """Serve one command, after any call parked before it (actor thread)."""
        with self._turn:
            if isinstance(message, Command):
                self._received += 1
            self._current = message  # held by us from here: a crash must hand it over
            crash, self._crash_in_caller = self._crash_in_caller, None
            if crash is not None:
                raise crash
            if isinstance(message, Call):
                self._serve(message)
            elif isinstance(message, ConnectCommand):
                self._serve_connect(message)
            elif isinstance(message, DisconnectCommand):
                self._serve_disconnect(message)
            elif not isinstance(message, WakeCommand):
                self._current = None
                return super().on_receive(message)
            self._current = None
        return None

    # -- caller runs: the cheap hand-off --------------------------------------------
    #
    # Two thread wake-ups per request (caller -> actor -> caller) cost as much as
    # the HTTP round trip itself on loopback. So the *blocking* API
    # (``fusco_actor.request``), whose caller would only sit waiting, runs the
    # actor's own serving code in the caller's thread when the client is idle:
    # it takes the actor's turn lock, so it is still one request at a time on the
    # actor's connection, and every queue and state it touches is the actor's.
    # A crash met there is handed to the actor thread, which raises it, so
    # supervision sees it as usual; the request is in the actor's queues, so it
    # is handed over like any other.

    def run_inline(self, call: Call) -> bool:
        """Serve ``call`` in the caller's thread if the client is idle, else return False.

        Runs in the caller's thread, holding the actor's turn lock.
        """
        if not self._caller_runs or not self._turn.acquire(blocking=False):
            return False
        try:
            inbox: Inbox = self.actor_inbox  # type: ignore[assignment]
            if self._terminated or inbox.closed or not inbox.empty() or self._stream is not None:
                # (A streamed body still being read owns the connection, even while
                # the turn is released to resolve its future.)
                return False
            if inbox.queued != self._received:
                # An empty inbox alone does not show the actor idle: it may have taken a
                # command out and not yet begun to serve it. Queue behind that one.
                return False
            try:
                self._serve(call)
            except Exception as exc:  # a crash, met in the caller's thread
                self._crash_in_caller = exc
                inbox.put_command(WakeCommand(ReplyFuture()))
            except BaseException:  # e.g. KeyboardInterrupt: the exchange is cut short
                self._close()
                for queue_ in (self._to_send, self._in_flight):
                    if call in queue_:
                        queue_.remove(call)
                self._fail(call.future, ConnectionClosed("the request was interrupted"))
                raise
            return True
        finally:
            self._turn.release()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Hand what the crashed actor held to the owner (actor thread)."""
        self._terminate(crashed=True, reason=exception_value)

    def on_stop(self) -> None:
        """Hand over what the actor held; a crash unless ``disconnect`` asked (actor thread)."""
        self._terminate(crashed=not self._disconnecting, reason=None)

    def _terminate(self, crashed: bool, reason: BaseException | None) -> None:
        if self._terminated:
            return
        self._terminated = True
        held: list[Command] = []
        try:
            with self._turn:  # a caller may be running its request inline: let it finish
                self._close()
                if self._stream is not None:
                    self._stream.fail(ClientStopped("the client stopped while streaming the body"))
                for command in (*self._in_flight, *self._to_send, self._current):
                    # The message in hand may also sit in a queue: hand each over once.
                    if isinstance(command, Command) and not any(command is h for h in held):
                        held.append(command)
                self._in_flight.clear()
                self._to_send.clear()
                held += self.actor_inbox.close()  # type: ignore[attr-defined]
            # Outside the turn: the owner resolves futures, whose callbacks may call us.
            self._owner._on_exit(self.actor_ref, held, crashed, reason)
        finally:
            self.finished.set()

    # -- resolving futures: never under the turn ----------------------------------
    #
    # A done-callback (or a blocked caller woken by it) may call this very client,
    # e.g. the blocking ``fusco_actor.request`` serving inline. So every future is
    # resolved with the turn lock released, at a point where the queues are
    # consistent; the turn is taken again before serving goes on.

    def _outside_turn(self, action: Callable[..., object], *args: Any) -> None:
        self._turn.release()
        try:
            action(*args)
        finally:
            _acquire_through_interrupts(self._turn)

    def _settle(self, future: ReplyFuture[Any], value: Any) -> None:
        """Resolve ``future`` with ``value`` (turn held on entry and on return)."""
        self._outside_turn(future.try_set, value)

    def _fail(self, future: ReplyFuture[Any], error: BaseException) -> None:
        """Fail ``future`` with ``error`` (turn held on entry and on return)."""
        self._outside_turn(future.try_fail, error)

    # -- abort: disconnect's timeout passed --------------------------------------

    def abort(self, reason: str) -> None:
        """Fail every request held with ``ClientStopped`` and shut the socket now (any thread).

        Does not wait for the turn: a request blocked in a send or receive is
        woken by the socket's shutdown and finds everything already failed.
        """
        self._aborted = reason
        wire = self._wire
        if wire is not None:
            wire.conn.interrupt()
        stream = self._stream
        if stream is not None:
            stream.fail(ClientStopped(reason))
            stream.requests.put(CLOSE)  # wake the actor waiting for the consumer
        for command in (*tuple(self._in_flight), *tuple(self._to_send), self._current):
            if isinstance(command, Command):
                fail_stopped(command, reason)

    def _check_crash(self) -> None:
        if self.crash_next:
            self.crash_next = False
            raise InjectedCrash("crash injected by fusco_actor.testing.inject_crash")

    # -- connection -----------------------------------------------------------

    def _close(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None

    def _connect(self, deadline: float | None) -> Wire:
        """Return the open wire, reconnecting when the idle one was dropped."""
        wire = self._wire
        if wire is not None:
            if self._in_flight or not wire.conn.is_dropped():
                return wire
            self._close()
        if self._aborted is not None:
            raise ClientStopped(self._aborted)
        started = time.monotonic()
        try:
            conn = open_connection(self._destination, self._options, deadline)
        except FuscoError as exc:
            self._notify(ConnectInfo(False, exc, time.monotonic() - started, None))
            raise
        self._notify(ConnectInfo(True, None, time.monotonic() - started, conn.address))
        options = self._options
        self._wire = wire = Wire(conn, self._origin, options.max_head_size, options.max_body_size)
        # Set the wire, then look: abort() sets the flag, then looks for the wire.
        if self._aborted is not None:
            self._close()
            raise ClientStopped(self._aborted)
        return wire

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
            self._fail(command.future, exc)
        else:
            self._settle(command.future, None)

    def _serve_disconnect(self, command: DisconnectCommand) -> None:
        self._disconnecting = True
        self._close()
        later = self.actor_inbox.close()  # type: ignore[attr-defined]
        for rejected in later:
            self._outside_turn(self._owner._on_rejected, rejected)
        self._settle(command.future, None)
        self.stop()

    # -- requests ---------------------------------------------------------------

    def _admit(self, call: Call) -> bool:
        """Claim a call for sending; fail it if its deadline passed in the queue."""
        if not call.future.claim():
            return False  # expired in the queue, or resolved by someone else
        deadline = call.deadline
        if deadline is not None and time.monotonic() >= deadline:
            self._fail(
                call.future, RequestTimeout("request timed out while queued; it was not sent")
            )
            return False
        if call.send_retry is None:
            call.send_retry = self._options.send_retry
        call.future.canceller = self._canceller
        return True

    def _cancel_claimed(self, future: ReplyFuture[Any]) -> None:
        """Stop a claimed call its caller cancelled (any thread; ``future`` is failed already).

        Not yet written, it is dropped by :meth:`_write`. Alone on the wire,
        its connection is shut down, which frees the client however long the
        server takes. With other requests in flight behind or before it, the
        connection is left alone (shutting it would re-send or fail them):
        its response is read in order and dropped, so it can never be taken
        for a later request's. The check and the shutdown hold
        ``_cancel_lock``, which the actor takes to retire a finished call, so
        a late shutdown can never cut the next request.
        """
        with self._cancel_lock:
            wire = self._wire
            in_flight = tuple(self._in_flight)
            if wire is not None and len(in_flight) == 1 and in_flight[0].future is future:
                wire.conn.interrupt()

    def _admit_more(self, limit: int) -> None:
        """Take further pipelinable calls from the inbox, up to ``limit`` outstanding."""
        inbox: Inbox = self.actor_inbox  # type: ignore[assignment]
        while len(self._to_send) + len(self._in_flight) < limit:
            try:
                envelope = inbox.get_nowait()
            except queue.Empty:
                return
            if not (isinstance(envelope, Call) and envelope.pipelinable):
                inbox.push_front(envelope)  # served alone once the pipe is empty
                return
            if self._admit(envelope):
                self._to_send.append(envelope)

    def _serve(self, first: Call) -> None:
        """Serve ``first`` and, when pipelining, the pipelinable calls queued behind it.

        Loop: admit, write everything admitted, read the oldest response;
        until nothing is left to write or read. A connection lost on the way
        sends each affected call again (or fails it) per README "Send-retry".
        """
        if not self._admit(first):
            return
        limit = self._options.pipeline if first.pipelinable else 1
        # Write in batches: when the pipe is empty, or once half of it can be refilled
        # at once. One send per request would cost a syscall (and a loopback pass) each.
        low_water = max(1, limit // 2)
        self._to_send.append(first)
        while self._to_send or self._in_flight:
            if self._aborted is not None:
                self._drop_held()
                return
            if self._crash_in_caller is not None:
                return  # raised by the next turn, which hands what is held over
            if limit > 1:
                self._admit_more(limit)
            if self._to_send and (not self._in_flight or len(self._to_send) >= low_water):
                wire = self._wire
                if wire is None or not wire.write_failed:
                    self._write()
                elif not self._in_flight:
                    self._close()  # every response came after all; write on a fresh one
            if self._in_flight:
                self._read_one()

    def _drop_held(self) -> None:
        """After an abort: close, and fail every call held (those abort() did not see)."""
        self._close()
        held = [*self._in_flight, *self._to_send]
        self._to_send.clear()
        self._in_flight.clear()
        for call in held:
            self._fail(call.future, ClientStopped(self._aborted or "the client was aborted"))

    def _write(self) -> None:
        calls = self._to_send
        while calls and calls[0].future.done:  # cancelled after it was admitted
            calls.popleft()
        if not calls:
            return
        first = calls[0]
        self._check_crash()
        deadline = first.deadline
        if first.sends and deadline is not None and time.monotonic() >= deadline:
            # A re-send whose deadline passed: fail it before any reconnect.
            calls.popleft()
            self._fail(
                first.future,
                RequestTimeout(
                    f"request timed out before it could be sent again ({first.sends} sends)"
                ),
            )
            return
        previous = self._wire
        try:
            wire = self._connect(deadline)
        except FuscoError as exc:
            calls.popleft()
            self._fail(first.future, exc)
            return
        reused = wire is previous
        batch = [c for c in calls if not c.future.done]  # none cancelled meanwhile
        calls.clear()
        if not batch:
            return
        first = batch[0]
        for call in batch:
            call.reused = reused
        self._in_flight.extend(batch)
        try:
            if len(batch) == 1 and not first.pipelinable:
                early = wire.write_one(first)
                if early is not None:
                    self._finish(first, early)
            else:
                wire.write_batch(batch)
        except ClosedEarly as closed:
            if first.pipelinable and len(self._in_flight) > 1:
                # Responses to what went out before may still be readable: read them,
                # write nothing more here; the reads end in ClosedEarly for the rest.
                wire.write_failed = True
            else:
                self._lose_connection(closed.send_failed)
        except BodyStreamFailed as exc:
            self._in_flight.remove(first)
            self._close()
            self._fail(first.future, exc.original)
        except FuscoError as exc:
            self._in_flight.remove(first)
            self._lose_connection(False, exc, first)

    def _read_one(self) -> None:
        call = self._in_flight[0]
        try:
            self._finish(call, None)
        except ClosedEarly:
            self._lose_connection(False)
        except FuscoError as exc:
            self._in_flight.popleft()
            self._lose_connection(False, exc, call)

    def _finish(self, call: Call, early_head: ResponseHead | None) -> None:
        """Read ``call``'s response (its head may have come early) and resolve it."""
        wire = self._wire
        assert wire is not None
        if isinstance(call, StreamCall):
            self._stream_body(wire, call, early_head)
            return
        response, keep = wire.read_response(call, early_head)
        self._check_crash()  # a crash here leaves the call in flight, for the supervisor
        with self._cancel_lock:
            self._in_flight.remove(call)
        if not keep:
            # RFC 9112 §9.6: a server that answers "close" processes no further request
            # on the connection, so those pipelined behind it were never seen.
            for unseen in self._in_flight:
                unseen.sends -= 1
            self._lose_connection(False)
        self._settle(call.future, response)

    def _lose_connection(
        self, send_failed: bool, error: FuscoError | None = None, failed: Call | None = None
    ) -> None:
        """Close the connection; fail ``failed`` with ``error``; resend or fail the rest.

        Every call still in flight got no byte of its response: it goes again
        on a fresh connection while README "Send-retry" allows, before anything not yet
        written; otherwise it fails with ``ConnectionClosed``.
        """
        self._close()
        failures: list[tuple[Call, FuscoError]] = []
        if failed is not None and error is not None:
            failures.append((failed, error))
        again: list[Call] = []
        for call in self._in_flight:
            if call.future.done:  # cancelled (or aborted): never sent again
                continue
            if call.may_go_again(send_failed):
                call.mark = None
                again.append(call)
            else:
                failures.append((call, call.closed_early(self._destination.origin)))
        self._in_flight.clear()
        self._to_send.extendleft(reversed(again))
        for call, exc in failures:
            self._fail(call.future, exc)

    def _stream_body(self, wire: Wire, call: StreamCall, early_head: ResponseHead | None) -> None:
        """Resolve ``call`` with a StreamingResponse, then serve its body piece by piece."""
        head = early_head if early_head is not None else wire.read_head(call)
        self._check_crash()
        self._in_flight.remove(call)
        wire.origin.store_cookies(call, head)
        channel = self._stream = StreamChannel()
        self._settle(
            call.future,
            StreamingResponse(head.status, head.reason, head.version, head.headers, channel),
        )
        keep = head.keep_alive and not call.prepared.close and early_head is None
        body = wire.iter_body(call.deadline)
        try:
            while True:
                try:
                    request = channel.requests.get(timeout=remaining(call.deadline))
                except queue.Empty:
                    raise RequestTimeout(
                        "the streamed body was not read before the deadline"
                    ) from None
                if request == CLOSE:
                    keep = False
                    break
                item = next(body)
                self._check_crash()  # "right after it receives": each piece of the body
                if isinstance(item, Headers):
                    channel.done.set()
                    channel.replies.put(("end", item))
                    break
                channel.replies.put(("data", item))
        except FuscoError as exc:
            keep = False
            channel.fail(exc)
        except BaseException:
            # A crash: fail the consumer here, as the finally below hides the channel
            # from _terminate; otherwise it would wait for a reply forever.
            channel.fail(ClientStopped("the client crashed while streaming the body"))
            raise
        finally:
            self._stream = None
            channel.done.set()
        if keep and wire.in_step:
            wire.conn.requests_done += 1
        else:
            self._close()


def _acquire_through_interrupts(lock: threading.Lock) -> None:
    """Take ``lock``; an exception raised while waiting (Ctrl-C) is re-raised once it is held.

    Code after a release-then-acquire must never run without the lock, or it
    would touch (and release) a turn another thread holds.
    """
    pending: BaseException | None = None
    while True:
        try:
            lock.acquire()
        except BaseException as exc:
            pending = exc
            continue
        break
    if pending is not None:
        raise pending
