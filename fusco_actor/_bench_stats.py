"""What a ``fusco bench`` run measured: HDR histograms overall and per second, counts, errors.

Theory of operation
-------------------
:class:`Stats` is filled by one thread (the load generator's main thread)
from batches of ``(start_ns, end_ns, outcome)``: ``outcome`` is a resolved
future or what ``Pool.request`` raised. A *response* is an exchange that
produced a :class:`~fusco_actor.Response`, whatever its status; an *error*
is a request that raised instead, counted by ``(type, message)`` and not
timed. Latencies go into an HDR histogram in microseconds (1 us to one hour,
3 significant digits).

Per second: every completion falls in the second of its ``end_ns`` counted
from ``origin_ns`` (second 0 is ``[0, 1)`` s after it); each second keeps its
responses, errors and bytes, and counts its latencies by value in a dict.
Once a second is two seconds old (or when read) it is *sealed*: each distinct
value goes, with its count, into the overall histogram and into the second's
own, which is then kept encoded (hdrh's compressed V2 format, a few KiB
against some 230 KiB live) with its p50 and p99. A late result reopens it.
So the drain costs a dict update per response, and a second costs a few
thousand histogram updates, however many responses it had. Requests *sent*
per second are counted by the generator (:meth:`Stats.count_sent`), since a
request may never complete.

Worker processes send :meth:`Stats.snapshot` (plain values and encoded
histograms) to the parent, which adds them with :meth:`Stats.merge`: the
histograms share their parameters, so adding them is exact — the merged
counts are the sums of the parts, bucket by bucket.
"""

from __future__ import annotations

import bisect
import itertools
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from typing import TypeAlias

    from fusco_actor._future import ReplyFuture
    from fusco_actor._response import Response

    Outcome: TypeAlias = "ReplyFuture[Response] | Exception"

__all__ = [
    "DEFAULT_PERCENTILES",
    "HIGHEST_LATENCY_US",
    "MAX_ERROR_KINDS_KEPT",
    "MAX_MESSAGE_LENGTH",
    "NS",
    "OTHER_MESSAGES",
    "SERIES_PERCENTILES",
    "Stats",
    "error_key",
    "percentile_key",
    "values_at_percentiles",
]

NS: Final = 1_000_000_000  # nanoseconds per second
DEFAULT_PERCENTILES: Final = (50.0, 75.0, 90.0, 99.0, 99.9, 99.99)
SERIES_PERCENTILES: Final = (50.0, 99.0)  # of each second in the time series
HIGHEST_LATENCY_US: Final = 3_600_000_000  # one hour, in microseconds
SIGNIFICANT_DIGITS: Final = 3
# With 3 significant digits the histogram keeps values below 2048 exactly; above,
# one bit of precision less per doubling. Values it cannot tell apart are counted
# together before they are recorded.
EXACT_BITS: Final = 11
EXACT_BELOW_US: Final = 1 << EXACT_BITS
TICKS_PER_HALF_DISTANCE: Final = 5  # of the percentile spectrum, as wrk2 prints it
SEAL_AGE: Final = 2  # seconds behind the newest before a second's histogram is encoded
MAX_ERROR_KINDS_KEPT: Final = 1000  # distinct pairs counted apart; later ones pooled by type
MAX_MESSAGE_LENGTH: Final = 300  # characters of an error message kept
OTHER_MESSAGES: Final = "(other messages)"  # the message of pooled errors


def error_key(exc: BaseException) -> tuple[str, str]:
    """Return ``(type name, message)`` for an error, the message on one line.

    The message is whitespace-collapsed and cut to ``MAX_MESSAGE_LENGTH``
    characters (ending with ``...`` when cut).
    """
    message = " ".join(str(exc).split())
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return type(exc).__name__, message


def percentile_key(percentile: float) -> str:
    """Return the report's key for a percentile: ``p50``, ``p99.9``, ``p99.99``."""
    text = f"{percentile:.6f}".rstrip("0").rstrip(".")
    return f"p{text}"


def new_histogram() -> HdrHistogram:
    """Return an empty latency histogram (microseconds, 1 us to one hour, 3 digits)."""
    return HdrHistogram(1, HIGHEST_LATENCY_US, SIGNIFICANT_DIGITS)


def values_at_percentiles(hist: HdrHistogram, percentiles: Sequence[float]) -> list[int]:
    """Return hdrh's ``get_value_at_percentile`` for each percentile, in one pass.

    hdrh walks the counts array in Python for every percentile (about 10 ms
    each); a cumulative sum and a bisection give the same values faster.
    With nothing recorded every value is 0.
    """
    if hist.get_total_count() == 0:
        return [0] * len(percentiles)
    cumulative = list(itertools.accumulate(hist.counts))
    out = []
    for percentile in percentiles:
        index = bisect.bisect_left(cumulative, hist.get_target_count_at_percentile(percentile))
        value = hist.get_value_from_index(min(index, len(cumulative) - 1))
        edge = hist.get_highest_equivalent_value if percentile else hist.get_lowest_equivalent_value
        out.append(edge(value))
    return out


