"""The scheduler: pykka actors run M:N on one event loop thread, as Erlang runs processes.

Theory of operation
-------------------
One process-wide :class:`Scheduler` owns an event loop (uvloop where it
installs, asyncio's own loop otherwise) running on a daemon thread. A
:class:`LoopActor` is a pykka actor type (pykka's hooks
``_create_actor_inbox``, ``_create_future``, ``_start_actor_loop``) that has
no thread of its own: its mail is served in *turns* on that loop.

Scheduling: ``Inbox.put`` (any thread) queues the envelope and, under the
inbox's lock, marks the actor *scheduled* if it was idle; only that put asks
the loop for a turn. A turn serves at most ``TURN_LIMIT`` envelopes, then,
under the same lock, either clears the mark (nothing queued) or asks for
another turn. Since the mark is only set and cleared under the lock that
guards the queue, no wake-up is lost and an actor never runs two turns at once.
After the envelopes of a turn, ``on_turn_end`` runs once: work that each
message would otherwise repeat (a client's write) is done there, once per burst.

A turn handles each envelope as pykka's thread loop does
(``_actor_loop_running``): the reply (or the exception) goes to
``reply_to``; a failed ``tell`` logs, calls ``on_failure`` and stops the
actor; a ``BaseException`` stops every actor. Once an actor has stopped, its
inbox is *dead*: what was queued and what arrives later is answered with
``ActorDeadError`` at once, so pykka's drained-inbox race cannot leave a
future unanswered.

Actor code runs on the loop thread and must never block it: a blocking wait
on a fusco_actor future there raises :class:`SchedulerBlockedError` instead
of freezing every actor (see :func:`on_scheduler_thread`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
from typing import TYPE_CHECKING, Any, ClassVar, Final

import pykka
from pykka import ActorDeadError, ActorRegistry

from fusco_actor import _native
from fusco_actor._future import ReplyFuture, mark_scheduler_thread, set_deferrer
from fusco_actor._inbox import Inbox
from fusco_actor._limits import raise_open_file_limit

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["LoopActor", "Scheduler", "get_scheduler"]

logger = logging.getLogger(__name__)

#: Set to "asyncio" to run the scheduler on asyncio's own loop even where uvloop installs.
LOOP_ENV: Final = "FUSCO_ACTOR_LOOP"


def _new_loop() -> tuple[asyncio.AbstractEventLoop, str]:
    """Return a new event loop and its name: uvloop's where it imports, else asyncio's."""
    if os.environ.get(LOOP_ENV, "").lower() != "asyncio":
        try:
            import uvloop  # noqa: PLC0415 - optional at run time (no wheels on Windows)
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop(), "uvloop"
    if _native.gevent_patched():  # asyncio's default selector would be gevent's (a hub)
        return asyncio.SelectorEventLoop(_native.DefaultSelector()), "asyncio"
    return asyncio.new_event_loop(), "asyncio"


class Scheduler:
    """One event loop on a daemon thread: it runs actor turns, timers and socket callbacks.

    Use :func:`get_scheduler`; there is one per process.

    Attributes:
        loop: the event loop (only ever touched from its own thread, except
            through ``call_soon`` and ``asyncio.run_coroutine_threadsafe``).
        loop_name: ``"uvloop"`` or ``"asyncio"``.
        open_files: the open-file limits once the scheduler raised the soft
            one to the hard one (see :mod:`fusco_actor._limits`).
    """

    def __init__(self) -> None:
        """Start the loop thread and return once the loop runs.

        Raises:
            RuntimeError: the loop thread did not start within 10 seconds.
        """
        self.open_files = raise_open_file_limit()  # one fd per connection: 10,000 clients
        if _native.gevent_patched():
            _install_gevent_waiter()
        self.loop, self.loop_name = _new_loop()
        self._ident = 0
        ready = _native.allocate_lock()  # a real lock: a patched one would wait on a gevent hub
        ready.acquire()

        def run() -> None:
            self._ident = _native.get_ident()
            mark_scheduler_thread(self._ident)
            asyncio.set_event_loop(self.loop)
            set_deferrer(self.loop.call_soon)
            self.loop.call_soon(ready.release)
            self.loop.run_forever()

        # A real OS thread even when gevent has patched threading (see _native).
        self.thread = _native.start_thread(run, "fusco-scheduler")
        if not ready.acquire(timeout=10.0):
            raise RuntimeError("the fusco_actor scheduler thread did not start")

    @property
    def in_loop(self) -> bool:
        """Return whether the caller runs on the scheduler's thread."""
        return _native.get_ident() == self._ident

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop soon (from any thread, in call order per thread)."""
        if _native.get_ident() == self._ident:
            self.loop.call_soon(callback, *args)
        else:
            self.loop.call_soon_threadsafe(callback, *args)

    def __repr__(self) -> str:
        """Show the loop kind and thread."""
        return f"<Scheduler {self.loop_name} on {self.thread.name}>"


_scheduler: Scheduler | None = None
_scheduler_lock = _native.allocate_lock()


def _install_gevent_waiter() -> None:
    """Make callers that are greenlets wait cooperatively (gevent has patched the process).

    The one place the core reaches for gevent, and only once gevent has
    monkey-patched ``threading``: :mod:`fusco_actor.contrib._gevent` holds the
    gevent code and sets :func:`fusco_actor._future.set_green_waiter`.
    """
    from fusco_actor.contrib import _gevent as green  # noqa: PLC0415 - only when patched

    green.install()


def get_scheduler() -> Scheduler:
    """Return the process's scheduler, starting it on first use (any thread)."""
    scheduler = _scheduler
    if scheduler is not None and scheduler.thread.is_alive():
        return scheduler
    return _start_scheduler()


