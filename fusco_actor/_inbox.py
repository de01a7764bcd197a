"""The client actor's commands and its closable inbox.

A command is its own pykka envelope (it has ``message`` and ``reply_to``), so
sending one costs one queue put and no allocation beyond the command. Each
command carries the :class:`ReplyFuture` its caller waits on; pykka never
replies to it (``reply_to`` is None), so an unexpected exception in the actor
reaches ``on_failure`` as a crash instead of going back to one caller.

The inbox can be *closed*: once the actor is stopping, every command still
queued is handed back, and any command put afterwards is passed to the
``on_rejected`` callback at once. This covers pykka's race in which a message
lands in an inbox that a dying actor has already drained and is never answered.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pykka import ActorDeadError, messages

from fusco_actor import _native
from fusco_actor._encoder import PreparedRequest
from fusco_actor._exceptions import ClientStopped, ConnectionClosed
from fusco_actor._future import ReplyFuture
from fusco_actor._retry import may_resend
from fusco_actor.messages import Request

__all__ = [
    "Call",
    "Command",
    "ConnectCommand",
    "DisconnectCommand",
    "Inbox",
    "StreamCall",
    "WakeCommand",
    "fail_stopped",
]


class Command:
    """Base of the messages a client actor serves; each carries a future."""

    __slots__ = ("future",)
    reply_to = None

    def __init__(self, future: ReplyFuture[Any]) -> None:
        """Wrap the future the caller waits on."""
        self.future = future

    @property
    def message(self) -> Command:
        """Return the command itself: it is its own pykka envelope."""
        return self


class Call(Command):
    """One request on its way through a client: message, deadline and send count."""

    __slots__ = ("mark", "prepared", "request", "reused", "send_retry", "sends", "started")

    def __init__(self, request: Request, future: ReplyFuture[Any] | None = None) -> None:
        """Start the request's clock now: its deadline counts from this call (seconds)."""
        timeout = request.timeout
        if future is None:
            future = ReplyFuture(None if timeout is None else time.monotonic() + timeout)
        elif timeout is not None and future.deadline is None:
            future.deadline = time.monotonic() + timeout
        self.future = future
        self.request = request
        self.prepared: PreparedRequest = request.prepared
        self.send_retry = request.send_retry
        self.sends = 0
        self.reused = False  # the last attempt went out on a connection open before it
        self.started = 0.0  # time.monotonic() when the last attempt started sending
        self.mark: int | None = None  # parser.bytes_consumed where this response starts

    @property
    def pipelinable(self) -> bool:
        """Return whether the request may be written ahead of earlier responses."""
        return self.prepared.pipelinable

    @property
    def deadline(self) -> float | None:
        """Return the absolute ``time.monotonic()`` deadline, None for no limit."""
        return self.future.deadline

    def may_go_again(self, send_failed: bool) -> bool:
        """Return whether README "Send-retry" lets this call go again after its connection closed.

        ``send_failed``: the write itself failed. A body stream that cannot be
        replayed (an iterator) never goes again.
        """
        prepared = self.prepared
        replayable = prepared.stream is None or iter(prepared.stream) is not prepared.stream
        return replayable and may_resend(
            idempotent=prepared.idempotent,
            send_failed=send_failed,
            reused=self.reused,
            sends=self.sends,
            send_retry=self.send_retry or 0,
        )

    def closed_early(self, origin: str) -> ConnectionClosed:
        """Return the error of a call whose connection to ``origin`` closed with no response."""
        return ConnectionClosed(
            f"connection to {origin} closed before any byte of the response "
            f"({self.sends} send(s), send_retry={self.send_retry})"
        )


class StreamCall(Call):
    """A request whose response body is handed to the caller as it is read."""

    __slots__ = ()

    @property
    def pipelinable(self) -> bool:
        """Return False: a streamed response holds the connection alone."""
        return False


class ConnectCommand(Command):
    """Connect now (``Client.connect``), with an optional deadline."""

    __slots__ = ()


class DisconnectCommand(Command):
    """Serve what is queued before this, then close and stop (fusco's ``stop``)."""

    __slots__ = ()


class WakeCommand(Command):
    """Wake the actor: serve a parked call, or raise a crash met in a caller's thread."""

    __slots__ = ()