class _Second:
    """One second of completions: counts, and latencies counted by value until sealed."""

    __slots__ = ("bytes", "encoded", "errors", "pending", "quantiles", "responses")

    def __init__(self) -> None:
        self.responses = 0
        self.errors = 0
        self.bytes = 0
        self.pending: dict[int, int] = {}  # microseconds -> count, not yet in a histogram
        self.encoded: str | None = None  # the histogram of what was sealed, if any
        self.quantiles: list[int] | None = None  # SERIES_PERCENTILES (us) of it

    def seal(self, overall: HdrHistogram) -> None:
        """Put the pending latencies into this second's histogram and into ``overall``.

        The second's histogram is kept encoded, with its series percentiles.
        """
        if not self.pending:
            return
        hist = self.decoded()
        for micros, count in self.pending.items():
            hist.record_value(micros, count)
            overall.record_value(micros, count)
        self.pending = {}
        self.add_histogram(hist)

    def decoded(self) -> HdrHistogram:
        """Return a live histogram of what was sealed so far (empty when nothing was)."""
        hist = new_histogram()
        if self.encoded is not None:
            hist.decode_and_add(self.encoded)
        return hist

    def add_histogram(self, hist: HdrHistogram) -> None:
        """Keep ``hist`` (all of this second's latencies) encoded, with its percentiles."""
        self.encoded = hist.encode().decode("ascii")
        self.quantiles = values_at_percentiles(hist, SERIES_PERCENTILES)

    def series_values(self) -> list[float | None]:
        """Return this second's p50 and p99 in seconds (sealed first), None without responses."""
        if self.quantiles is None:
            return [None] * len(SERIES_PERCENTILES)
        return [micros / 1e6 for micros in self.quantiles]