def _start_scheduler() -> Scheduler:
    global _scheduler  # noqa: PLW0603 - one per process, made lazily
    with _scheduler_lock:
        if _scheduler is None or not _scheduler.thread.is_alive():
            _scheduler = Scheduler()
        return _scheduler


class LoopActor(pykka.Actor):
    """A pykka actor served in turns on the shared scheduler loop (no thread of its own).

    Everything pykka offers keeps working from any thread: ``ActorRef.tell``,
    ``ask``, ``stop``, ``proxy()``, the ``ActorRegistry``, ``actor_stopped``,
    and the hooks ``on_start``, ``on_receive``, ``on_stop``, ``on_failure``,
    which all run on the scheduler thread and must not block it. Futures are
    :class:`~fusco_actor._future.ReplyFuture`: ``get()`` from a thread, ``await``
    from any asyncio loop, ``add_done_callback`` from anywhere.
    """

    #: Envelopes one turn serves before the actor yields the loop to the others.
    TURN_LIMIT: ClassVar[int] = 64

    @staticmethod
    def _create_actor_inbox() -> Inbox:
        return Inbox()

    @staticmethod
    def _create_future() -> ReplyFuture[Any]:
        future: ReplyFuture[Any] = ReplyFuture()
        future.on_loop = True
        return future

    def _start_actor_loop(self) -> None:
        self._started = False
        scheduler = get_scheduler()
        inbox: Inbox = self.actor_inbox  # type: ignore[assignment]
        self._scheduler = scheduler
        loop, run_turn, get_ident = scheduler.loop, self._run_turn, _native.get_ident

        def wake() -> None:  # Scheduler.call_soon, one call less: once per turn asked for
            if get_ident() == scheduler._ident:
                loop.call_soon(run_turn)
            else:
                loop.call_soon_threadsafe(run_turn)

        inbox.bind(wake)

    def _run_turn(self) -> None:
        """Serve up to TURN_LIMIT envelopes (scheduler thread)."""
        inbox: Inbox = self.actor_inbox  # type: ignore[assignment]
        try:
            if not self._started:
                self._started = True
                self._actor_loop_setup()  # on_start; a failure stops the actor
            served = 0
            while served < self.TURN_LIMIT and not self.actor_stopped.is_set():
                envelope = inbox.take()
                if envelope is None:
                    break
                served += 1
                self._serve_envelope(envelope)
            if not self.actor_stopped.is_set():
                self.on_turn_end()
        except Exception:
            logger.exception("turn of %s failed; stopping it", self)
            self._handle_failure(*sys.exc_info())
            with contextlib.suppress(Exception):
                self.on_failure(*sys.exc_info())
        except BaseException:  # e.g. SystemExit in on_start: it must never reach the loop
            self._stop_everything()
        if self.actor_stopped.is_set():
            inbox.kill(str(self.actor_ref))
        elif inbox.end_turn():
            self._scheduler.loop.call_soon(self._run_turn)  # on its thread: no lock needed

    def on_turn_end(self) -> None:
        """Run once after the envelopes of a turn are served (scheduler thread); a no-op here.

        An actor may defer work to it that one envelope would do once per message,
        such as writing what the turn queued with one system call. An exception
        raised here fails the actor as one raised by ``on_receive`` would.
        """

    def _serve_envelope(self, envelope: Any) -> None:
        """Handle one envelope as pykka's ``_actor_loop_running`` does (scheduler thread)."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                logger.info(f"Exception returned from {self} to caller:", exc_info=sys.exc_info())
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            if envelope.reply_to is not None:
                error = ActorDeadError(f"{self} stopped by {sys.exc_info()[1]!r}")
                with contextlib.suppress(queue.Full):
                    envelope.reply_to.set_exception(exc_info=(ActorDeadError, error, None))
            self._stop_everything()

    def _stop_everything(self) -> None:
        """Stop this actor and every other, as pykka does on a ``BaseException`` (never blocks)."""
        logger.debug(f"{sys.exc_info()[1]!r} in {self}. Stopping all actors.")
        if not self.actor_stopped.is_set():
            with contextlib.suppress(Exception):
                self._stop()
        ActorRegistry.stop_all(block=False)  # never block the scheduler thread
