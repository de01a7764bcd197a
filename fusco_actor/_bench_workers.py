"""``fusco bench --workers N``: N processes share one plan and report as one.

Theory of operation
-------------------
Python runs one thread of bytecode at a time, so one process of fusco_actor
is bound by one CPU core. :func:`run_workers` starts N worker processes
(``multiprocessing``'s "spawn" context: a fresh interpreter each, with its
own fusco scheduler), each with its share of the plan
(:meth:`~fusco_actor._bench_plan.Plan.share`: connections, request count
and the open model's schedule). Talking over one pipe per worker:

1. a worker starts its pool and sends ``("ready",)``;
2. once all are ready, the parent sends every one ``("go", start_ns)``: a
   ``time.monotonic_ns()`` a little ahead. Linux's CLOCK_MONOTONIC is
   system-wide, so they all start at that instant, and their per-second
   time series line up;
3. while running, each sends ``("progress", Progress)`` four times a second,
   and the parent draws the sum;
4. at the end each sends ``("result", RunResult.to_wire())``: counters,
   errors and its HDR histograms (overall and per second) in hdrh's encoded
   form; the parent adds them up exactly
   (:meth:`~fusco_actor._bench_stats.RunResult.merge`).

Stopping: workers ignore SIGINT (Ctrl-C reaches the whole process group; the
parent decides). The parent's first SIGINT or SIGTERM sends every worker
``("stop", signum)``: each stops sending, waits for its requests in flight
as a first signal would, and reports; a second one sends ``("abort",
signum)``: they report at once. A worker whose pipe closes (its parent
died, even by SIGKILL) stops and exits. On the way out the parent joins
every worker, then terminates and kills what is left, so no process outlives
``fusco bench``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any, Final

from fusco_actor._bench import PROGRESS_INTERVAL, Progress
from fusco_actor._bench_plan import Plan, PlannedRun
from fusco_actor._bench_result import RunResult
from fusco_actor._bench_stats import NS
from fusco_actor._cli_common import Failure, error_line
from fusco_actor._signals import signals_handled

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

__all__ = ["WorkerFailed", "run_workers", "worker_main"]

READY_TIMEOUT: Final = 60.0  # seconds for every worker to start its interpreter and pool
START_DELAY: Final = 0.1  # seconds between "go" and the shared start
RESULT_TIMEOUT: Final = 15.0  # seconds to wait for the results once stopped (grace included)
JOIN_TIMEOUT: Final = 5.0  # seconds for a worker to exit before it is terminated


class WorkerFailed(Failure):
    """A worker process failed or exited before reporting; the run is given up."""


# -- in the worker -----------------------------------------------------------------------


def worker_main(conn: Connection, plan: Plan) -> None:
    """Run one worker's share of the plan as the parent directs (the worker process).

    Never raises: a failure is sent to the parent as ``("error", text)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with PlannedRun(plan) as planned:
            conn.send(("ready",))
            message = _receive(conn)
            if message[0] != "go":
                return
            generator = planned.generator(
                progress=lambda progress: conn.send(("progress", progress)),
                start_at_ns=message[1],
            )
            watcher = threading.Thread(
                target=_watch, args=(conn, generator.stop), name="fusco-bench-watch", daemon=True
            )
            watcher.start()
            conn.send(("result", generator.run().to_wire()))
    except OSError:  # the parent is gone
        return
    except BaseException as exc:  # reported to the parent, which exits 1
        with contextlib.suppress(OSError):
            conn.send(("error", error_line(exc)))


def _receive(conn: Connection) -> tuple[Any, ...]:
    """Return the parent's next message; ``("gone",)`` when the parent closed the pipe or died."""
    try:
        message: tuple[Any, ...] = conn.recv()
    except (EOFError, OSError):
        return ("gone",)
    return message


def _watch(conn: Connection, stop: Callable[..., None]) -> None:
    """Pass the parent's stop and abort on to the generator (a worker's thread)."""
    while True:
        message = _receive(conn)
        if message[0] == "stop":
            stop(message[1])
        elif message[0] == "abort":
            stop(message[1], abort=True)
            return
        elif message[0] == "gone":  # nobody will read the result: end now
            stop(signal.SIGTERM, abort=True)
            return


# -- in the parent -----------------------------------------------------------------------


