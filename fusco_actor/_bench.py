"""The load generator behind ``fusco bench``: a supervised pool kept busy by callbacks.

Theory of operation
-------------------
``LoadGenerator`` keeps ``connections x pipeline`` requests outstanding on a
:class:`fusco_actor.Pool`, one per *lane*. Each request's ``ReplyFuture`` gets
a done-callback that runs in the client actor's thread, so it does the least
it can: append ``(start_ns, end_ns, future)`` to a deque and send the lane's
next request. The main thread wakes ten times a second, drains the deque into
:class:`Stats` (status codes, bytes, errors by class name and message, and an
HDR histogram of the latency of responses in microseconds) and redraws the
progress line.

What counts: a *response* is an exchange that produced a
:class:`~fusco_actor.Response`, whatever its status; an *error* is a request
that raised instead. Requests per second, latency and transfer cover
responses only; errors are counted apart, grouped by (type, message).

Why callbacks: against the embedded server (same process, 2 cores) they gave
1.2 to 2 times the requests per second of one blocking worker thread per
connection, since no extra thread has to wake up between two responses, and
fewer threads fight over the GIL.

Stopping: when the request count is reached, the duration has passed or
SIGINT or SIGTERM arrives, ``_stopping`` is set under the lock that also counts
issued requests, so the main thread knows exactly how many results are still
due. It waits up to ``GRACE`` seconds for them, then the caller stops the
pool. A second SIGINT or SIGTERM raises :class:`SignalInterrupt` (a
``KeyboardInterrupt``) and ends the wait; the stats keep what was drained.
"""

from __future__ import annotations

import collections
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TextIO

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TypeAlias

    from fusco_actor._future import ReplyFuture
    from fusco_actor._response import Response

    _Outcome: TypeAlias = "ReplyFuture[Response] | Exception"
    _Sender: TypeAlias = Callable[..., ReplyFuture[Response]]

__all__ = [
    "LoadGenerator",
    "SignalInterrupt",
    "Stats",
    "format_report",
    "raise_signal_interrupt",
    "summarize",
]

PERCENTILES: Final = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))
HIGHEST_LATENCY_US: Final = 3_600_000_000  # one hour, in microseconds
SIGNIFICANT_DIGITS: Final = 3
# With 3 significant digits the histogram keeps values below 2048 exactly; above,
# one bit of precision less per doubling. Values it cannot tell apart are counted
# together before they are recorded.
EXACT_BITS: Final = 11
EXACT_BELOW_US: Final = 1 << EXACT_BITS
TICK: Final = 0.1  # seconds between drains of the result queue
FINAL_TICK: Final = 0.01  # the same once sending stopped, to end soon after the last reply
PROGRESS_INTERVAL: Final = 0.25  # seconds between redraws of the progress line
GRACE: Final = 2.0  # seconds to wait for outstanding requests after the stop
MAX_SYNC_FAILURES: Final = 3  # requests failing at once, in a row, before a lane gives up
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)  # first one: stop and report
MAX_ERROR_KINDS_SHOWN: Final = 10  # distinct (type, message) pairs in the report
MAX_ERROR_KINDS_KEPT: Final = 1000  # distinct pairs counted apart; later ones pooled by type
MAX_MESSAGE_LENGTH: Final = 300  # characters of an error message kept
OTHER_MESSAGES: Final = "(other messages)"  # the message of pooled errors


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


def error_key(exc: BaseException) -> tuple[str, str]:
    """Return ``(type name, message)`` for an error, the message on one line.

    The message is whitespace-collapsed and cut to ``MAX_MESSAGE_LENGTH``
    characters (ending with ``...`` when cut).
    """
    message = " ".join(str(exc).split())
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return type(exc).__name__, message


