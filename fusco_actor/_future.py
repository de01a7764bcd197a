"""ReplyFuture: the pykka future every request resolves, with a deadline of its own.

pykka lets an actor class choose its future type (``Actor._create_future``);
the client actor uses this one, so ``actor_ref.ask(Request(...), block=False)``
and ``Client.request`` return the same kind of future.

Two threads may race to resolve a request: the actor that serves it, and a
caller whose ``timeout`` ran out while the request was still queued. The
actor *claims* a future before it writes a byte; a caller waiting in
:meth:`ReplyFuture.get` may expire it only while it is unclaimed. So a request
whose deadline passes in the queue fails without being sent, and one that is
on the wire is finished (or timed out) by the actor alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

import pykka
from pykka._future import _Unset

from fusco_actor import _native
from fusco_actor._exceptions import RequestTimeout
from fusco_actor._timers import DeadlineTimer

__all__ = [
    "ReplyFuture",
    "SchedulerBlockedError",
    "mark_scheduler_thread",
    "on_scheduler_thread",
    "set_deferrer",
    "set_green_waiter",
]

logger = logging.getLogger(__name__)

_scheduler_ident = 0  # the scheduler thread's ident, once it runs (see _scheduler)


def mark_scheduler_thread(ident: int) -> None:
    """Record the scheduler thread: a blocking ``get`` there raises (``_scheduler`` calls this)."""
    global _scheduler_ident  # noqa: PLW0603 - one scheduler per process
    _scheduler_ident = ident


def on_scheduler_thread() -> bool:
    """Return whether the caller runs on the scheduler thread, where nothing may block."""
    return _scheduler_ident != 0 and _native.get_ident() == _scheduler_ident


class SchedulerBlockedError(RuntimeError):
    """Raised when code on the scheduler thread waits on a future that is not resolved yet.

    Every actor of the process runs on that thread: waiting there would freeze
    them all, the one that should resolve the future included. Use
    ``add_done_callback`` or ``await`` instead.
    """


T = TypeVar("T")


# One lock guards every future's claim/resolve transition: the critical sections
# are a few attribute writes, and sharing it saves a lock allocation per request.
# A real lock even under gevent: the scheduler thread takes it too (see _native).
_TRANSITION = _native.allocate_lock()
_UNSET = _Unset()  # pykka tells "no result yet" by isinstance: one instance serves all


class ReplyFuture(pykka.Future[T], Generic[T]):
    """A ``pykka.Future`` resolved by a client actor.

    A thread waiting on a future that a loop actor resolves (``on_loop``)
    blocks on an eventfd of its own (Linux). The scheduler writes it once the
    callbacks at hand are done (one wake-up for all the responses read in
    one go), with the GIL let go, so the waiter takes the GIL at once instead
    of waking only to wait for it. Otherwise one pre-acquired lock is the
    signal (released once on resolution, with the GIL held: a thread actor
    goes on with its batch). Either is cheaper than pykka's
    ``threading.Condition``. Waiters are woken after the done-callbacks ran.

    Args:
        deadline: ``time.monotonic()`` seconds after which an unclaimed
            request fails with ``RequestTimeout``; None = no limit.
    """

    def __init__(self, deadline: float | None = None) -> None:
        """Create an unresolved future."""
        # pykka.Future.__init__'s two fields, without its call and its _Unset() per future.
        self._get_hook = None
        self._get_hook_result = _UNSET
        self._signal: threading.Lock | None = None  # made by the first waiter, held until resolved
        self._waker: list[_EventFd] | None = None  # the waiting threads' eventfds (_wait_fd)
        self._done = False
        self._claimed = False
        self._value: Any = None
        self._exc: BaseException | None = None
        self._callbacks: list[Callable[[ReplyFuture[T]], None]] | None = None
        self.deadline = deadline
        #: Set when a loop actor will resolve it: a waiter then blocks on its eventfd.
        self.on_loop = False
        #: Set by the actor that claimed the request: ``canceller(self)`` stops it in flight.
        self.canceller: Callable[[ReplyFuture[Any]], None] | None = None

    def __repr__(self) -> str:
        """Show whether the future is resolved."""
        return f"<ReplyFuture {'done' if self._done else 'pending'}>"

    # -- resolving (actor side) ---------------------------------------------

    def claim(self) -> bool:
        """Take the request over for sending; False if it is already resolved."""
        with _TRANSITION:
            if self._done:
                return False
            self._claimed = True
            return True

    @property
    def done(self) -> bool:
        """Return whether a value or an exception has been set."""
        return self._done

    def _resolve(self, value: Any, exc: BaseException | None, unclaimed_only: bool = False) -> bool:
        with _TRANSITION:
            if self._done or self._get_hook is not None or (unclaimed_only and self._claimed):
                return False
            self._value, self._exc, self._done = value, exc, True
            callbacks, self._callbacks = self._callbacks, None
            signal = self._signal
            wakers, self._waker = self._waker, None
        try:
            if callbacks:
                for callback in callbacks:  # _run_callback's body, one call less
                    try:
                        callback(self)
                    except Exception:
                        logger.exception(
                            "done-callback %r of a fusco_actor future raised; ignored", callback
                        )
        finally:  # waiters last: get() returns once the done-callbacks have run
            if signal is not None:
                signal.release()
            if wakers is not None:
                _wake(wakers)
        return True

    def _run_callback(self, callback: Callable[[ReplyFuture[T]], None]) -> None:
        """Run one done-callback; what it raises is logged and skipped.

        The callback runs in whichever thread resolved the future (often a
        client actor's): a failing callback must never crash that actor.
        """
        try:
            callback(self)
        except Exception:
            logger.exception("done-callback %r of a fusco_actor future raised; ignored", callback)

    def try_set(self, value: Any) -> bool:
        """Set the value unless already resolved; return whether it was set."""
        return self._resolve(value, None)

    def try_fail(self, exc: BaseException) -> bool:
        """Set an exception unless already resolved; return whether it was set."""
        return self._resolve(None, exc)

    def set(self, value: Any | None = None) -> None:
        """Set the value (pykka API); a no-op on a cancelled future.

        Raises:
            queue.Full: the future is already resolved (and was not cancelled).
        """
        if not self._resolve(value, None) and not self._cancelled():
            raise queue.Full

    def _cancelled(self) -> bool:
        """Return whether :meth:`cancel` resolved this future (its late answer is dropped)."""
        return isinstance(self._exc, asyncio.CancelledError)

    def set_exception(self, exc_info: Any = None) -> None:
        """Set an exception from ``exc_info`` or the one being handled (pykka API).

        Raises:
            queue.Full: the future is already resolved.
        """
        if exc_info is None:
            exc_info = sys.exc_info()
        exc = exc_info[1] if exc_info[1] is not None else exc_info[0]()
        if not self._resolve(None, exc) and not self._cancelled():
            raise queue.Full

    def add_done_callback(self, callback: Callable[[ReplyFuture[T]], None]) -> None:
        """Call ``callback(self)`` once resolved, in the resolving thread (at once if resolved).

        Raises:
            TypeError: a future pykka derived with a get-hook (``map``, ``join``,
                ``ActorRef.stop(block=False)``): it is never resolved itself;
                use ``get()`` or ``await``.
        """
        if self._get_hook is not None:
            raise TypeError("a pykka-derived future (get-hook) takes no done-callback")
        with _TRANSITION:
            if not self._done:
                if self._callbacks is None:
                    self._callbacks = [callback]
                else:
                    self._callbacks.append(callback)
                return
        self._run_callback(callback)

    # -- waiting (caller side) ----------------------------------------------

    def get(self, *, timeout: float | None = None) -> T:
        """Return the response, or raise the request's error.

        Args:
            timeout: seconds to wait for the reply; None = until resolved.

        Raises:
            pykka.Timeout: ``timeout`` passed first (the request goes on).
            FuscoError: the request failed.
        """
        if not self._done:
            if self._get_hook is None and _native.get_ident() == _scheduler_ident:
                raise SchedulerBlockedError(
                    "a blocking get() on the fusco_actor scheduler thread would freeze every "
                    "actor; use add_done_callback() or await from actor code and callbacks"
                )
            if self._get_hook is not None:
                return super().get(timeout=timeout)
            if not self._done:
                green_wait = _green_wait
                if green_wait is not None:  # a greenlet must yield while it waits (gevent)
                    self._wait_green(green_wait, timeout)
                elif self.on_loop and (waker := _thread_eventfd()) is not None:
                    self._wait_fd(waker, timeout)
                else:
                    self._wait(timeout)
        if self._exc is not None:
            raise self._exc
        return self._value  # type: ignore[no-any-return]

    def _signal_lock(self) -> threading.Lock:
        """Return the signal lock, made (acquired) by the first waiter; released on resolution."""
        with _TRANSITION:
            signal = self._signal
            if signal is None:
                signal = self._signal = threading.Lock()
                if not self._done:
                    signal.acquire()
            return signal

    def _wait(self, timeout: float | None) -> None:
        signal = self._signal_lock()
        if timeout is None and self.deadline is None:
            signal.acquire()
            signal.release()
            return
        limit = None if timeout is None else time.monotonic() + timeout
        while not self._done:
            wait = self._time_to_wait(limit)
            if wait is None:
                signal.acquire()
            elif wait <= 0 or not signal.acquire(timeout=wait):
                if limit is not None and time.monotonic() >= limit and not self._done:
                    raise pykka.Timeout(f"{timeout} seconds")
                continue
            signal.release()

    def _wait_green(self, wait_for: GreenWaiter, timeout: float | None) -> None:
        """Wait as :meth:`_wait_fd` does, through the installed cooperative wait (gevent)."""
        limit = None if timeout is None else time.monotonic() + timeout
        while not self._done:
            wait = self._time_to_wait(limit)
            if wait is None or wait > 0:
                wait_for(self, wait)
            elif limit is not None and time.monotonic() >= limit and not self._done:
                raise pykka.Timeout(f"{timeout} seconds")

    def _time_to_wait(self, limit: float | None) -> float | None:
        """Return the seconds a waiter may sleep now (None: until resolved).

        The caller's ``limit`` and, while the request is unclaimed, its deadline
        bound the wait; a deadline that passed in the queue expires it here
        (and 0.0 sends the waiter round again).
        """
        now = time.monotonic()
        wait = None if limit is None else limit - now
        if not self._claimed and self.deadline is not None:
            if now >= self.deadline:
                self.expire_if_queued()
                return 0.0
            until_deadline = self.deadline - now
            wait = until_deadline if wait is None else min(wait, until_deadline)
        return wait

    def _wait_fd(self, waker: _EventFd, timeout: float | None) -> None:
        """Wait on this thread's eventfd until resolved (Linux); as :meth:`_wait` otherwise.

        The resolver writes the eventfd with the GIL let go, so the waiter takes
        the GIL straight away instead of waking only to wait for it. A count
        left by an earlier future (one that resolved after its waiter timed
        out) wakes the loop once more, nothing else: ``_done`` decides.
        """
        fd = waker.fd
        with _TRANSITION:
            if self._done:
                return
            if self._waker is None:
                self._waker = [waker]
            else:
                self._waker.append(waker)
        try:
            if timeout is None and self.deadline is None:
                while not self._done:
                    _eventfd_read(fd)
                return
            limit = None if timeout is None else time.monotonic() + timeout
            while not self._done:
                wait = self._time_to_wait(limit)
                if wait is None or (wait > 0 and waker.readable(wait)):
                    _eventfd_read(fd)
                elif limit is not None and time.monotonic() >= limit and not self._done:
                    raise pykka.Timeout(f"{timeout} seconds")
        finally:
            if not self._done:
                with _TRANSITION:
                    if self._waker is not None and waker in self._waker:
                        self._waker.remove(waker)

    def expire_if_queued(self) -> None:
        """Fail the request with ``RequestTimeout`` if its deadline passed while unclaimed."""
        deadline = self.deadline
        if self._done or deadline is None or time.monotonic() < deadline:
            return
        self._resolve(
            None,
            RequestTimeout("request timed out while queued; it was not sent"),
            unclaimed_only=True,
        )

    def __await__(self) -> Generator[Any, None, T]:
        """``await future`` from any asyncio loop, never blocking its thread (``wait_async``)."""
        return self.wait_async().__await__()

    async def wait_async(self) -> T:
        """Wait without blocking the event loop's thread; return or raise as :meth:`get`.

        Resolved on the awaiting loop's own thread (the scheduler's, say), the
        waiter is woken directly; from another thread, through the loop's
        thread-safe call.
        """
        loop = asyncio.get_running_loop()
        if self._get_hook is not None:
            # pykka derived this future (map, join, stop(block=False)): only get() can
            # resolve it, so it runs on an executor thread, never the loop's.
            result: T = await loop.run_in_executor(None, self.get)
            return result
        waiter: asyncio.Future[None] = loop.create_future()
        loop_thread = _native.get_ident()

        def wake(_: ReplyFuture[T]) -> None:
            if _native.get_ident() == loop_thread:
                _set_once(waiter)
                return
            try:
                loop.call_soon_threadsafe(_set_once, waiter)
            except RuntimeError:  # the awaiting loop has closed: nobody is left to wake
                logger.debug("arequest resolved after its event loop closed; reply dropped")

        self.add_done_callback(wake)
        handle = None
        if self.deadline is not None and not self._done:
            handle = DeadlineTimer(loop, self.deadline, self.expire_if_queued)
        try:
            await waiter
        except asyncio.CancelledError:
            self.cancel()
            raise
        finally:
            if handle is not None:
                handle.cancel()
        return self.get()

    def cancel(self) -> bool:
        """Withdraw the request (any thread); return False if it was already resolved.

        Not yet claimed by its actor, it is withdrawn: it will never be sent.
        Claimed (on the wire, or about to be), it fails at once and its
        actor's ``canceller`` closes the connection, so that its response can
        never reach a later request; the client stays usable. Either way the
        future fails with ``asyncio.CancelledError``.
        """
        cancelled = asyncio.CancelledError("the request was cancelled")
        if self._resolve(None, cancelled, unclaimed_only=True):
            return True
        canceller = self.canceller
        if not self._resolve(None, cancelled):
            return False
        if canceller is not None:
            canceller(self)
        return True


#: ``wait(future, seconds)``: block the calling greenlet, letting the others run, until
#: ``future`` resolves or ``seconds`` pass (None = no limit). Installed in a process that
#: gevent has monkey-patched (fusco_actor.contrib._gevent); None otherwise.
GreenWaiter = Callable[["ReplyFuture[Any]", "float | None"], None]
_green_wait: GreenWaiter | None = None


def set_green_waiter(wait: GreenWaiter | None) -> None:
    """Make every blocking ``get()`` (off the scheduler thread) wait through ``wait``.

    The hook that lets callers be greenlets: blocking an OS thread that runs a
    gevent hub would freeze all its greenlets, so there ``get()`` calls
    ``wait(future, seconds)`` (which yields to the other greenlets) instead of
    reading an eventfd. None restores the eventfd wait.
    """
    global _green_wait  # noqa: PLW0603 - one wait discipline per process
    _green_wait = wait


_local = threading.local()
_deferred: list[_EventFd] = []  # waiters to wake once the loop's callbacks at hand are done
_defer: Callable[[Callable[[], None]], object] | None = None


def set_deferrer(call_soon: Callable[[Callable[[], None]], object]) -> None:
    """Set the scheduler loop's ``call_soon`` (``_scheduler`` calls this on its thread)."""
    global _defer  # noqa: PLW0603 - one scheduler per process
    _defer = call_soon


