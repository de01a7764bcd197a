"""The standard library's own threads, locks, queues, sockets and poll, even under gevent.

gevent's monkey-patching (``gevent.monkey.patch_all()``, which ``import locust``
runs) swaps ``threading``, ``_thread``, ``queue``, ``socket`` and ``select`` for
cooperative versions: a "thread" becomes a greenlet of the patching thread's
hub, a lock or a queue waits by switching greenlets, a socket or a poll waits
on a gevent hub (made on first use in whichever thread calls it).

fusco_actor's scheduler must be a real OS thread that never runs a gevent hub
(its event loop is uvloop's), and what it shares with other threads must work
across OS threads. So the code that runs on the scheduler (and on the upload
readers), and the primitives it shares with callers, take these names instead
of the patched ones. They are bound once, when fusco_actor is imported: in a
process that gevent has patched by then they are gevent's saved originals
(``gevent.monkey.get_original``), otherwise the standard library's. gevent is
never imported here, only looked up in ``sys.modules``, where it is once
something has patched.

What a *caller* waits on is another matter: a greenlet must yield while it
waits. :mod:`fusco_actor.contrib._gevent` installs that wait (see
:func:`fusco_actor._future.set_green_waiter`) when the scheduler starts in a
patched process.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any, Final, Protocol

__all__ = [
    "DefaultSelector",
    "SimpleQueue",
    "allocate_lock",
    "get_ident",
    "getaddrinfo",
    "gevent_patched",
    "poll",
    "socket",
    "start_thread",
]


def gevent_patched() -> bool:
    """Return whether gevent has monkey-patched ``threading`` in this process (now)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _original(module: str, name: str) -> Any:
    """Return ``module.name`` as the standard library defines it, before any gevent patch."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched(module):
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


allocate_lock: Final[Callable[[], Any]] = _original("_thread", "allocate_lock")
get_ident: Final[Callable[[], int]] = _original("_thread", "get_ident")
SimpleQueue: Final[Any] = _original("queue", "SimpleQueue")
poll: Final[Callable[[], Any]] = _original("select", "poll")
socket: Final[Any] = _original("socket", "socket")
getaddrinfo: Final[Callable[..., Any]] = _original("socket", "getaddrinfo")
DefaultSelector: Final[Any] = _original("selectors", "DefaultSelector")
_start_new_thread: Final[Callable[..., int]] = _original("_thread", "start_new_thread")


class ThreadHandle(Protocol):
    """What :func:`start_thread` returns: its name, OS-level ident, and whether it still runs."""

    name: str

    @property
    def ident(self) -> int | None:
        """The thread's ``_thread.get_ident()`` once started."""
        ...

    def is_alive(self) -> bool:
        """Return whether the thread's target has not returned yet."""
        ...


class _OsThread:
    """A daemon OS thread started with the original ``_thread.start_new_thread``."""

    def __init__(self, target: Callable[[], object], name: str) -> None:
        self.name = name
        self._target = target
        self._running = allocate_lock()  # held while the target runs
        self._ident: int | None = None

    def start(self) -> None:
        self._running.acquire()
        try:
            self._ident = _start_new_thread(self._run, ())
        except BaseException:
            self._running.release()
            raise

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._running.release()

    @property
    def ident(self) -> int | None:
        return self._ident

    def is_alive(self) -> bool:
        return bool(self._running.locked())

    def __repr__(self) -> str:
        return f"<OS thread {self.name} {'running' if self.is_alive() else 'ended'}>"


def start_thread(target: Callable[[], object], name: str) -> ThreadHandle:
    """Run ``target()`` on a new daemon OS thread named ``name``; return its handle.

    A ``threading.Thread`` normally; in a gevent-patched process, where
    ``threading.Thread`` would make a greenlet, a thread started with the
    original ``_thread.start_new_thread`` (not listed by ``threading.enumerate``).

    Raises:
        RuntimeError: the thread could not be started.
    """
    if not gevent_patched():
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread
    os_thread = _OsThread(target, name)
    os_thread.start()
    return os_thread