class Stats:
    """What a benchmark run produced; filled by the main thread only."""

    def __init__(self) -> None:
        """Start with nothing recorded."""
        self.histogram = HdrHistogram(1, HIGHEST_LATENCY_US, SIGNIFICANT_DIGITS)
        self.responses = 0
        self.bytes = 0
        self.status: Counter[int] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()  # by (type name, message)
        self.error_count = 0
        self.last_ns: int | None = None

    @property
    def requests(self) -> int:
        """Return how many requests completed, with a response or an error."""
        return self.responses + self.error_count

    def add(self, start_ns: int, end_ns: int, outcome: _Outcome) -> None:
        """Record one completed request: its resolved future, or what ``Pool.request`` raised.

        A future that yields a response (any status) counts as a response: its
        latency ``end_ns - start_ns`` (``time.perf_counter_ns`` values, in
        nanoseconds) goes into the histogram in microseconds. Anything raised
        counts as an error under :func:`error_key`, not timed; past
        ``MAX_ERROR_KINDS_KEPT`` distinct keys, new messages are pooled under
        ``OTHER_MESSAGES`` for their type.
        """
        self.add_all(((start_ns, end_ns, outcome),))

    def add_all(self, results: Iterable[tuple[int, int, _Outcome]]) -> int:
        """Record many completed requests as :meth:`add` does; return how many.

        Latencies are counted per microsecond value first, then each distinct
        value goes into the histogram once with its count: a drain of
        thousands of responses costs a few hundred histogram updates.
        """
        latencies: dict[int, int] = {}
        status: dict[int, int] = {}
        last = self.last_ns
        n = responses = size = 0
        for start_ns, end_ns, outcome in results:
            n += 1
            if last is None or end_ns > last:
                last = end_ns
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                response = outcome.get()
            except Exception as exc:  # every failure is data here, counted by type and message
                self._add_error(exc)
                continue
            responses += 1
            size += response.size
            code = response.status
            status[code] = status.get(code, 0) + 1
            micros = (end_ns - start_ns) // 1000
            if micros < 1:
                micros = 1
            elif micros >= EXACT_BELOW_US:  # the histogram's bucket: same counts, fewer keys
                micros = min(micros, HIGHEST_LATENCY_US)
                shift = micros.bit_length() - EXACT_BITS
                micros = micros >> shift << shift
            latencies[micros] = latencies.get(micros, 0) + 1
        self.last_ns = last
        self.responses += responses
        self.bytes += size
        self.status.update(status)
        record = self.histogram.record_value
        for micros, count in latencies.items():
            record(micros, count)
        return n

    def _add_error(self, exc: Exception) -> None:
        key = error_key(exc)
        if key not in self.errors and len(self.errors) >= MAX_ERROR_KINDS_KEPT:
            key = (key[0], OTHER_MESSAGES)  # bounded memory for ever-new messages
        self.errors[key] += 1
        self.error_count += 1

    def latency(self) -> dict[str, float | None]:
        """Return min, mean, percentiles and max of the responses' latency, in seconds.

        Errors are not timed. With no response at all every value is None.
        """
        hist = self.histogram
        if hist.get_total_count() == 0:
            return dict.fromkeys(("min", "mean", *dict(PERCENTILES), "max"))
        out: dict[str, float | None] = {
            "min": hist.get_min_value() / 1e6,
            "mean": hist.get_mean_value() / 1e6,
        }
        for name, pct in PERCENTILES:
            out[name] = hist.get_value_at_percentile(pct) / 1e6
        out["max"] = hist.get_max_value() / 1e6
        return out