def _wake(wakers: list[_EventFd]) -> None:
    """Wake threads blocked in ``get()``: at once, or from the scheduler at its batch's end.

    On the scheduler thread the writes wait for one ``call_soon`` callback, so
    a waiter wakes once for all the responses the loop read in one go (the
    write lets the GIL go, and the waiter would take it at the first one).
    """
    if _defer is not None and _native.get_ident() == _scheduler_ident:
        if not _deferred:
            _defer(_flush_deferred)
        _deferred.extend(wakers)
        return
    for waker in wakers:  # the GIL is let go in the write: the waiter runs at once
        with contextlib.suppress(OSError):  # held here: never closed nor reused
            os.eventfd_write(waker.fd, 1)


def _forget_scheduler() -> None:
    """In a forked child: the parent's scheduler thread is gone (the child starts its own)."""
    global _defer, _scheduler_ident
    _defer, _scheduler_ident = None, 0
    _deferred.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_scheduler)


def _flush_deferred() -> None:
    """Write the eventfds of the waiters the scheduler resolved (scheduler thread)."""
    wakers = _deferred.copy()
    _deferred.clear()
    for waker in wakers:
        with contextlib.suppress(OSError):
            os.eventfd_write(waker.fd, 1)


class _EventFd:
    """A thread's own eventfd for waiting on futures; closed when the thread ends."""

    __slots__ = ("fd", "pid", "poller")

    def __init__(self) -> None:
        self.pid = os.getpid()  # a forked child makes its own: a shared one could steal wakes
        try:
            self.fd = os.eventfd(0, os.EFD_CLOEXEC)
        except (AttributeError, OSError):  # not Linux, or out of descriptors: use a lock
            self.fd = -1
            return
        self.poller = select.poll()  # for waits with a time limit
        self.poller.register(self.fd, select.POLLIN)

    def readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up to read (the GIL let go)."""
        # poll() takes whole milliseconds in a C int: wait a day at most, the caller loops.
        return bool(self.poller.poll(max(1, math.ceil(min(timeout, 86_400.0) * 1000))))

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def _thread_eventfd() -> _EventFd | None:
    """Return the calling thread's eventfd, made on first use; None where there is none."""
    holder: _EventFd | None = getattr(_local, "eventfd", None)
    if holder is None or holder.pid != os.getpid():
        holder = _local.eventfd = _EventFd()
    return holder if holder.fd >= 0 else None


def _eventfd_read(fd: int) -> None:
    os.eventfd_read(fd)


def _set_once(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
