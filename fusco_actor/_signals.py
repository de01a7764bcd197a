"""Stop signals for the ``fusco`` commands: SIGTERM as Ctrl-C, handlers installed for a block.

``fusco get`` and ``fusco bench`` turn SIGTERM into :class:`SignalInterrupt`
(a ``KeyboardInterrupt``) so that it runs the cleanup Ctrl-C runs; ``fusco
bench``'s load generator and its ``--workers`` parent handle the first stop
signal themselves (stop sending, report). All of them install their
handlers with :func:`signals_handled`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

__all__ = ["STOP_SIGNALS", "SignalInterrupt", "raise_signal_interrupt", "signals_handled"]

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)  # first one: stop and report


class SignalInterrupt(KeyboardInterrupt):
    """A stop signal (SIGINT or SIGTERM) turned into a ``KeyboardInterrupt``.

    Raised by :func:`raise_signal_interrupt`, so that the ``finally`` clauses
    that run on Ctrl-C (stopping the pool, the embedded server) run on SIGTERM
    too. ``signum`` is the signal's number.
    """

    def __init__(self, signum: int) -> None:
        """Remember which signal arrived."""
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_signal_interrupt(signum: int, frame: Any) -> None:
    """Signal handler that raises :class:`SignalInterrupt` for ``signum``.

    Raises:
        SignalInterrupt: always.
    """
    raise SignalInterrupt(signum)


@contextlib.contextmanager
def signals_handled(
    handler: Callable[[int, Any], object], signums: Iterable[int] = STOP_SIGNALS
) -> Iterator[None]:
    """Within the block, ``handler`` handles each of ``signums``; the previous handlers come back.

    Only in the main thread (elsewhere the block runs without), and not for a
    signal that is ignored (SIGINT under ``nohup``, or in a bench worker). A
    previous handler not set from Python comes back as ``SIG_DFL``.
    """
    restore: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in signums:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                restore[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, previous in restore.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
