"""fusco_actor in a process that gevent has monkey-patched (Locust's, say).

Under ``gevent.monkey.patch_all()`` every greenlet of a thread shares that OS
thread: a caller that blocked it while waiting for a response would freeze
every other greenlet (every other Locust user) with it. fusco_actor's side
stays on real OS threads (:mod:`fusco_actor._native`); this module supplies
the other half, the caller's wait: :func:`install` makes every blocking
``future.get()`` off the scheduler thread (``fusco_actor.request``,
``Client.connect``, ``disconnect``, ``Pool.request(...).get()``) wait like
this:

1. a libev *async* watcher of the calling thread's hub is started, with a
   ``gevent.hub.Waiter`` of the calling greenlet as its callback;
2. a done-callback on the future calls the watcher's ``send()``, which libev
   makes safe from any thread: the scheduler thread calls it when it resolves
   the future, and the hub wakes and switches back to the waiting greenlet;
3. meanwhile the greenlet is off the run queue and the hub serves the others.
   A ``gevent.Timeout`` bounds the wait when the caller or the request's
   deadline does (``ReplyFuture`` then expires a request still queued).

The scheduler calls :func:`install` when it starts in a patched process, and
``fusco_actor.contrib.locust`` on import. A streamed body's consumer waits for
its next piece on such a future too (``_loop_stream.LoopStreamChannel.ask``).
Only the one-off start of the scheduler thread (milliseconds) waits without
yielding. So a caller's OS thread never blocks on work the scheduler must do,
and the scheduler, which may wait for a caller's hub when it contends for one
of gevent's locks (pykka's registry, ``Client._lock``), is always served.
"""

from __future__ import annotations

from typing import Any

import gevent
from gevent.hub import Waiter, get_hub

from fusco_actor._future import ReplyFuture, set_green_waiter

__all__ = ["green_wait", "install"]


def install() -> None:
    """Make blocking waits on fusco_actor futures cooperative (idempotent)."""
    set_green_waiter(green_wait)


def green_wait(future: ReplyFuture[Any], seconds: float | None) -> None:
    """Suspend the calling greenlet until ``future`` resolves or ``seconds`` pass (None: no limit).

    Other greenlets of the thread run meanwhile. Returns early only on a
    resolution or the time limit; an exception thrown into the greenlet (a
    ``GreenletExit`` when Locust kills a user, a ``gevent.Timeout`` of the
    caller's) leaves it as it came, and the request goes on without a waiter.
    """
    hub = get_hub()
    watcher = hub.loop.async_()
    waiter: Waiter[Any] = Waiter(hub)
    # Started before the done-callback is added: a send before start() would be lost.
    watcher.start(waiter.switch, None)
    try:
        future.add_done_callback(lambda _future: _wake(watcher))
        if not future.done:
            timer = None if seconds is None else gevent.Timeout.start_new(seconds)
            try:
                waiter.get()
            except gevent.Timeout as exc:
                if exc is not timer:  # the caller's own Timeout: not ours to swallow
                    raise
            finally:
                if timer is not None:
                    timer.close()
    finally:
        watcher.stop()


def _wake(watcher: Any) -> None:
    """Wake the hub waiting on ``watcher`` (the scheduler thread, or any; never blocks)."""
    if watcher.active:  # stopped: its waiter gave up (time limit or exception)
        watcher.send()
