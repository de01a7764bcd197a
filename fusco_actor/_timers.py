"""Loop timers that end exactly at a ``time.monotonic()`` deadline, never before it.

An event loop's clock is not ``time.monotonic()`` (uvloop's counts whole
milliseconds), so a ``call_later`` timer can fire up to a millisecond before
the deadline it was computed from. A deadline that fires early and finds
time left would then do nothing (a queued request never expiring) or fail a
request that still had time. :class:`DeadlineTimer` re-arms until the
deadline has really passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DeadlineTimer"]


class DeadlineTimer:
    """Call ``callback(*args)`` on ``loop`` once ``time.monotonic() >= deadline``.

    Create and cancel it on the loop's thread, like the handle it wraps.
    """

    __slots__ = ("_args", "_callback", "_deadline", "_handle", "_loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deadline: float,
        callback: Callable[..., Any],
        *args: Any,
    ) -> None:
        """Arm the timer for ``deadline`` (seconds on ``time.monotonic()``)."""
        self._loop = loop
        self._deadline = deadline
        self._callback = callback
        self._args = args
        self._handle = loop.call_later(max(0.0, deadline - time.monotonic()), self._fire)

    def _fire(self) -> None:
        left = self._deadline - time.monotonic()
        if left > 0:  # the loop's clock ran ahead: wait for the rest
            self._handle = self._loop.call_later(left, self._fire)
            return
        self._callback(*self._args)

    def cancel(self) -> None:
        """Never call the callback (a no-op once it ran)."""
        self._handle.cancel()
