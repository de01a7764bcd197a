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
import heapq
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DeadlineQueue", "DeadlineTimer"]


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


class DeadlineQueue:
    """Many deadlines behind one :class:`DeadlineTimer`, armed at the earliest of them.

    ``expired(key)`` is called for each key whose deadline passed (never before
    ``time.monotonic()`` reaches it), earliest first. Removing a key leaves the
    timer where it is: when it fires with nothing due it re-arms at the
    earliest deadline left, so a call that completes costs a heap push and a
    dict update instead of a loop timer made and cancelled. Loop thread only.
    """

    __slots__ = ("_at", "_expired", "_firing", "_heap", "_live", "_loop", "_seq", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[Any], Any]) -> None:
        """Hold no deadline; ``expired(key)`` is told of each one that passes."""
        self._loop = loop
        self._expired = expired
        self._heap: list[tuple[float, int, Any]] = []
        self._live: dict[int, int] = {}  # id(key) -> the sequence number of its entry
        self._seq = 0
        self._timer: DeadlineTimer | None = None
        self._at = 0.0  # the deadline the timer is armed for
        self._firing = False

    def __contains__(self, key: object) -> bool:
        """Return whether ``key`` has a deadline pending."""
        return id(key) in self._live

    def __len__(self) -> int:
        """Return how many deadlines are pending."""
        return len(self._live)

    def add(self, key: Any, deadline: float) -> None:
        """Tell ``expired(key)`` once ``time.monotonic() >= deadline`` (unless removed first)."""
        self._seq = seq = self._seq + 1
        self._live[id(key)] = seq
        heap = self._heap
        heapq.heappush(heap, (deadline, seq, key))
        if self._firing:
            pass  # _fire arms for what is left once it is done
        elif self._timer is None or deadline < self._at:
            self._arm(deadline)
        elif len(heap) > 64 and len(heap) > 4 * len(self._live):
            self._compact()

    def remove(self, key: object) -> bool:
        """Forget ``key``'s deadline; return whether it had one."""
        if self._live.pop(id(key), None) is None:
            return False
        heap = self._heap
        if not self._live:
            heap.clear()
        elif heap[0][2] is key:  # completed in order, the usual case: its entry is on top
            heapq.heappop(heap)  # (other stale entries wait for _fire or _compact)
        return True  # the timer stays: firing with nothing due costs less than re-arming

    def clear(self) -> None:
        """Forget every deadline and stop the timer."""
        self._live.clear()
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _compact(self) -> None:
        live = self._live
        self._heap[:] = [e for e in self._heap if live.get(id(e[2])) == e[1]]
        heapq.heapify(self._heap)

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = deadline
        self._timer = DeadlineTimer(self._loop, deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._firing = True  # adds made by expired() do not arm: the end of this does
        heap = self._heap
        live = self._live
        try:
            while heap:
                deadline, seq, key = heap[0]
                if live.get(id(key)) != seq:
                    heapq.heappop(heap)
                    continue
                if time.monotonic() < deadline:
                    break
                heapq.heappop(heap)
                del live[id(key)]
                self._expired(key)  # may add or remove deadlines: the loop looks again
        finally:
            self._firing = False
            while heap and live.get(id(heap[0][2])) != heap[0][1]:
                heapq.heappop(heap)
            if heap:
                self._arm(heap[0][0])
