"""The open load model of ``fusco bench -R``: a constant rate, latency from the intended send.

Theory of operation
-------------------
Request ``j`` has an *intended* send time ``origin + (offset + j * stride) /
rate`` (``offset`` and ``stride`` split one schedule between worker
processes: worker ``k`` of ``n`` takes requests ``k, k + n, ...``). A *pacer*
sends every request that is due through ``Pool.request``; one that finds
every client busy waits in the pool's FIFO queue, and that wait counts.
Latency is completion time minus *intended* send time, as wrk2 measures it:
when the server stalls, the requests that should have gone out during the
stall are still sent (or queued) on time and their latency shows the stall
(no coordinated omission). The pacer never sends late requests faster than
"at once": if it falls behind (the machine is busy) it catches up in a burst,
and the lag is in the measured latency and in ``max_lag``.

A duration run sends what is due before the deadline and nothing after it:
requests owed at the deadline are not sent, so a pacer that could not keep
up shows a lower achieved rate.

The pacer is a dedicated thread that sleeps until the next intended time
(``PACER = "thread"``, the default) or a chain of timers on the fusco
scheduler's loop (``"loop"``; ``FUSCO_BENCH_PACER=loop`` selects it).
Measured with ``-R 2000 -z 3`` against the embedded server on 2 vCPUs that
other work kept busy (load average 3 to 5), six interleaved runs each: both
sent 2000 requests/s in every run (1998 once for the loop), with the same
worst lag (5 to 90 ms, when the machine did not schedule the process); the
thread's median latency was 0.3 to 0.5 ms in every run, the loop's 0.15 to
7 ms, since its timers wait behind the loop's I/O and, with uvloop, are
rounded to milliseconds. Hence the thread. A smaller ``sys.setswitchinterval``
did not change the thread's lag measurably.

Memory: a request queued or in flight takes about 0.5 KiB (its call, future
and callback; 370 bytes measured in the pool's queue), and there are at most
``rate x timeout`` of them (2000 req/s with the default 30 s: about 30 MiB).
The main thread's sweep fails, with ``RequestTimeout``, a request whose
``--timeout`` passed while it was still queued in the pool (one on a client
has the client's own deadline), so a server that stops answering cannot make
the queue grow for longer than the timeout.
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from fusco_actor._bench import LoadGenerator, Progress
from fusco_actor._bench_stats import NS

if TYPE_CHECKING:
    from collections.abc import Callable

    from fusco_actor._bench import Sender
    from fusco_actor._future import ReplyFuture
    from fusco_actor._response import Response

__all__ = ["PACER", "OpenLoad"]

#: Which pacer runs: "thread" or "loop" (``FUSCO_BENCH_PACER`` overrides, to measure).
PACER: Final = os.environ.get("FUSCO_BENCH_PACER", "thread")
MAX_SLEEP: Final = 0.05  # seconds the pacer thread sleeps at most before it looks at a stop


class OpenLoad(LoadGenerator):
    """Send requests at a constant rate until a count, a time, SIGINT or SIGTERM.

    Args:
        send: ``Pool.request`` (or any sender of the same shape).
        request, count, duration, progress, start_at_ns: as for
            :class:`~fusco_actor._bench.LoadGenerator`.
        rate: requests per second of the whole schedule (all workers).
        offset: this worker's first request in the schedule (0 to stride - 1).
        stride: how many workers share the schedule.
        pacer: ``"thread"`` or ``"loop"``; None = ``PACER``.
    """

    model = "open"

    def __init__(
        self,
        send: Sender,
        request: tuple[Any, ...],
        count: int | None,
        duration: float | None,
        rate: float,
        progress: Callable[[Progress], object] | None = None,
        start_at_ns: int | None = None,
        offset: int = 0,
        stride: int = 1,
        pacer: str | None = None,
    ) -> None:
        """Prepare a run; nothing is sent until :meth:`run`."""
        super().__init__(request, count, duration, progress, start_at_ns)
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self._send = send
        self._rate = rate
        self._first = offset * NS / rate
        self._step = stride * NS / rate
        self._stride = stride
        self._pacer = pacer or PACER
        self._next = 0  # the next request of this schedule (pacer only)
        self._issued = 0
        self._halted = False
        self._deadline = sys.maxsize
        self._max_lag_ns = 0
        self._inflight: collections.deque[ReplyFuture[Response]] = collections.deque()
        self._thread: threading.Thread | None = None

    @property
    def target_rate(self) -> float:
        """Return this generator's share of the rate, requests per second."""
        return self._rate / self._stride

    @property
    def max_lag(self) -> float:
        """Return the seconds the pacer was at most behind its schedule when it sent."""
        return self._max_lag_ns / NS

    # -- the pacer (its thread, or the scheduler's loop) -------------------------------

    def _send_due(self) -> int | None:
        """Send every request due by now; return the next intended time, or None when done."""
        while self._next < self._limit:
            intended = self._origin + int(self._first + self._next * self._step)
            now = time.monotonic_ns()
            if now >= self._deadline or intended >= self._deadline:
                self._send_end_ns = self._deadline
                return None
            if intended > now:
                return intended
            with self._lock:
                if self._halted:
                    return None
                self._issued += 1
                self._count_sent(now)
            self._next += 1
            self._max_lag_ns = max(self._max_lag_ns, now - intended)
            future = self._send_pending(self._send, intended)
            if future is not None:
                self._inflight.append(future)
                future.add_done_callback(partial(self._record, intended))
        # The whole schedule's period is 1/rate: a worker's share ends one period (not one
        # stride) after its last request, so the merged run's sending time is count/rate.
        last = self._origin + int(self._first + (self._next - 1) * self._step)
        self._send_end_ns = max(time.monotonic_ns(), last + int(NS / self._rate))
        return None

    def _pace_in_thread(self) -> None:
        """Sleep until each request is due and send it (the pacer thread)."""
        while True:
            due = self._send_due()
            if due is None:
                return
            wait = (due - time.monotonic_ns()) / NS
            if wait > 0:
                time.sleep(min(wait, MAX_SLEEP))

    def _pace_on_loop(self, loop: Any) -> None:
        """Send what is due and set a timer for the next (the scheduler's loop)."""
        due = self._send_due()
        if due is not None:
            delay = max(0.0, (due - time.monotonic_ns()) / NS)
            loop.call_later(min(delay, MAX_SLEEP), self._pace_on_loop, loop)

    # -- main thread -------------------------------------------------------------------

    def _begin(self) -> None:
        if self._duration is not None:
            self._deadline = self._origin + int(self._duration * NS)
        if self._pacer == "loop":
            from fusco_actor._scheduler import get_scheduler  # noqa: PLC0415 - only this pacer

            scheduler = get_scheduler()
            scheduler.call_soon(self._pace_on_loop, scheduler.loop)
            return
        self._thread = threading.Thread(
            target=self._pace_in_thread, name="fusco-bench-pacer", daemon=True
        )
        self._thread.start()

    def _stop_issuing(self) -> int:
        with self._lock:
            self._halted = True
            issued = self._issued
        if self._send_end_ns == 0:
            self._send_end_ns = min(time.monotonic_ns(), self._deadline)
        if self._thread is not None:
            self._thread.join(MAX_SLEEP * 4)
        return issued

    def _sweep(self) -> None:
        """Fail the requests whose timeout passed while queued in the pool."""
        inflight = self._inflight
        now = time.monotonic()
        while inflight:
            future = inflight[0]
            if not future.done:
                deadline = future.deadline
                if deadline is None or deadline > now:
                    return
                future.expire_if_queued()  # on a client already: its own deadline timer
            inflight.popleft()
