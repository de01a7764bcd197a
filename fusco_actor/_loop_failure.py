"""Crashes and stops of the loop client actor (``_loop_client``; issue 10).

Theory of operation
-------------------
*Crashes.* A turn of a loop actor already has pykka's failure path: an
exception leaving ``on_receive`` reaches ``on_failure`` (``_scheduler``).
Socket callbacks, timers and the connect task's completion run outside any
turn, so the loop would log what they raise and the actor would live on with
its state half changed. Every such entry point of the client actor is
wrapped in :func:`crash_guarded`: an ``Exception`` takes the same path as in
a turn (``_handle_failure``, ``on_failure`` → ``_terminate(crashed=True)`` →
the owner hears of the crash, a supervisor restarts and re-sends by
README "Supervision" and "Send-retry"), then the inbox is killed as a turn's
end would. A ``BaseException`` stops every actor, as in a turn; none reaches the loop.
:func:`check_crash` is ``testing.inject_crash``'s trigger, placed where the
threaded actor has it: before a request is sent, right after a response is
received (the call is still held, for the supervisor to judge).

*Stops.* pykka's stop message (``ActorRef.stop``: a supervisor's or pool's
shutdown, or anyone's) is served as the threaded actor serves it: what the
actor has in hand — requests on the wire, re-sends of those, the request a
connect is under way for, ``connect()`` waiters — is finished first; what is
merely queued is not started. Queued commands are *withheld*: failed at once
with ``ClientStopped`` when the client is stopping for good, otherwise (an
outside stop, a crash by README "Supervision") handed to the owner with the rest, for the
next incarnation. Once nothing is in hand the actor stops; an abort
(``disconnect``/``stop`` timeouts) stops it at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pykka import ActorDeadError, messages

from fusco_actor._client import InjectedCrash
from fusco_actor._inbox import Command, fail_stopped

if TYPE_CHECKING:
    from fusco_actor._loop_client import LoopClientActor

__all__ = [
    "DeferredStop",
    "answer_stops",
    "callback_failed",
    "check_crash",
    "crash_guarded",
    "defer_stop",
    "finish_deferred_stop",
    "held_once",
    "take_withheld",
    "withhold",
]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])


def check_crash(actor: LoopClientActor) -> None:
    """Raise ``InjectedCrash`` if ``testing.inject_crash`` asked for one (scheduler thread)."""
    if actor.crash_next:
        actor.crash_next = False
        raise InjectedCrash("crash injected by fusco_actor.testing.inject_crash")


def crash_guarded(method: F) -> F:
    """Wrap a loop callback of the client actor: what it raises crashes the actor, never the loop.

    For socket events, timers, the connect task's completion and calls made
    with ``call_soon``: anything that runs on the loop outside a turn.
    """

    @functools.wraps(method)
    def guarded(actor: LoopClientActor, *args: Any) -> None:
        try:
            method(actor, *args)
        except Exception:
            _crash(actor, sys.exc_info())
        except BaseException:  # e.g. SystemExit from a user's callback: never to the loop
            _stop_everything(actor)

    return guarded  # type: ignore[return-value]


def callback_failed(actor: LoopClientActor) -> None:
    """:func:`crash_guarded`'s handling, for a hot callback that inlines its ``try``.

    Call it from ``except BaseException:`` (it reads ``sys.exc_info()``).
    """
    exc_info = sys.exc_info()
    if isinstance(exc_info[1], Exception):
        _crash(actor, exc_info)
    else:
        _stop_everything(actor)


def _crash(actor: LoopClientActor, exc_info: Any) -> None:
    """Take a turn's failure path for an exception raised in a callback (scheduler thread)."""
    if actor.actor_stopped.is_set():
        logger.error("callback of stopped %s raised; ignored", actor, exc_info=exc_info)
        return
    actor._handle_failure(*exc_info)  # logs, unregisters, marks the actor stopped
    try:
        actor.on_failure(*exc_info)
    except Exception:
        actor._handle_failure(*sys.exc_info())
    actor.actor_inbox.kill(str(actor.actor_ref))  # type: ignore[attr-defined]


