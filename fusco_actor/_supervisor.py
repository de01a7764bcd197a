"""Supervisor: one-for-one restarts of crashed clients, OTP-style restart intensity.

Theory of operation
-------------------
pykka has no supervision, so it is built from three parts:

* every client actor reports its own end from its thread (``on_failure`` or
  ``on_stop`` → ``Client._on_exit``) with the commands it still held — a
  report that cannot be lost, unlike pykka's link-less actor deaths;
* the :class:`Client` handle parks commands sent while an incarnation is
  ending (the inbox is closed), so pykka's "message lands in a drained
  inbox" race cannot strand a future;
* the :class:`SupervisorActor`, a loop actor served on the scheduler thread
  (``_scheduler``), decides, one message at a time, whether to
  restart the child (at most ``max_restarts`` crashes within ``max_seconds``)
  and which held requests go out again (README "Supervision", "Send-retry"): queued ones always;
  one that was on the wire only while its ``send_retry`` and idempotency
  allow — otherwise it fails with ``ConnectionClosed``. A child given up on
  fails everything with ``ClientStopped``.

A crash is any stop neither ``disconnect`` nor the supervisor asked for.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from fusco_actor._connect_parts import remaining
from fusco_actor._exceptions import BadOption, ClientStopped, ConnectionClosed
from fusco_actor._future import ReplyFuture
from fusco_actor._handle import Client, with_abort_grace
from fusco_actor._inbox import Call, Command, Inbox
from fusco_actor._options import (
    CheckedOptions,
    ClientOptions,
    Destination,
    DestinationLike,
    Unpack,
    parse_destination,
    parse_options,
)
from fusco_actor._retry import may_resend
from fusco_actor._scheduler import LoopActor
from fusco_actor.messages import check_timeout

__all__ = ["RestartIntensity", "Supervisor", "SupervisorActor", "split_held"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESTARTS = 5
DEFAULT_MAX_SECONDS = 10.0


@dataclass(frozen=True)
class RestartIntensity:
    """OTP restart intensity: at most ``max_restarts`` crashes within ``max_seconds``.

    ``record(now)`` returns a new value with the crash added, and whether the
    child may be restarted.
    """

    max_restarts: int = DEFAULT_MAX_RESTARTS
    max_seconds: float = DEFAULT_MAX_SECONDS
    crashes: tuple[float, ...] = field(default=())

    def record(self, now: float) -> tuple[RestartIntensity, bool]:
        """Return the intensity after a crash at ``now`` (seconds) and whether to restart."""
        recent = (*(t for t in self.crashes if now - t < self.max_seconds), now)
        value = RestartIntensity(self.max_restarts, self.max_seconds, recent)
        return value, len(recent) <= self.max_restarts


def split_held(held: list[Command]) -> tuple[list[Command], list[Command]]:
    """Split a crashed incarnation's commands into (send again, fail with ConnectionClosed).

    A command never written goes again. A request that was on the wire goes
    again only while the send-retry rule allows it: idempotent and within ``send_retry``.
    """
    again: list[Command] = []
    failed: list[Command] = []
    for command in held:
        if command.future.done:
            continue
        if isinstance(command, Call) and command.sends > 0:
            allowed = may_resend(
                idempotent=command.prepared.idempotent,
                send_failed=False,
                reused=False,
                sends=command.sends,
                send_retry=command.send_retry or 0,
            )
            replayable = command.prepared.stream is None or iter(command.prepared.stream) is not (
                command.prepared.stream
            )
            (again if allowed and replayable else failed).append(command)
        else:
            again.append(command)
    return again, failed


class ChildCrashed(Command):
    """A child's report that its incarnation crashed holding ``held`` commands."""

    __slots__ = ("client", "held", "reason")

    def __init__(self, client: Client, held: list[Command], reason: Any) -> None:
        """Carry the report; the future is unused (nobody waits on a report)."""
        super().__init__(ReplyFuture())
        self.client, self.held, self.reason = client, held, reason


class ChildStopped(Command):
    """A child's report that it stopped for good."""

    __slots__ = ("client",)

    def __init__(self, client: Client) -> None:
        """Carry the report."""
        super().__init__(ReplyFuture())
        self.client = client


def _report_lost(command: Command) -> None:
    """Give the child up: its report reached a stopped supervisor."""
    if isinstance(command, ChildCrashed):
        command.client._give_up(command.held, "the client's supervisor has stopped")