class Stats:
    """What a benchmark run produced; filled by one thread only.

    Args:
        origin_ns: the ``time.monotonic_ns()`` of second 0 of the time series.
    """

    def __init__(self, origin_ns: int = 0) -> None:
        """Start with nothing recorded."""
        self.origin_ns = origin_ns
        self._histogram = new_histogram()
        self.responses = 0
        self.bytes = 0
        self.status: Counter[int] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()  # by (type name, message)
        self.error_count = 0
        self.last_ns: int | None = None  # the latest completion, monotonic ns
        self.sent: list[int] = []  # requests sent during each second
        self._seconds: dict[int, _Second] = {}
        self._live: set[int] = set()

    @property
    def histogram(self) -> HdrHistogram:
        """Return the latency histogram of every response (microseconds)."""
        self._seal_older_than(sys.maxsize)
        return self._histogram

    @property
    def requests(self) -> int:
        """Return how many requests completed, with a response or an error."""
        return self.responses + self.error_count

    def count_sent(self, sent: Sequence[int]) -> None:
        """Add requests sent per second (index 0 = second 0) to what is counted."""
        mine = self.sent
        if len(mine) < len(sent):
            mine.extend([0] * (len(sent) - len(mine)))
        for second, n in enumerate(sent):
            mine[second] += n

    def add(self, start_ns: int, end_ns: int, outcome: Outcome) -> None:
        """Record one completed request: its resolved future, or what ``Pool.request`` raised.

        A future that yields a response (any status) counts as a response: its
        latency ``end_ns - start_ns`` (``time.monotonic_ns`` values) goes into
        the histograms in microseconds. Anything raised counts as an error
        under :func:`error_key`, not timed; past ``MAX_ERROR_KINDS_KEPT``
        distinct keys, new messages are pooled under ``OTHER_MESSAGES``.
        """
        self.add_all(((start_ns, end_ns, outcome),))

    def add_all(self, results: Iterable[tuple[int, int, Outcome]]) -> int:
        """Record many completed requests as :meth:`add` does; return how many.

        Latencies are counted per second and microsecond value first; each
        distinct value of a second goes into the histograms once, with its
        count, when the second is sealed (two seconds after, or when read).
        """
        origin, seconds, status, live = self.origin_ns, self._seconds, self.status, self._live
        last = self.last_ns or 0
        n = count = size = 0  # count and size: responses of `second` not yet added to it
        current = -1
        second = _Second()
        pending = second.pending
        for start_ns, end_ns, outcome in results:
            n += 1
            if end_ns > last:  # noqa: PLR1730 - max() would cost a call per result
                last = end_ns
            index = (end_ns - origin) // NS
            if index != current:
                second.responses += count
                second.bytes += size
                self.responses += count
                self.bytes += size
                count = size = 0
                current = index = max(index, 0)
                second = seconds.get(index) or seconds.setdefault(index, _Second())
                pending = second.pending
                live.add(index)
            try:
                if isinstance(outcome, BaseException):
                    raise outcome
                response = outcome.get()
            except Exception as exc:  # every failure is data here, counted by type and message
                self._count_error(error_key(exc), 1)
                second.errors += 1
                continue
            count += 1
            size += response.size
            status[response.status] += 1
            micros = (end_ns - start_ns) // 1000
            if micros < 1:
                micros = 1
            elif micros >= EXACT_BELOW_US:  # the histogram's bucket: same counts, fewer keys
                micros = min(micros, HIGHEST_LATENCY_US)
                shift = micros.bit_length() - EXACT_BITS
                micros = micros >> shift << shift
            pending[micros] = pending.get(micros, 0) + 1
        second.responses += count
        second.bytes += size
        self.responses += count
        self.bytes += size
        if n:
            self.last_ns = last
        if current >= SEAL_AGE:
            self._seal_older_than(current - SEAL_AGE + 1)
        return n

    def _seal_older_than(self, second: int) -> None:
        for index in [i for i in self._live if i < second]:
            self._live.discard(index)
            self._seconds[index].seal(self._histogram)

    def _count_error(self, key: tuple[str, str], count: int) -> None:
        if key not in self.errors and len(self.errors) >= MAX_ERROR_KINDS_KEPT:
            key = (key[0], OTHER_MESSAGES)  # bounded memory for ever-new messages
        self.errors[key] += count
        self.error_count += count

    # -- reading -------------------------------------------------------------------

    def latency(
        self, percentiles: Sequence[float] = DEFAULT_PERCENTILES
    ) -> dict[str, float | None]:
        """Return min, mean, the percentiles (``p50``...) and max of the latency, in seconds.

        Errors are not timed. With no response at all every value is None.
        """
        hist = self.histogram
        keys = ("min", "mean", *(percentile_key(p) for p in percentiles), "max")
        if hist.get_total_count() == 0:
            return dict.fromkeys(keys)
        at = values_at_percentiles(hist, percentiles)
        micros = (hist.get_min_value(), hist.get_mean_value(), *at, hist.get_max_value())
        return {key: value / 1e6 for key, value in zip(keys, micros, strict=True)}

    def spectrum(self) -> list[dict[str, Any]]:
        """Return the HDR percentile spectrum as wrk2 prints it, ending at 100.

        One ``{"percentile": float (0-100), "latency": seconds, "count":
        responses at or below that latency}`` per step of hdrh's percentile
        iteration with 5 ticks per half distance; empty without responses.
        """
        return [
            {
                "percentile": step.percentile_level_iterated_to,
                "latency": step.value_iterated_to / 1e6,
                "count": step.total_count_to_this_value,
            }
            for step in self.histogram.get_percentile_iterator(TICKS_PER_HALF_DISTANCE)
        ]

    def timeseries(self) -> list[dict[str, Any]]:
        """Return one entry per second from second 0 to the last with any activity.

        Each is ``{"second", "requests" (sent during it), "responses",
        "errors", "bytes" (of the responses completed during it), "p50",
        "p99"}``: latencies in seconds of the responses completed during
        it, None when there were none.
        """
        self._seal_older_than(sys.maxsize)
        last = max([len(self.sent) - 1, *self._seconds])
        empty = _Second()
        series = []
        for index in range(last + 1):
            second = self._seconds.get(index, empty)
            p50, p99 = second.series_values()
            series.append(
                {
                    "second": index,
                    "requests": self.sent[index] if index < len(self.sent) else 0,
                    "responses": second.responses,
                    "errors": second.errors,
                    "bytes": second.bytes,
                    "p50": p50,
                    "p99": p99,
                }
            )
        return series

    # -- between processes ---------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Return everything recorded as plain values, histograms encoded (to pickle or JSON)."""
        return {
            "origin_ns": self.origin_ns,
            "histogram": self.histogram.encode().decode("ascii"),
            "responses": self.responses,
            "bytes": self.bytes,
            "status": dict(self.status),
            "errors": [[kind, message, n] for (kind, message), n in self.errors.items()],
            "error_count": self.error_count,
            "last_ns": self.last_ns,
            "sent": list(self.sent),
            "seconds": {
                index: [s.responses, s.errors, s.bytes, s.encoded]
                for index, s in self._seconds.items()
            },
        }

    def merge(self, snapshots: Iterable[dict[str, Any]]) -> None:
        """Add the snapshots of other :class:`Stats` with the same origin to this one.

        Exact: every count, and every histogram bucket by bucket, is the sum
        of the parts. The error kinds follow the ``MAX_ERROR_KINDS_KEPT`` rule.
        """
        self._seal_older_than(sys.maxsize)
        by_second: dict[int, list[list[Any]]] = {}
        for part in snapshots:
            self._histogram.decode_and_add(part["histogram"])
            self.responses += part["responses"]
            self.bytes += part["bytes"]
            self.status.update({int(code): n for code, n in part["status"].items()})
            for kind, message, n in part["errors"]:
                self._count_error((kind, message), n)
            if part["last_ns"] is not None:
                self.last_ns = max(self.last_ns or part["last_ns"], part["last_ns"])
            self.count_sent(part["sent"])
            for index, entry in part["seconds"].items():
                by_second.setdefault(int(index), []).append(entry)
        for index, entries in sorted(by_second.items()):  # one live histogram at a time
            second = self._seconds.get(index) or self._seconds.setdefault(index, _Second())
            hist = second.decoded()
            for responses, errors, size, encoded in entries:
                second.responses += responses
                second.errors += errors
                second.bytes += size
                if encoded is not None:
                    hist.decode_and_add(encoded)
            if hist.get_total_count():
                second.add_histogram(hist)