class _Parent:
    """The parent's side: the workers, their pipes and what they sent."""

    def __init__(self) -> None:
        self.procs: list[BaseProcess] = []
        self.conns: list[Connection] = []
        self.progress: dict[int, Progress] = {}
        self.results: dict[int, dict[str, Any]] = {}
        self.signal: int | None = None
        self.stops = 0

    def start(self, plan: Plan, workers: int) -> None:
        """Start the workers, each with its share of ``plan``."""
        context = multiprocessing.get_context("spawn")
        for index in range(workers):
            parent_end, child_end = context.Pipe()
            proc = context.Process(
                target=worker_main,
                args=(child_end, plan.share(index, workers)),
                name=f"fusco-bench-worker-{index}",
                daemon=True,
            )
            self.conns.append(parent_end)
            self.procs.append(proc)
            proc.start()
            child_end.close()

    def receive(self, index: int) -> tuple[Any, ...]:
        """Return worker ``index``'s next message.

        Raises:
            WorkerFailed: the worker reported an error or exited.
        """
        try:
            message: tuple[Any, ...] = self.conns[index].recv()
        except (EOFError, OSError):
            code = self.procs[index].exitcode
            raise WorkerFailed(f"bench worker {index} exited (status {code})") from None
        if message[0] == "error":
            raise WorkerFailed(f"bench worker {index}: {message[1]}")
        return message

    def await_ready(self) -> None:
        pending = dict(enumerate(self.conns))
        limit = time.monotonic() + READY_TIMEOUT
        while pending:
            left = limit - time.monotonic()
            if left <= 0:
                raise WorkerFailed(f"bench workers did not start within {READY_TIMEOUT:g} s")
            for conn in wait(list(pending.values()), left):
                index = self.conns.index(conn)  # type: ignore[arg-type]
                if self.receive(index)[0] == "ready":
                    del pending[index]

    def send_all(self, message: tuple[Any, ...]) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):  # that worker is gone; receive() says so
                conn.send(message)

    def on_signal(self, signum: int, frame: Any) -> None:
        if self.signal is None:
            self.signal = signum
        self.stops += 1

    def collect(self, draw: Callable[[Progress], object] | None, start_ns: int) -> None:
        """Receive progress and results until every worker reported or the wait ran out."""
        forwarded = 0
        result_limit: float | None = None
        while len(self.results) < len(self.conns):
            if self.stops > forwarded:
                forwarded = self.stops
                self.send_all(("stop" if forwarded == 1 else "abort", self.signal))
                result_limit = time.monotonic() + RESULT_TIMEOUT
            if result_limit is not None and time.monotonic() >= result_limit:
                raise WorkerFailed("bench workers did not report after the stop")
            pending = [c for i, c in enumerate(self.conns) if i not in self.results]
            for conn in wait(pending, PROGRESS_INTERVAL):
                index = self.conns.index(conn)  # type: ignore[arg-type]
                message = self.receive(index)
                if message[0] == "progress":
                    self.progress[index] = message[1]
                elif message[0] == "result":
                    self.results[index] = message[1]
            if draw is not None and self.progress:
                draw(self._total(start_ns))

    def _total(self, start_ns: int) -> Progress:
        parts = list(self.progress.values())
        now = time.monotonic_ns()
        first = parts[0]
        planned = None if first.planned is None else sum(p.planned or 0 for p in parts)
        target = None if first.target_rate is None else sum(p.target_rate or 0 for p in parts)
        return Progress(
            now, (now - start_ns) / NS, first.duration, planned,
            sum(p.completed for p in parts), sum(p.responses for p in parts),
            sum(p.errors for p in parts), target,
        )  # fmt: skip

    def close(self) -> None:
        """Close the pipes and join every worker; terminate, then kill, one that does not exit."""
        for conn in self.conns:
            conn.close()
        limit = time.monotonic() + JOIN_TIMEOUT
        for proc in self.procs:
            proc.join(max(0.0, limit - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(JOIN_TIMEOUT)
            if proc.is_alive():
                proc.kill()
                proc.join(JOIN_TIMEOUT)


def run_workers(
    plan: Plan,
    workers: int,
    progress: Callable[[Progress], object] | None = None,
    on_started: Callable[[], object] | None = None,
) -> RunResult:
    """Run ``plan`` on ``workers`` processes and return their merged result.

    The first SIGINT or SIGTERM during the run (when called from the main
    thread) stops the workers, which report what they measured; a second
    one makes them report at once. Before the run starts, a signal ends it
    as usual (``KeyboardInterrupt``); no worker is left running either way.

    Raises:
        WorkerFailed: a worker failed to start, raised or exited early.
    """
    parent = _Parent()
    try:
        parent.start(plan, workers)
        parent.await_ready()
        start_ns = time.monotonic_ns() + int(START_DELAY * NS)
        with signals_handled(parent.on_signal):
            parent.send_all(("go", start_ns))
            if on_started is not None:
                on_started()
            parent.collect(progress, start_ns)
    finally:
        parent.close()
    result = RunResult.merge([parent.results[i] for i in range(workers)], start_ns)
    if parent.signal is not None:
        result.interrupted, result.signal = True, parent.signal
    if plan.rate is not None:
        result.target_rate = plan.rate
    return result