class SupervisorActor(LoopActor):
    """Restarts crashed children; its state is touched on the scheduler thread only.

    Reports travel through a closable :class:`Inbox`: a report that arrives
    while or after the supervisor stops is answered by giving the child up,
    so no request a crashed child held is ever stranded.
    """

    @staticmethod
    def _create_actor_inbox() -> Inbox:
        inbox = Inbox()
        inbox.on_rejected = _report_lost
        return inbox

    def on_receive(self, message: Any) -> Any:
        """Handle a child's report (scheduler thread)."""
        if isinstance(message, ChildCrashed):
            try:
                self.crashed(message.client, message.held, message.reason)
            except Exception:
                logger.exception("supervisor failed to restart %r", message.client)
                self._drop(message.client)
                message.client._give_up(message.held, "the client's supervisor failed")
        elif isinstance(message, ChildStopped):
            self.stopped(message.client)
        else:
            return super().on_receive(message)
        return None

    def on_stop(self) -> None:
        """Give up on children whose reports are still queued, stop the rest (scheduler thread)."""
        for command in self.actor_inbox.close():  # type: ignore[attr-defined]
            _report_lost(command)
        for child in self.take_children():  # none left running unsupervised
            child._begin_shutdown("the client's supervisor has stopped")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Behave as on stop after a supervisor bug."""
        self.on_stop()

    def __init__(
        self,
        max_restarts: int,
        max_seconds: float,
        on_child_gone: Callable[[Client], None] | None = None,
        children: dict[int, Client] | None = None,
    ) -> None:
        """Hold no child yet; ``on_child_gone`` hears of each child stopped for good.

        ``children`` is the dict the actor keeps its children in; its handle
        holds it too, to stop them should the actor not answer in time.
        """
        super().__init__()
        self._template = RestartIntensity(max_restarts, max_seconds)
        self._children: dict[int, Client] = {} if children is None else children
        self._intensity: dict[int, RestartIntensity] = {}
        self._restarts: dict[int, int] = {}
        self._on_child_gone = on_child_gone

    def add_child(self, client: Client) -> None:
        """Start supervising ``client``."""
        self._children[id(client)] = client
        self._intensity[id(client)] = self._template
        self._restarts[id(client)] = 0

    def children(self) -> list[Client]:
        """Return the live children."""
        return list(self._children.values())

    def restarts(self, client: Client) -> int:
        """Return how many times ``client`` was restarted (0 for an unknown one)."""
        return self._restarts.get(id(client), 0)

    def crashed(self, client: Client, held: list[Command], reason: Any) -> None:
        """Restart ``client`` or give up on it (scheduler thread)."""
        key = id(client)
        if key not in self._children:
            client._give_up(held, "the client's supervisor has stopped")
            return
        intensity, allowed = self._intensity[key].record(time.monotonic())
        self._intensity[key] = intensity
        again, failed = split_held(held)
        for command in failed:
            command.future.try_fail(
                ConnectionClosed(
                    "the client crashed while this request was on the wire and it may not be "
                    "sent again (send_retry spent or not idempotent)"
                )
            )
        if not allowed:
            logger.warning("client %r crashed too often (%r); giving up", client, reason)
            self._drop(client)
            client._give_up(again, "the client crashed too often; its supervisor gave up")
            return
        self._restarts[key] += 1
        logger.info("restarting client %r after %r", client, reason)
        client._restart(again)

    def stopped(self, client: Client) -> None:
        """Forget a child that stopped for good (disconnected or given up)."""
        self._drop(client)

    def _drop(self, client: Client) -> None:
        if self._children.pop(id(client), None) is not None and self._on_child_gone is not None:
            self._on_child_gone(client)

    def take_children(self) -> list[Client]:
        """Stop supervising every child and return them (the caller stops them)."""
        children = list(self._children.items())
        for key, _ in children:  # not clear(): start_client may add one meanwhile
            self._children.pop(key, None)
        return [child for _, child in children]


class Supervisor:
    """A handle on a supervisor actor that restarts crashed clients one-for-one.

    Example:
        >>> sup = fusco_actor.Supervisor.start(max_restarts=5, max_seconds=10.0)  # doctest: +SKIP
        >>> client = sup.start_client("http://127.0.0.1:8080", send_retry=2)  # doctest: +SKIP
        >>> sup.restarts(client)  # doctest: +SKIP
        0
    """

    def __init__(
        self, ref: pykka.ActorRef[SupervisorActor], children: dict[int, Client] | None = None
    ) -> None:
        """Wrap a started supervisor actor and the dict of its children; use :meth:`start`."""
        self._ref = ref
        self._proxy = ref.proxy()
        self._children = {} if children is None else children

    @classmethod
    def start(
        cls,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        *,
        on_child_gone: Callable[[Client], None] | None = None,
    ) -> Supervisor:
        """Start a supervisor; more than ``max_restarts`` crashes in ``max_seconds`` stop a child.

        ``on_child_gone(client)`` is called on the scheduler thread for each
        child that stops for good (the pool uses it to keep its count true);
        it must not block.

        Raises:
            BadOption: a negative ``max_restarts`` or a non-positive ``max_seconds``.
        """
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
            raise BadOption(f"max_restarts: {max_restarts!r} is not an int >= 0")
        if (
            isinstance(max_seconds, bool)
            or not isinstance(max_seconds, (int, float))
            or max_seconds <= 0
        ):
            raise BadOption(f"max_seconds: {max_seconds!r} is not a positive number of seconds")
        children: dict[int, Client] = {}
        ref = SupervisorActor.start(max_restarts, float(max_seconds), on_child_gone, children)
        return cls(ref, children)

    def start_client(
        self, destination: DestinationLike, **options: Unpack[ClientOptions]
    ) -> Client:
        """Start a client under this supervisor (``fusco_actor.start_link``).

        Args:
            destination: as for :func:`fusco_actor.start`.
            **options: the keys of :class:`~fusco_actor.ClientOptions`, as for
                :func:`fusco_actor.start`.

        Raises:
            BadArgument: a bad destination.
            BadOption: a bad option.
            ClientStopped: the supervisor has stopped.
        """
        return self._start_child(parse_destination(destination), parse_options(options))

    def _start_child(self, destination: Destination, options: CheckedOptions) -> Client:
        """Start a client from checked arguments (the pool's way: its options carry its jar).

        Raises:
            ClientStopped: the supervisor has stopped.
        """
        if not self._ref.is_alive():
            raise ClientStopped("the supervisor has stopped")
        client = Client(destination, options, self)
        # Listed at once, so that a stop right after this sees the child...
        self._children[id(client)] = client
        # ...but not waited on: a pool calls this under its lock while the supervisor
        # may be calling the pool back. Should the supervisor die first, the
        # child's crash reports land in its closed inbox and give the child up.
        self._proxy.add_child(client)
        return client

    def children(self) -> list[Client]:
        """Return the live ``Client`` handles ([] once stopped)."""
        try:
            return list(self._proxy.children().get())
        except pykka.ActorDeadError:
            return []

    def restarts(self, client: Client) -> int:
        """Return how many times ``client`` was restarted (0 once stopped)."""
        try:
            return int(self._proxy.restarts(client).get())
        except pykka.ActorDeadError:
            return 0

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop every child in parallel, then the supervisor; return within ``timeout``.

        Queued requests fail with ``ClientStopped`` at once; requests in
        flight may finish until ``timeout`` (seconds; None = no limit) passes,
        then each child still running is aborted: its socket is closed and
        what it held fails with ``ClientStopped``. Aborted children and the
        supervisor get ``ABORT_GRACE`` (0.1 s) more to end.

        Raises:
            BadArgument: ``timeout`` is not a non-negative number or None.
        """
        seconds = check_timeout(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            children: list[Client] = self._proxy.take_children().get(timeout=remaining(deadline))
        except (pykka.ActorDeadError, pykka.Timeout):
            # The supervisor is busy (or timeout=0) or dead: stop its children without
            # it (a copy of the dict it keeps them in is atomic under the GIL).
            children = list(self._children.values())
        message = "the client's supervisor has stopped"
        for child in children:
            child._begin_shutdown(message)
        aborted = []
        for child in children:
            if not child._wait_stopped(remaining(deadline)):
                child._abort(f"{message}: its {seconds} s stop timeout passed")
                aborted.append(child)
        grace = with_abort_grace(deadline)
        for child in aborted:
            child._wait_stopped(remaining(grace))
        with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):
            self._ref.stop(block=True, timeout=remaining(grace))

    # -- reports from children (their threads) ----------------------------------

    def _child_crashed(self, client: Client, held: list[Command], reason: Any) -> None:
        """Report a crash; the supervisor actor restarts ``client`` or gives it up."""
        self._ref.actor_inbox.put_command(ChildCrashed(client, held, reason))  # type: ignore[attr-defined]

    def _child_stopped(self, client: Client) -> None:
        """Report that ``client`` stopped for good."""
        self._ref.actor_inbox.put_command(ChildStopped(client))  # type: ignore[attr-defined]