class LoadGenerator:
    """Keep one request in flight per lane until a count, a time, SIGINT or SIGTERM.

    A lane is a ``send(path, method, headers, body, timeout) -> ReplyFuture``
    callable: ``Pool.request`` (the pool picks a free client each time) or a
    checked-out client's ``Client.request`` (to pipeline on its connection).

    Args:
        lanes: one sender per request kept in flight; the caller owns what
            they send to (starts and stops the pool).
        request: ``(path, method, headers, body, timeout)`` for every request.
        count: requests to send in all; None = until ``duration`` passes.
        duration: seconds to keep sending when ``count`` is None.
        progress: where to draw the live line (a TTY), or None for quiet.
    """

    def __init__(
        self,
        lanes: Sequence[_Sender],
        request: tuple[Any, ...],
        count: int | None,
        duration: float,
        progress: TextIO | None = None,
    ) -> None:
        """Prepare a run; nothing is sent until :meth:`run`."""
        self._lanes = list(lanes)
        self._live_lanes = len(self._lanes)
        self._request = request
        self._limit = sys.maxsize if count is None else count
        self._duration = None if count is not None else duration
        self._progress = progress
        self._lock = threading.Lock()
        self._issued = 0
        self._stopping = False
        self._results: collections.deque[tuple[int, int, _Outcome]] = collections.deque()
        self._interrupted = threading.Event()
        self.stats = Stats()
        self.interrupted = False
        self.signal: int | None = None  # the signal that stopped the run, if one did
        self.unfinished = 0
        self.duration = 0.0
        self._start_ns = 0

    # -- actor threads: keep these tiny ------------------------------------------------

    def _issue(self, send: _Sender) -> None:
        """Send the lane's next request (any thread; never raises).

        A future resolved at once (a stopped client, a stopped pool) or a
        sender that raises is recorded and the lane tries again, in a loop
        rather than by recursion; after ``MAX_SYNC_FAILURES`` in a row the
        lane gives up, and when no lane is left the run stops.
        """
        for _ in range(MAX_SYNC_FAILURES):
            with self._lock:
                if self._stopping or self._issued >= self._limit:
                    return
                self._issued += 1
            start = time.perf_counter_ns()
            try:
                future = send(*self._request)
            except Exception as exc:  # arguments are checked up front: the pool went wrong
                self._results.append((start, time.perf_counter_ns(), exc))
                continue
            if not future.done:
                future.add_done_callback(partial(self._on_done, send, start))
                return
            self._results.append((start, time.perf_counter_ns(), future))
        with self._lock:
            self._live_lanes -= 1
            if self._live_lanes == 0:
                self._stopping = True

    def _on_done(self, send: _Sender, start: int, future: ReplyFuture[Response]) -> None:
        """Record a completion and send the lane's next request (the resolving actor's thread)."""
        self._results.append((start, time.perf_counter_ns(), future))
        self._issue(send)

    # -- main thread -------------------------------------------------------------------

    def _stop_issuing(self) -> int:
        """Stop sending; return how many requests were sent in all."""
        with self._lock:
            self._stopping = True
            return self._issued

    def _drain(self) -> int:
        return self.stats.add_all(_popping(self._results))

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is None:
            self.signal = signum
        self._interrupted.set()
        signal.signal(signum, raise_signal_interrupt)  # a second one aborts the wait

    def run(self, on_started: Callable[[], object] | None = None) -> Stats:
        """Send the load, then wait for what is outstanding; return the stats.

        The first SIGINT or SIGTERM (when run in the main thread) stops sending,
        waits for the outstanding requests (up to ``GRACE`` seconds) and keeps
        what was done; a second one ends that wait at once. Either way
        ``interrupted`` is True, ``signal`` is the first signal's number and
        the stats are returned; the previous handlers are restored.

        Args:
            on_started: called once the signals are handled, before the first request.
        """
        restore: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN:  # e.g. SIGINT under nohup
                    restore[signum] = signal.signal(signum, self._on_signal)
        self._start_ns = time.perf_counter_ns()
        try:
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
            end = self.stats.last_ns or time.perf_counter_ns()
            self.duration = max(end - self._start_ns, 1) / 1e9
        finally:
            for number, previous in restore.items():
                signal.signal(number, signal.SIG_DFL if previous is None else previous)
            self._clear_progress()
        return self.stats

    def _run(self) -> None:
        start = self._start_ns = time.perf_counter_ns()
        deadline = sys.maxsize if self._duration is None else start + int(self._duration * 1e9)
        for send in self._lanes:
            self._issue(send)
        drained, issued, stop_ns, next_draw = 0, sys.maxsize, start, 0
        while True:
            if issued == sys.maxsize:
                self._interrupted.wait(min(TICK, max(0, deadline - time.perf_counter_ns()) / 1e9))
            else:
                time.sleep(FINAL_TICK)
            drained += self._drain()
            now = time.perf_counter_ns()
            if issued == sys.maxsize and (
                self._interrupted.is_set()
                or self._stopping
                or now >= deadline
                or drained >= self._limit
            ):
                self.interrupted = self._interrupted.is_set()
                issued, stop_ns = self._stop_issuing(), now
            if drained >= issued:
                break
            if now - stop_ns >= GRACE * 1e9 and issued != sys.maxsize:
                self.unfinished = issued - drained
                break
            if now >= next_draw:
                self._draw(now - start)
                next_draw = now + int(PROGRESS_INTERVAL * 1e9)
        end = self.stats.last_ns or stop_ns
        self.duration = max(end - start, 1) / 1e9

    def _draw(self, elapsed_ns: int) -> None:
        if self._progress is None:
            return
        stats = self.stats
        rate = stats.responses / max(elapsed_ns / 1e9, 1e-9)  # responses only, as reported
        errors = stats.error_count
        line = f"{stats.requests:>10} requests {rate:>10.0f} req/s {errors:>8} errors"
        self._progress.write(f"\r{line}")
        self._progress.flush()

    def _clear_progress(self) -> None:
        if self._progress is not None:
            self._progress.write("\r" + " " * 60 + "\r")
            self._progress.flush()


def _popping(results: collections.deque[tuple[int, int, _Outcome]]) -> Iterator[Any]:
    """Yield and remove the results queued so far (others may append meanwhile)."""
    popleft = results.popleft
    while results:
        yield popleft()


