"""The load generators behind ``fusco bench``: the run loop and the closed model.

Theory of operation
-------------------
A :class:`LoadGenerator` sends from other threads and keeps its *main
thread* (the caller of :meth:`LoadGenerator.run`) for the rest: ten times a
second it drains the completions, queued by done-callbacks as ``(start_ns,
end_ns, outcome)``, into :class:`~fusco_actor._bench_stats.Stats`, and
reports progress. Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC on
Linux, shared by every process, so that workers start at one instant.

The *closed* model (:class:`ClosedLoad`, as wrk and hey) keeps ``connections
x pipeline`` requests outstanding, one per *lane*; each completion sends the
lane's next request in the resolving actor's thread, and latency runs from
the actual send. When the server stalls the load stops with it, so only the
few requests in flight see the stall (coordinated omission). The *open*
model is :class:`fusco_actor._bench_open.OpenLoad`. Callbacks gave 1.2 to 2
times the requests per second of a blocking thread per connection: no extra
thread wakes up between two responses, and fewer threads fight over the GIL.

Stopping: when the request count is reached, the duration has passed, or
SIGINT, SIGTERM or :meth:`LoadGenerator.stop` arrives, sending stops under
the lock that also counts issued requests, so the main thread knows exactly
how many results are still due. It waits up to ``GRACE`` seconds for them,
then the caller stops the pool. A second SIGINT or SIGTERM raises
:class:`~fusco_actor._signals.SignalInterrupt` (a ``KeyboardInterrupt``)
and ends the wait; the stats keep what was drained.
"""

from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from fusco_actor._bench_result import RunResult
from fusco_actor._bench_stats import NS, Stats
from fusco_actor._signals import raise_signal_interrupt, signals_handled

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TypeAlias

    from fusco_actor._bench_stats import Outcome
    from fusco_actor._future import ReplyFuture
    from fusco_actor._response import Response

    Sender: TypeAlias = Callable[..., ReplyFuture[Response]]

__all__ = ["ClosedLoad", "LoadGenerator", "Progress"]

TICK: Final = 0.1  # seconds between drains of the result queue
FINAL_TICK: Final = 0.01  # the same once sending stopped, to end soon after the last reply
PROGRESS_INTERVAL: Final = 0.25  # seconds between progress reports
GRACE: Final = 2.0  # seconds to wait for outstanding requests after the stop
MAX_SYNC_FAILURES: Final = 3  # requests failing at once, in a row, before a lane gives up


class Progress(NamedTuple):
    """A progress report of a running generator (a tuple, so it pickles small).

    ``at_ns`` is ``time.monotonic_ns()`` when taken; ``elapsed`` seconds since
    the start; ``duration`` the planned seconds (None for a count);
    ``planned`` the planned requests (None for a duration); ``completed``,
    ``responses`` and ``errors`` so far; ``target_rate`` asked (open model).
    """

    at_ns: int
    elapsed: float
    duration: float | None
    planned: int | None
    completed: int
    responses: int
    errors: int
    target_rate: float | None