class Inbox:
    """An actor's inbox: a ``SimpleQueue`` that can be closed to commands.

    A thread actor blocks in :meth:`get`. A loop actor (``_scheduler``) binds
    a *wake* callback instead: the put that finds the actor idle calls it, and
    the actor's turn ends with :meth:`end_turn`; both decide under the
    inbox's lock, so no wake-up is lost. Once a loop actor has stopped its
    inbox is *dead* (:meth:`kill`): later mail is answered at once.
    """

    __slots__ = (
        "_closed",
        "_dead",
        "_front",
        "_lock",
        "_queue",
        "_scheduled",
        "_wake",
        "on_rejected",
        "queued",
    )

    def __init__(self) -> None:
        """Create an open, empty inbox; rejected commands go to ``on_rejected``."""
        # Real OS-thread primitives even under gevent: the scheduler shares them (_native).
        self._queue: queue.SimpleQueue[Any] = _native.SimpleQueue()
        self._lock = _native.allocate_lock()
        self._closed = False
        self._dead = False
        self._front: deque[Any] = deque()  # taken ahead by the actor, served next
        self._wake: Callable[[], None] | None = None  # a loop actor's "run a turn"
        self._scheduled = False  # a turn is due or running (loop actors)
        self.queued = 0  # commands queued so far, for the actor to tell whether it is idle
        self.on_rejected: Callable[[Command], None] = _reject_unowned

    def put(self, envelope: Any, /) -> None:
        """Queue an envelope (pykka API); a bare ``Request`` sent with ``ask`` becomes a Call."""
        message = envelope.message
        if isinstance(message, Request):
            future = envelope.reply_to
            envelope = Call(message, future if isinstance(future, ReplyFuture) else None)
        elif not isinstance(message, Command):
            wake = None
            with self._lock:
                dead = self._dead
                if not dead:
                    self._queue.put(envelope)
                    wake = self._claim_turn()
            if dead:
                _answer_dead_letter(envelope, "the actor")
            elif wake is not None:
                wake()
            return
        self.put_command(envelope)

    def put_command(self, command: Command) -> None:
        """Queue a command, or hand it to ``on_rejected`` when the inbox is closed."""
        wake = None
        if self._wake is not None:
            command.future.on_loop = True  # resolved on the scheduler: see ReplyFuture
        with self._lock:
            accepted = not self._closed
            if accepted:
                self.queued += 1
                self._queue.put(command)
                wake = self._claim_turn()
        if not accepted:
            self.on_rejected(command)
        elif wake is not None:
            wake()

    # -- loop actors ---------------------------------------------------------------

    def _claim_turn(self) -> Callable[[], None] | None:
        """Return the wake callback if this put must ask for a turn (lock held)."""
        if self._wake is None or self._scheduled:
            return None
        self._scheduled = True
        return self._wake

    def bind(self, wake: Callable[[], None]) -> None:
        """Make this a loop actor's inbox; ``wake()`` asks for a turn. The first is asked now."""
        with self._lock:
            self._wake = wake
            self._scheduled = True
        wake()

    def take(self) -> Any:
        """Return the next envelope, or None when none is queued (a loop actor's turn)."""
        if self._front:
            return self._front.popleft()
        if self._queue.empty():  # the usual end of a turn: no exception raised and caught
            return None
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def end_turn(self) -> bool:
        """End a turn; return True if mail is waiting (the actor runs another turn)."""
        with self._lock:
            if self._front or not self._queue.empty():
                return True
            self._scheduled = False
            return False

    def kill(self, who: str) -> None:
        """Refuse all mail from now on and answer what is queued (a stopped loop actor).

        Commands go to ``on_rejected``; pykka envelopes asking for a reply get
        ``ActorDeadError`` (a stop request gets None), as pykka's thread
        teardown answers them. ``who`` names the actor in the error.
        """
        with self._lock:
            self._dead = True
        commands = self.close()
        others: list[Any] = []
        with self._lock:
            while True:
                try:
                    others.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        for command in commands:
            self.on_rejected(command)
        for envelope in others:
            _answer_dead_letter(envelope, who)

    def get(self) -> Any:
        """Block until an envelope is available and return it (pykka API; actor thread)."""
        if self._front:
            return self._front.popleft()
        return self._queue.get()

    def get_nowait(self) -> Any:
        """Return the next envelope (actor thread). Raises ``queue.Empty`` when there is none."""
        if self._front:
            return self._front.popleft()
        return self._queue.get_nowait()

    def push_front(self, envelope: Any) -> None:
        """Put back an envelope taken with :meth:`get_nowait`; it is served next (actor thread)."""
        self._front.appendleft(envelope)

    def empty(self) -> bool:
        """Return whether nothing is queued (pykka API)."""
        return not self._front and self._queue.empty()

    @property
    def closed(self) -> bool:
        """Return whether the inbox refuses new commands."""
        return self._closed

    def close(self) -> list[Command]:
        """Refuse new commands and return those still queued, in order.

        Other envelopes (pykka's own stop message, say) stay queued.
        """
        kept: deque[Any] = deque()
        commands: list[Command] = []
        with self._lock:
            self._closed = True
            while self._front:
                item = self._front.popleft()
                (commands if isinstance(item, Command) else kept).append(item)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                (commands if isinstance(item, Command) else kept).append(item)
            for item in kept:
                self._queue.put(item)
        return commands


def fail_stopped(command: Command, message: str = "the client has stopped") -> None:
    """Resolve a command that can no longer be served: ``ClientStopped`` (a disconnect succeeds)."""
    if isinstance(command, DisconnectCommand):
        command.future.try_set(None)
    else:
        command.future.try_fail(ClientStopped(message))


def _reject_unowned(command: Command) -> None:
    fail_stopped(command)


def _answer_dead_letter(envelope: Any, who: str) -> None:
    """Answer a pykka envelope sent to a stopped loop actor ``who`` with ``ActorDeadError``."""
    reply_to = getattr(envelope, "reply_to", None)
    if reply_to is None:
        return
    with contextlib.suppress(queue.Full):  # already resolved (cancelled): nothing to say
        if isinstance(envelope.message, messages._ActorStop):
            reply_to.set(None)
        else:
            error = ActorDeadError(f"{who} stopped before handling the message")
            reply_to.set_exception(exc_info=(ActorDeadError, error, None))
