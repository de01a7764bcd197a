"""Client: the handle users hold; it routes commands to the current client actor.

The handle outlives actor incarnations: under a supervisor a crashed actor is
replaced and ``Client.actor_ref`` moves to the new one, while the handle the
user holds keeps working. Without a supervisor a crash or stop is final and
every held or later request fails with ``ClientStopped``.

Its public names are what API.md gives users (``request``, ``arequest``,
``stream``, ``connect``, ``disconnect``, ``actor_ref``, the context manager)
and ``cookies``; the hooks the actors, the supervisor and the pool call are
underscored (``_on_exit``, ``_restart``, ``_give_up``, ``_begin_shutdown``,
``_abort``, ...), so they stay out of users' sight.
"""

from __future__ import annotations

import os
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import pykka

from fusco_actor._client import ClientActor
from fusco_actor._connect_parts import remaining
from fusco_actor._future import ReplyFuture, SchedulerBlockedError, on_scheduler_thread
from fusco_actor._inbox import (
    Call,
    Command,
    ConnectCommand,
    DisconnectCommand,
    StreamCall,
    fail_stopped,
)
from fusco_actor._loop_client import LoopClientActor
from fusco_actor.messages import check_timeout, make_request

if TYPE_CHECKING:
    from fusco_actor._cookies import CookieJar
    from fusco_actor._options import CheckedOptions, Destination
    from fusco_actor._response import Response
    from fusco_actor._streaming import StreamingResponse
    from fusco_actor._supervisor import Supervisor

__all__ = ["ABORT_GRACE", "AsyncRequests", "Client", "fail_stopped", "with_abort_grace"]

RUNNING, RESTARTING, STOPPED = "running", "restarting", "stopped"
#: Set to "thread" to run each client on a thread of its own (the engine before 0.3,
#: kept for one release); unset or "loop", clients run on the scheduler.
ENGINE_ENV: Final = "FUSCO_ACTOR_ENGINE"
THREAD_ENGINE_NAMES: Final = ("thread", "threaded")
ABORT_GRACE: Final = 0.1  # seconds an aborted actor is given to end, beyond a stop's timeout


def with_abort_grace(deadline: float | None) -> float | None:
    """Return the deadline by which an actor aborted at ``deadline`` has ended."""
    return None if deadline is None else deadline + ABORT_GRACE


class AsyncRequests:
    """``arequest`` for anything whose ``request`` returns a :class:`ReplyFuture`."""

    def request(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
        send_retry: int | None = None,
    ) -> ReplyFuture[Response]:
        """Send a request; return a future of its response (see subclasses)."""
        raise NotImplementedError

    async def arequest(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
        send_retry: int | None = None,
    ) -> Response:
        """Like ``request``, awaited from asyncio without blocking the loop's thread.

        Raises:
            BadArgument: a bad argument.
            FuscoError: the request failed.
        """
        future = self.request(path, method, headers, body, timeout, send_retry)
        return await future.wait_async()