def summarize(generator: LoadGenerator, info: dict[str, Any]) -> dict[str, Any]:
    """Return the report as one JSON-ready dict: ``info`` plus the measurements.

    Keys added: ``interrupted``, ``signal`` (name of the signal that stopped
    the run, or None), ``requests`` (completed: responses + errors),
    ``responses`` (any status), ``error_count``, ``unfinished`` (sent, no
    outcome within the grace period), ``success_rate`` (responses / requests
    sent, 0 to 1; None when nothing was sent), ``duration`` (s),
    ``requests_per_sec`` (responses per second), ``bytes`` and
    ``bytes_per_sec`` (of response bodies), ``latency`` (seconds, of responses;
    each value None when there was none), ``status`` (count by status code),
    ``errors`` (the ``MAX_ERROR_KINDS_SHOWN`` most frequent ``{"type",
    "message", "count"}``, most frequent first) and ``error_kinds`` (how many
    distinct (type, message) pairs there were in all).
    """
    stats, duration = generator.stats, generator.duration
    sent = stats.requests + generator.unfinished
    latency = stats.latency()
    return {
        **info,
        "interrupted": generator.interrupted,
        "signal": None if generator.signal is None else signal.Signals(generator.signal).name,
        "requests": stats.requests,
        "responses": stats.responses,
        "error_count": stats.error_count,
        "unfinished": generator.unfinished,
        "success_rate": round(stats.responses / sent, 6) if sent else None,
        "duration": round(duration, 6),
        "requests_per_sec": round(stats.responses / duration, 3),
        "bytes": stats.bytes,
        "bytes_per_sec": round(stats.bytes / duration, 3),
        "latency": {k: None if v is None else round(v, 6) for k, v in latency.items()},
        "status": {str(code): n for code, n in sorted(stats.status.items())},
        "errors": [
            {"type": kind, "message": message, "count": n}
            for (kind, message), n in stats.errors.most_common(MAX_ERROR_KINDS_SHOWN)
        ],
        "error_kinds": len(stats.errors),
    }


def _seconds(value: float) -> str:
    if value >= 1.0:
        return f"{value:.3f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3f} ms"
    return f"{value * 1e6:.0f} us"


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def _error_lines(report: dict[str, Any]) -> list[str]:
    """Return the ``Errors:`` section: the total, then one line per shown (type, message)."""
    total = report["error_count"]
    if not total:
        return ["Errors:       none"]
    kinds = report["error_kinds"]
    lines = [f"Errors:       {total} ({kinds} distinct)"]
    width = len(str(report["errors"][0]["count"])) if report["errors"] else 1
    for error in report["errors"]:
        text = error["type"] + (f": {error['message']}" if error["message"] else "")
        lines.append(f"              {error['count']:>{width}} x {text}")
    hidden = kinds - len(report["errors"])
    if hidden > 0:
        rest = total - sum(error["count"] for error in report["errors"])
        lines.append(f"              ... and {hidden} more distinct ({rest} errors)")
    return lines


def format_report(report: dict[str, Any]) -> str:
    """Return the report of :func:`summarize` as text for people.

    Latency reads ``n/a`` and the success rate ``n/a`` when there is nothing
    to measure them on.
    """
    target = report["url"] + ("  (embedded server)" if report["embedded_server"] else "")
    load = (
        f"{report['method']} {report['path']}, {report['connections']} connections, "
        f"pipeline {report['pipeline']}"
    )
    done = f"{report['requests']} ({report['responses']} responses"
    done += f", {report['error_count']} errors"
    done += f", {report['unfinished']} unfinished)" if report["unfinished"] else ")"
    if report["interrupted"]:
        done += f"  [interrupted by {report['signal'] or 'SIGINT'}]"
    rate = report["success_rate"]
    success = "n/a" if rate is None else f"{rate * 100:.1f}% of requests sent got a response"
    lat = report["latency"]
    if lat["max"] is None:
        latency = ["Latency:      n/a (no responses)"]
    else:
        latency = [
            "Latency:      " + "  ".join(f"{k} {_seconds(lat[k])}" for k, _ in PERCENTILES),
            f"              mean {_seconds(lat['mean'])}  max {_seconds(lat['max'])}",
        ]
    lines = [
        f"Target:       {target}",
        f"Load:         {load}",
        f"Requests:     {done}",
        f"Success:      {success}",
        f"Duration:     {report['duration']:.3f} s",
        f"Requests/s:   {report['requests_per_sec']:.1f} (responses)",
        f"Transfer:     {_size(report['bytes'])} read, {_size(report['bytes_per_sec'])}/s",
        *latency,
        "Status codes: " + (", ".join(f"{k}: {v}" for k, v in report["status"].items()) or "none"),
        *_error_lines(report),
    ]
    return "\n".join(lines)
