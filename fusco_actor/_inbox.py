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

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from fusco_actor._encoder import PreparedRequest
from fusco_actor._exceptions import ClientStopped
from fusco_actor._future import ReplyFuture
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
        if future is None:
            future = ReplyFuture()
        if request.timeout is not None and future.deadline is None:
            future.deadline = time.monotonic() + request.timeout
        super().__init__(future)
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
        p = self.prepared
        return p.idempotent and p.stream is None and not p.expect_continue and not p.close

    @property
    def deadline(self) -> float | None:
        """Return the absolute ``time.monotonic()`` deadline, None for no limit."""
        return self.future.deadline


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
    """The client actor's inbox: a ``SimpleQueue`` that can be closed to commands."""

    __slots__ = ("_closed", "_front", "_lock", "_queue", "on_rejected", "queued")

    def __init__(self) -> None:
        """Create an open, empty inbox; rejected commands go to ``on_rejected``."""
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._front: deque[Any] = deque()  # taken ahead by the actor, served next
        self.queued = 0  # commands queued so far, for the actor to tell whether it is idle
        self.on_rejected: Callable[[Command], None] = _reject_unowned

    def put(self, envelope: Any, /) -> None:
        """Queue an envelope (pykka API); a bare ``Request`` sent with ``ask`` becomes a Call."""
        message = envelope.message
        if isinstance(message, Request):
            future = envelope.reply_to
            envelope = Call(message, future if isinstance(future, ReplyFuture) else None)
        elif not isinstance(message, Command):
            self._queue.put(envelope)
            return
        self.put_command(envelope)

    def put_command(self, command: Command) -> None:
        """Queue a command, or hand it to ``on_rejected`` when the inbox is closed."""
        with self._lock:
            if not self._closed:
                self.queued += 1
                self._queue.put(command)
                return
        self.on_rejected(command)

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