class Client(AsyncRequests):
    """A handle on one client actor: one keep-alive connection to one host.

    Built by :func:`fusco_actor.start`; many threads may share it. Requests
    are served in order on the one connection.

    Example:
        >>> client = fusco_actor.start("http://127.0.0.1:8080")  # doctest: +SKIP
        >>> client.request("/", "GET", timeout=5.0).get().status  # doctest: +SKIP
        200
    """

    def __init__(
        self,
        destination: Destination,
        options: CheckedOptions,
        supervisor: Supervisor | None = None,
    ) -> None:
        """Start the first actor incarnation (it does not connect yet).

        With ``use_cookies`` and no ``options.cookie_jar`` (a pool's), the
        client gets a jar of its own, kept by every incarnation.
        """
        options = options.with_own_jar(destination.host)
        self._destination = destination
        self._options = options
        self._supervisor = supervisor
        self._lock = threading.RLock()
        self._state = RUNNING
        self._parked: list[Command] = []
        self._actor: Any = None  # the current incarnation's ClientActor (or LoopClientActor)
        self._ref: pykka.ActorRef[Any] = _actor_class().start(destination, options, self)

    # -- incarnations (see the supervisor for who calls what) -----------------

    def _attach(self, actor: Any) -> None:
        """Record the actor object of the incarnation being started (caller's thread)."""
        self._actor = actor

    @property
    def actor_ref(self) -> pykka.ActorRef[Any]:
        """Return the pykka ``ActorRef`` of the current incarnation."""
        return self._ref

    @property
    def cookies(self) -> CookieJar | None:
        """Return the cookie jar of a client started with ``use_cookies=True``, else None.

        Every incarnation of the client (restarts included) uses this one jar,
        and the clients of a :class:`~fusco_actor.Pool` share the pool's;
        read it, seed it (``set``) or empty it (``clear``) from any thread.
        """
        return self._options.cookie_jar

    @property
    def _is_stopped(self) -> bool:
        """Return whether the client stopped for good (disconnected or given up)."""
        return self._state == STOPPED

    def _submit(self, command: Command) -> None:
        self._ref.actor_inbox.put_command(command)  # type: ignore[attr-defined]

    def _on_rejected(self, command: Command) -> None:
        """Handle a command put into a closed inbox (any thread).

        While an incarnation is ending or being replaced the command is parked
        and sent to the next one; once the client stopped for good it fails.
        """
        with self._lock:
            stopped = self._state == STOPPED
            if not stopped and (
                self._state == RESTARTING or self._ref.actor_inbox.closed  # type: ignore[attr-defined]
            ):
                self._parked.append(command)
                return
        if stopped:
            fail_stopped(command)  # never under our lock: it may run done-callbacks
        else:
            self._submit(command)

    def _on_exit(
        self,
        ref: pykka.ActorRef[Any],
        held: list[Command],
        crashed: bool,
        reason: BaseException | None,
    ) -> None:
        """Handle the end of an incarnation holding ``held`` commands (its thread)."""
        supervisor = self._supervisor
        with self._lock:
            supervised = supervisor is not None and crashed and self._state == RUNNING
            if not supervised:
                self._state = STOPPED
                held, self._parked = held + self._parked, []
            else:
                self._state = RESTARTING
        if supervisor is None or not supervised:
            for command in held:
                fail_stopped(command)
            if supervisor is not None:
                supervisor._child_stopped(self)
            return
        supervisor._child_crashed(self, held, reason)

    def _restart(self, held: list[Command]) -> None:
        """Start a new incarnation and send it ``held`` and the parked commands (supervisor)."""
        with self._lock:
            stopped = self._state == STOPPED  # e.g. aborted by disconnect(timeout) meanwhile
        ref = None if stopped else _actor_class().start(self._destination, self._options, self)
        with self._lock:
            if ref is not None:
                self._ref = ref
            # The new incarnation may already have ended (ActorRegistry.stop_all)
            # while RESTARTING: _on_exit then stopped the client for good.
            stopped = self._state == STOPPED
            if not stopped:
                self._state = RUNNING
            commands, self._parked = held + self._parked, []
        if stopped and ref is not None:
            ref.stop(block=False)  # stopped while it started: it must not run on
        for command in commands:
            if stopped:
                fail_stopped(command)
            else:
                self._submit(command)

    def _give_up(self, held: list[Command], message: str) -> None:
        """Stop for good: fail ``held``, parked and later commands (supervisor)."""
        with self._lock:
            self._state = STOPPED
            commands, self._parked = held + self._parked, []
        for command in commands:
            fail_stopped(command, message)

    def _begin_shutdown(self, message: str = "the client has stopped") -> None:
        """Stop for good: queued requests fail with ``ClientStopped``; one in flight ends.

        Does not wait: see :meth:`_wait_stopped` and :meth:`_abort`.
        """
        with self._lock:
            self._state = STOPPED
            ref = self._ref
            parked, self._parked = self._parked, []
        for command in parked + ref.actor_inbox.close():  # type: ignore[attr-defined]
            fail_stopped(command, message)
        ref.stop(block=False)

    def _wait_stopped(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds (None = no limit) for the actor to end; True if it did."""
        actor = self._actor
        return actor is None or actor.finished.wait(timeout)

    def _abort(self, message: str) -> None:
        """Stop for good at once: close the socket, fail everything held with ``ClientStopped``."""
        self._begin_shutdown(message)
        actor = self._actor
        if actor is not None:
            actor.abort(message)

    # -- the messaging API ------------------------------------------------------

    def request(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
        send_retry: int | None = None,
    ) -> ReplyFuture[Response]:
        """Send a request; return a future of its :class:`Response` at once.

        Args:
            path: ``/``-rooted request target (``*`` for OPTIONS).
            method: HTTP method token.
            headers: ``(name, value)`` pairs or a mapping.
            body: bytes-like, ``str``, iodata list, file object or iterable of bytes.
            timeout: seconds for the whole exchange counted from this call,
                queueing included; None = no limit.
            send_retry: re-sends on a closed connection; None = the client's option.

        Raises:
            BadArgument: a bad argument (raised here; nothing is sent).
        """
        call = Call(make_request(path, method, headers, body, timeout, send_retry))
        self._submit(call)
        return call.future

    def _request_blocking(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
        send_retry: int | None = None,
    ) -> Response:
        """Send a request and wait for its response (``fusco_actor.request``).

        When the client is idle the request is served in the calling thread,
        under the actor's turn lock, saving two thread hand-offs; otherwise it
        queues like :meth:`request`.

        Raises:
            BadArgument: a bad argument (nothing is sent).
            FuscoError: the request failed.
            SchedulerBlockedError: called on the scheduler thread (from actor
                code or a callback a loop actor runs), where waiting would freeze
                every actor; nothing is sent.
        """
        if on_scheduler_thread():
            raise SchedulerBlockedError(
                "fusco_actor.request blocks, and it was called on the scheduler thread where "
                "that would freeze every actor; use Client.request with add_done_callback"
            )
        call = Call(make_request(path, method, headers, body, timeout, send_retry))
        actor = self._actor
        if actor is None or not actor.run_inline(call):
            self._submit(call)
        response: Response = call.future.get()
        return response

    def stream(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
    ) -> ReplyFuture[StreamingResponse]:
        """Send a request; return a future of a :class:`StreamingResponse`.

        The body is read from the socket only as the caller consumes it
        (``iter_bytes``, ``read``); requests queued behind it wait. Reading
        to the end keeps the connection alive; closing early closes it.
        ``body`` may be a file object or an iterable of any size (streamed
        upload). ``timeout``: seconds for the whole exchange, body included.

        Raises:
            BadArgument: a bad argument (nothing is sent).
        """
        call = StreamCall(make_request(path, method, headers, body, timeout, None))
        self._submit(call)
        return call.future

    def connect(self, timeout: float | None = None) -> None:
        """Connect now, if not connected yet (blocking).

        Args:
            timeout: seconds to wait, besides ``connect_timeout``; None = no limit.

        Raises:
            ConnectError, ConnectTimeout, TLSError, ProxyError: the connect failed.
            RequestTimeout: ``timeout`` passed first.
            ClientStopped: the client was stopped.
        """
        seconds = check_timeout(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        command = ConnectCommand(ReplyFuture(deadline))
        self._submit(command)
        command.future.get()

    def disconnect(self, timeout: float | None = None) -> None:
        """Serve what is queued, close the connection and stop (fusco's ``stop``).

        Returns once the actor has stopped; requests sent afterwards fail with
        ``ClientStopped``. When ``timeout`` passes first it aborts: the socket
        is closed, every request still held fails with ``ClientStopped``, and
        it returns within the timeout (plus ``ABORT_GRACE``, 0.1 s, for the
        aborted actor to end).

        Args:
            timeout: seconds to wait for the queued requests and the stop;
                None = no limit.

        Raises:
            BadArgument: ``timeout`` is not a non-negative number or None.
        """
        seconds = check_timeout(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        command = DisconnectCommand(ReplyFuture())
        self._submit(command)
        try:
            command.future.get(timeout=remaining(deadline))
        except pykka.Timeout:
            self._abort(f"the client was disconnected: its {seconds} s timeout passed")
        self._wait_stopped(remaining(with_abort_grace(deadline)))

    def __enter__(self) -> Client:
        """Return the client; it is disconnected on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Disconnect the client."""
        self.disconnect()

    def __repr__(self) -> str:
        """Show the origin and the current incarnation."""
        return f"<Client {self._destination.origin} {self._ref}>"


def _actor_class() -> type[ClientActor] | type[LoopClientActor]:
    """Return the client actor type: on the scheduler, unless ``FUSCO_ACTOR_ENGINE=thread``."""
    return ClientActor if os.environ.get(ENGINE_ENV) in THREAD_ENGINE_NAMES else LoopClientActor