def _stop_everything(actor: LoopClientActor) -> None:
    try:
        actor._stop_everything()
        actor.actor_inbox.kill(str(actor.actor_ref))  # type: ignore[attr-defined]
    except BaseException:  # nothing may reach the loop
        logger.exception("stopping %s after a BaseException failed", actor)


# -- stops served as the threaded actor serves them ------------------------------------------


class DeferredStop:
    """A stop request waiting for what the actor has in hand, and the commands it withheld."""

    __slots__ = ("replies", "told", "withheld")

    def __init__(self) -> None:
        """Hold no reply and no command yet."""
        self.replies: list[Any] = []  # the futures of the stop requests (pykka's reply_to)
        self.withheld: list[Command] = []
        self.told = False  # the final stop message is on its way


def _in_hand(actor: LoopClientActor) -> bool:
    return bool(
        actor._in_flight or actor._to_send or actor._connect_waiters or actor._stream is not None
    )


def defer_stop(actor: LoopClientActor, envelope: Any) -> bool:
    """Serve a stop request later if the actor has work in hand; True if deferred (turn)."""
    if not isinstance(envelope.message, messages._ActorStop):
        return False
    if actor._aborted is not None or actor._terminated or not _in_hand(actor):
        return False  # stop now
    stop = actor._stopping
    if stop is None:
        stop = actor._stopping = DeferredStop()
        connect_for = actor._connect_for if actor._connecting is not None else None
        kept = []
        for call in actor._to_send:
            if call.sends > 0 or call is connect_for:  # a re-send, or connected for: in hand
                kept.append(call)
            else:
                withhold(actor, call)
        actor._to_send.clear()
        actor._to_send.extend(kept)
    if envelope.reply_to is not None:
        stop.replies.append(envelope.reply_to)
    stop.told = False  # this one is deferred: the next time nothing is in hand tells again
    finish_deferred_stop(actor)
    return True


def withhold(actor: LoopClientActor, command: Command) -> bool:
    """Keep ``command`` from being served once a stop is deferred; True if withheld (turn)."""
    stop = actor._stopping
    if stop is None:
        return False
    if getattr(actor._owner, "is_stopped", False):
        fail_stopped(command, "the client has stopped")  # a shutdown: queued ones fail at once
    else:
        stop.withheld.append(command)  # handed over with the rest, for the next incarnation
    return True


def finish_deferred_stop(actor: LoopClientActor) -> None:
    """Stop once a deferred stop finds nothing more in hand (scheduler thread)."""
    stop = actor._stopping
    if stop is None or stop.told or actor._terminated or _in_hand(actor):
        return
    stop.told = True
    with contextlib.suppress(ActorDeadError):  # stopped meanwhile: nothing left to do
        actor.actor_ref.tell(messages._ActorStop())  # served at once: nothing is in hand


def take_withheld(actor: LoopClientActor) -> tuple[list[Command], list[Any]]:
    """Return the withheld commands and the stop requests' futures, and forget them."""
    stop = actor._stopping
    if stop is None:
        return [], []
    withheld, stop.withheld = stop.withheld, []
    replies, stop.replies = stop.replies, []
    return withheld, replies


def answer_stops(replies: list[Any]) -> None:
    """Answer deferred stop requests once the actor has stopped (pykka replies None)."""
    for reply in replies:
        with contextlib.suppress(queue.Full):  # already answered (cancelled, say)
            reply.set(None)


def held_once(held: list[Command]) -> list[Command]:
    """Return ``held`` with each command once (a call may sit in two places mid-step)."""
    seen: set[int] = set()
    unique: list[Command] = []
    for command in held:
        if id(command) not in seen:
            seen.add(id(command))
            unique.append(command)
    return unique
