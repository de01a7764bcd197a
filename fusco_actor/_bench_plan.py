"""A ``fusco bench`` run as plain data (:class:`Plan`), and running it in this process.

A :class:`Plan` holds only picklable values, so that worker processes get
one each (:meth:`Plan.share`); TLS and proxy settings travel as the command
line gave them and each process builds its own ``ssl.SSLContext``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

import fusco_actor
from fusco_actor._bench import ClosedLoad, LoadGenerator
from fusco_actor._bench_open import OpenLoad
from fusco_actor._cli_common import STOP_TIMEOUT, client_options, stop_within

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from fusco_actor._bench import Progress
    from fusco_actor._bench_result import RunResult

__all__ = ["Plan", "PlannedRun"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to send, how and how much.

    Attributes:
        destination: ``scheme://host:port``.
        request: ``(path, method, headers, body, timeout)`` of every request.
        connections: the pool size.
        pipeline: requests in flight per connection.
        count: requests in all, or None for a duration.
        duration: seconds of load when ``count`` is None.
        rate: requests per second (open model), or None (closed model).
        tls: ``proxy``, ``insecure`` and ``cacert`` as the command line gave them.
        offset: this process's first request of the open model's schedule.
        stride: processes sharing that schedule.
        pacer: the open model's pacer (None = the default).
    """

    destination: str
    request: tuple[Any, ...]
    connections: int
    pipeline: int
    count: int | None
    duration: float | None
    rate: float | None
    tls: dict[str, Any]
    offset: int = 0
    stride: int = 1
    pacer: str | None = None

    def share(self, index: int, workers: int) -> Plan:
        """Return worker ``index``'s part of the plan when ``workers`` processes share it.

        Connections and the request count are split as evenly as they go
        (the first ones get one more); the open model's schedule is
        interleaved: worker ``index`` sends requests ``index, index +
        workers, ...`` of it, so together they keep the whole rate.
        """
        connections = self.connections // workers + (index < self.connections % workers)
        count = None if self.count is None else len(range(index, self.count, workers))
        return dataclasses.replace(
            self, connections=connections, count=count, offset=index, stride=workers
        )


class PlannedRun:
    """A plan's pool, started on entry and stopped on exit; :meth:`run` measures.

    Example:
        >>> with PlannedRun(plan) as planned:  # doctest: +SKIP
        ...     result = planned.run()

    Raises (on entry):
        Failure: the CA file could not be read.
        BadOption: a bad client option.
    """

    def __init__(self, plan: Plan) -> None:
        """Keep the plan; nothing starts before ``with``."""
        self.plan = plan
        self._pool: fusco_actor.Pool | None = None
        self._lanes: list[Any] = []

    def __enter__(self) -> PlannedRun:
        """Start the pool (and check out the pipelining clients of the closed model)."""
        plan = self.plan
        options = client_options(argparse.Namespace(**plan.tls))
        pool = self._pool = fusco_actor.Pool.start(
            plan.destination, max_clients=plan.connections, pipeline=plan.pipeline, **options
        )
        try:
            if plan.rate is None:
                self._lanes = _lanes(pool, plan.connections, plan.pipeline, plan.request[4])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the pool (within ``STOP_TIMEOUT`` seconds)."""
        if self._pool is not None:
            stop_within(self._pool.stop, STOP_TIMEOUT)
            self._pool = None

    def generator(
        self,
        progress: Callable[[Progress], object] | None = None,
        start_at_ns: int | None = None,
    ) -> LoadGenerator:
        """Return the plan's load generator over the pool (inside ``with``)."""
        plan = self.plan
        assert self._pool is not None, "use PlannedRun in a with block"
        if plan.rate is None:
            return ClosedLoad(
                self._lanes, plan.request, plan.count, plan.duration, progress, start_at_ns
            )
        return OpenLoad(
            self._pool.request, plan.request, plan.count, plan.duration, plan.rate,
            progress, start_at_ns, plan.offset, plan.stride, plan.pacer,
        )  # fmt: skip

    def run(
        self,
        progress: Callable[[Progress], object] | None = None,
        on_started: Callable[[], object] | None = None,
    ) -> RunResult:
        """Run the plan's load in this process and return what it measured."""
        return self.generator(progress).run(on_started)


def _lanes(pool: fusco_actor.Pool, connections: int, pipeline: int, timeout: float) -> list[Any]:
    """Return the senders that keep ``connections x pipeline`` requests in flight.

    Without pipelining every lane is ``Pool.request``: the pool hands each
    request to a free client. The pool lends a client to one request at a
    time, so to pipeline, each client is checked out once and gets
    ``pipeline`` lanes of its own ``Client.request``.
    """
    if pipeline == 1:
        return [pool.request] * connections
    clients = [pool.get_client(timeout) for _ in range(connections)]
    return [client.request for client in clients for _ in range(pipeline)]
