"""A finished ``fusco bench`` run: its ``Stats`` and how the load went.

Worker processes send :meth:`RunResult.to_wire` to the parent, which adds
them up with :meth:`RunResult.merge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from fusco_actor._bench_stats import Stats

__all__ = ["RunResult"]


class RunResult:
    """A finished run: its :class:`Stats` and how the load went.

    Attributes:
        stats: what was measured.
        duration: seconds from the start to the last completion (or the stop).
        unfinished: requests sent that had no outcome within the grace period.
        interrupted: a stop signal (SIGINT, SIGTERM) ended the run early.
        signal: the number of that signal, or None.
        model: ``"closed"`` (connections kept busy) or ``"open"`` (a constant rate).
        target_rate: requests per second asked for (open model), else None.
        sent: requests sent in all.
        send_period: seconds during which requests were being sent.
        max_lag: seconds the open model's pacer was at most behind its schedule.
        workers: processes whose results this is.
    """

    FIELDS: Final = (
        "duration", "unfinished", "interrupted", "signal", "model", "target_rate",
        "sent", "send_period", "max_lag", "workers",
    )  # fmt: skip

    def __init__(
        self,
        stats: Stats,
        duration: float,
        unfinished: int = 0,
        interrupted: bool = False,
        signal: int | None = None,
        model: str = "closed",
        target_rate: float | None = None,
        sent: int | None = None,
        send_period: float | None = None,
        max_lag: float = 0.0,
        workers: int = 1,
    ) -> None:
        """Keep the values (``sent``: completed + unfinished; ``send_period``: ``duration``)."""
        self.stats = stats
        self.duration = duration
        self.unfinished = unfinished
        self.interrupted = interrupted
        self.signal = signal
        self.model = model
        self.target_rate = target_rate
        self.sent = stats.requests + unfinished if sent is None else sent
        self.send_period = duration if send_period is None else send_period
        self.max_lag = max_lag
        self.workers = workers

    @property
    def achieved_rate(self) -> float:
        """Return requests sent per second while sending."""
        return self.sent / self.send_period if self.send_period > 0 else 0.0

    def to_wire(self) -> dict[str, Any]:
        """Return the result as plain values (the stats as :meth:`Stats.snapshot`)."""
        wire = {name: getattr(self, name) for name in self.FIELDS}
        wire["stats"] = self.stats.snapshot()
        return wire

    @classmethod
    def merge(cls, parts: Sequence[dict[str, Any]], origin_ns: int) -> RunResult:
        """Return one result of the :meth:`to_wire` forms of workers that shared ``origin_ns``.

        Counts, histograms, ``sent`` and ``unfinished`` add up; ``duration``,
        ``send_period`` and ``max_lag`` are the largest of the parts (the
        workers started together); the target rates add up; the first
        signal found is kept.
        """
        stats = Stats(origin_ns)
        stats.merge(part["stats"] for part in parts)
        targets = [part["target_rate"] for part in parts if part["target_rate"] is not None]
        signals = [part["signal"] for part in parts if part["signal"] is not None]
        return cls(
            stats,
            duration=max((part["duration"] for part in parts), default=0.0),
            unfinished=sum(part["unfinished"] for part in parts),
            interrupted=any(part["interrupted"] for part in parts),
            signal=signals[0] if signals else None,
            model=parts[0]["model"] if parts else "closed",
            target_rate=sum(targets) if targets else None,
            sent=sum(part["sent"] for part in parts),
            send_period=max((part["send_period"] for part in parts), default=0.0),
            max_lag=max((part["max_lag"] for part in parts), default=0.0),
            workers=len(parts),
        )