class LoadGenerator:
    """Send requests from other threads until a count, a time or a stop; measure in this one.

    Subclasses send: :meth:`_begin` starts sending, :meth:`_stop_issuing`
    stops it and returns how many were sent; both record each request's
    outcome with :meth:`_record` (any thread).

    Args:
        request: ``(path, method, headers, body, timeout)`` for every request.
        count: requests to send in all; None = until ``duration`` passes.
        duration: seconds to keep sending when ``count`` is None.
        progress: called with a :class:`Progress` every ``PROGRESS_INTERVAL``
            seconds from the main thread, or None.
        start_at_ns: the ``time.monotonic_ns()`` at which to start (workers
            start together); None = at once.
    """

    model = "closed"

    def __init__(
        self,
        request: tuple[Any, ...],
        count: int | None,
        duration: float | None,
        progress: Callable[[Progress], object] | None = None,
        start_at_ns: int | None = None,
    ) -> None:
        """Prepare a run; nothing is sent until :meth:`run`."""
        self._request = request
        self._limit = sys.maxsize if count is None else count
        self._count = count
        self._duration = None if count is not None else duration
        self._progress = progress
        self._start_at_ns = start_at_ns
        self._lock = threading.Lock()
        self._results: collections.deque[tuple[int, int, Outcome]] = collections.deque()
        self._stop_event = threading.Event()
        self._abort = False
        self._origin = 0
        self._sent: list[int] = []  # requests sent per second (under _lock or by one thread)
        self._send_end_ns = 0  # when sending stopped; 0 = the sending period is the duration
        self.stats = Stats()
        self.interrupted = False
        self.signal: int | None = None  # the signal that stopped the run, if one did
        self.unfinished = 0
        self.duration = 0.0

    # -- for subclasses ---------------------------------------------------------------

    def _begin(self) -> None:
        """Start sending (main thread, at the origin)."""
        raise NotImplementedError

    def _stop_issuing(self) -> int:
        """Stop sending; return how many requests were sent in all (main thread)."""
        raise NotImplementedError

    def _gave_up(self) -> bool:
        """Return whether sending stopped by itself before its limit (no lane left)."""
        return False

    def _sweep(self) -> None:
        """Do the main thread's periodic work besides draining (each tick)."""

    @property
    def target_rate(self) -> float | None:
        """Return the requests per second asked for (open model), else None."""
        return None

    @property
    def max_lag(self) -> float:
        """Return the seconds the sender was at most behind its schedule."""
        return 0.0

    def _count_sent(self, now_ns: int) -> None:
        """Count one request sent at ``now_ns`` in its second (caller serializes)."""
        # Before the origin (a stop cut the wait for the shared start short): second 0.
        second = max((now_ns - self._origin) // NS, 0)
        sent = self._sent
        if second >= len(sent):
            sent.extend([0] * (second + 1 - len(sent)))
        sent[second] += 1

    def _record(self, start_ns: int, outcome: Outcome) -> None:
        """Queue a completion for the main thread (any thread)."""
        self._results.append((start_ns, time.monotonic_ns(), outcome))

    def _send_pending(self, send: Sender, start_ns: int) -> ReplyFuture[Response] | None:
        """Send one request; return its future, or None when its outcome is recorded already.

        A sender that raises, or a future resolved at once (a stopped client
        or pool), is recorded with ``start_ns`` here (any thread; never raises).
        """
        try:
            future = send(*self._request)
        except Exception as exc:  # arguments are checked up front: the pool went wrong
            self._record(start_ns, exc)
            return None
        if future.done:
            self._record(start_ns, future)
            return None
        return future

    # -- main thread -------------------------------------------------------------------

    def stop(self, signum: int | None = None, abort: bool = False) -> None:
        """Stop sending and finish as a first stop signal would (any thread).

        Args:
            signum: the signal to report as the cause, if any.
            abort: do not wait for the requests in flight either (as a
                second signal): they count as unfinished.
        """
        if self.signal is None and signum is not None:
            self.signal = signum
        if abort:
            self._abort = True
        self._stop_event.set()

    def _drain(self) -> int:
        return self.stats.add_all(_popping(self._results))

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop(signum)
        signal.signal(signum, raise_signal_interrupt)  # a second one aborts the wait

    def run(self, on_started: Callable[[], object] | None = None) -> RunResult:
        """Send the load, then wait for what is outstanding; return the result.

        The first SIGINT or SIGTERM (when run in the main thread) stops sending,
        waits for the outstanding requests (up to ``GRACE`` seconds) and keeps
        what was done; a second one ends that wait at once. Either way
        ``interrupted`` is True, ``signal`` is the first signal's number and
        the result is returned; the previous handlers are restored.

        Args:
            on_started: called once the signals are handled, before the first request.
        """
        with signals_handled(self._on_signal):
            try:
                if self._start_at_ns is not None:
                    self._stop_event.wait(max(0, self._start_at_ns - time.monotonic_ns()) / NS)
                self._origin = self._start_at_ns or time.monotonic_ns()
                self.stats = Stats(self._origin)
                if on_started is not None:
                    on_started()
                self._run()
            except KeyboardInterrupt as exc:
                self.interrupted = True
                if self.signal is None:
                    self.signal = getattr(exc, "signum", signal.SIGINT)
                issued = self._stop_issuing()
                self._drain()
                self.unfinished = max(0, issued - self.stats.requests)  # the wait was cut short
                end = self.stats.last_ns or time.monotonic_ns()
                self.duration = max(end - self._origin, 1) / NS
        self.stats.count_sent(self._sent)
        return self.result()

    def result(self) -> RunResult:
        """Return what the run measured (after :meth:`run`)."""
        sent = sum(self._sent)
        period = max(self._send_end_ns - self._origin, 0) / NS
        if period <= 0:
            period = self.duration
        return RunResult(
            self.stats,
            duration=self.duration,
            unfinished=self.unfinished,
            interrupted=self.interrupted,
            signal=self.signal,
            model=self.model,
            target_rate=self.target_rate,
            sent=sent,
            send_period=period,
            max_lag=self.max_lag,
        )

    def _run(self) -> None:
        start = self._origin
        deadline = sys.maxsize if self._duration is None else start + int(self._duration * NS)
        self._begin()
        drained, issued, stop_ns, next_report = 0, sys.maxsize, start, 0
        while True:
            if issued == sys.maxsize:
                self._stop_event.wait(min(TICK, max(0, deadline - time.monotonic_ns()) / NS))
            else:
                time.sleep(FINAL_TICK)
            drained += self._drain()
            now = time.monotonic_ns()
            self._sweep()
            if issued == sys.maxsize and (
                self._stop_event.is_set()
                or self._gave_up()
                or now >= deadline
                or drained >= self._limit
            ):
                self.interrupted = self._stop_event.is_set()
                issued, stop_ns = self._stop_issuing(), now
            if drained >= issued:
                break
            if issued != sys.maxsize and (self._abort or now - stop_ns >= GRACE * NS):
                self.unfinished = issued - drained
                break
            if now >= next_report:
                self._report_progress(now)
                next_report = now + int(PROGRESS_INTERVAL * NS)
        end = self.stats.last_ns or stop_ns
        self.duration = max(end - start, 1) / NS

    def _report_progress(self, now: int) -> None:
        if self._progress is None:
            return
        stats = self.stats
        elapsed = (now - self._origin) / NS
        done = (stats.requests, stats.responses, stats.error_count)
        self._progress(Progress(now, elapsed, self._duration, self._count, *done, self.target_rate))


class ClosedLoad(LoadGenerator):
    """Keep one request in flight per lane until a count, a time, SIGINT or SIGTERM.

    A lane is a ``send(path, method, headers, body, timeout) -> ReplyFuture``
    callable: ``Pool.request`` (the pool picks a free client each time) or a
    checked-out client's ``Client.request`` (to pipeline on its connection).

    Args:
        lanes: one sender per request kept in flight; the caller owns what
            they send to (starts and stops the pool).
        request, count, duration, progress, start_at_ns: as for :class:`LoadGenerator`.
    """

    def __init__(
        self,
        lanes: Sequence[Sender],
        request: tuple[Any, ...],
        count: int | None,
        duration: float | None,
        progress: Callable[[Progress], object] | None = None,
        start_at_ns: int | None = None,
    ) -> None:
        """Prepare a run; nothing is sent until :meth:`run`."""
        super().__init__(request, count, duration, progress, start_at_ns)
        self._lanes = list(lanes)
        self._live_lanes = len(self._lanes)
        self._issued = 0
        self._stopping = False

    # -- actor threads: keep these tiny ------------------------------------------------

    def _issue(self, send: Sender) -> None:
        """Send the lane's next request (any thread; never raises).

        A future resolved at once (a stopped client, a stopped pool) or a
        sender that raises is recorded and the lane tries again, in a loop
        rather than by recursion; after ``MAX_SYNC_FAILURES`` in a row the
        lane gives up, and when no lane is left the run stops.
        """
        for _ in range(MAX_SYNC_FAILURES):
            start = time.monotonic_ns()
            with self._lock:
                if self._stopping or self._issued >= self._limit:
                    return
                self._issued += 1
                self._count_sent(start)
            future = self._send_pending(send, start)
            if future is not None:
                future.add_done_callback(partial(self._on_lane_done, send, start))
                return
        with self._lock:
            self._live_lanes -= 1
            if self._live_lanes == 0:
                self._stopping = True

    def _on_lane_done(self, send: Sender, start: int, future: ReplyFuture[Response]) -> None:
        """Record a completion and send the lane's next request (the resolving actor's thread)."""
        self._record(start, future)
        self._issue(send)

    # -- main thread -------------------------------------------------------------------

    def _begin(self) -> None:
        if self._limit == 0:
            self._stopping = True
        for send in self._lanes:
            self._issue(send)

    def _gave_up(self) -> bool:
        return self._stopping

    def _stop_issuing(self) -> int:
        with self._lock:
            self._stopping = True
            return self._issued


def _popping(results: collections.deque[tuple[int, int, Outcome]]) -> Iterator[Any]:
    """Yield and remove the results queued so far (others may append meanwhile)."""
    popleft = results.popleft
    while results:
        yield popleft()
