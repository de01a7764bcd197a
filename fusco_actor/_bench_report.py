"""What ``fusco bench`` prints: the JSON-ready report, its text and CSV forms, the progress line."""

from __future__ import annotations

import collections
import csv
import io
import signal
from typing import TYPE_CHECKING, Any, Final, TextIO

from fusco_actor._bench_stats import DEFAULT_PERCENTILES, NS, percentile_key

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fusco_actor._bench import Progress
    from fusco_actor._bench_result import RunResult

__all__ = [
    "KEPT_UP_SHARE",
    "MAX_LAG",
    "ProgressLine",
    "errors_not_shown",
    "format_csv",
    "format_report",
    "seconds_text",
    "size_text",
    "summarize",
]

MAX_ERROR_KINDS_SHOWN: Final = 10  # distinct (type, message) pairs in the report
KEPT_UP_SHARE: Final = 0.95  # achieved / asked below this: the client did not keep up
MAX_LAG: Final = 0.1  # seconds: a pacer further behind than this did not keep up
CSV_FIELDS: Final = ("second", "requests", "responses", "errors", "bytes", "p50", "p99")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def summarize(
    result: RunResult,
    info: dict[str, Any],
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
) -> dict[str, Any]:
    """Return the report as one JSON-ready dict: ``info`` plus the measurements.

    Keys added: ``interrupted``, ``signal`` (name of the signal that stopped
    the run, or None), ``requests`` (completed: responses + errors),
    ``responses`` (any status), ``error_count``, ``unfinished`` (sent, no
    outcome within the grace period), ``success_rate`` (responses / requests
    sent, 0 to 1; None when nothing was sent), ``duration`` (s),
    ``requests_per_sec`` (responses per second), ``bytes`` and
    ``bytes_per_sec`` (of responses), ``latency`` (seconds, of responses:
    ``min``, ``mean``, one ``p<N>`` per percentile, ``max``; each None when
    there was none), ``status`` (count by status code), ``errors`` (the
    ``MAX_ERROR_KINDS_SHOWN`` most frequent ``{"type", "message", "count"}``,
    most frequent first), ``error_kinds`` (distinct (type, message) pairs in
    all), ``model`` (``"closed"`` or ``"open"``), ``rate`` (``{"target":
    req/s asked or None, "achieved": req/s sent while sending, "kept_up",
    "max_lag": s}``), ``percentiles`` (those chosen), ``spectrum`` (the HDR
    percentile spectrum: ``{"percentile", "latency" (s), "count"}``),
    ``timeseries`` (per second: ``{"second", "requests" (sent), "responses",
    "errors", "bytes", "p50", "p99"}``) and ``workers``.
    """
    stats, duration = result.stats, result.duration
    sent = stats.requests + result.unfinished
    achieved = result.achieved_rate
    target = result.target_rate
    kept_up = target is None or (achieved >= KEPT_UP_SHARE * target and result.max_lag <= MAX_LAG)
    return {
        **info,
        "interrupted": result.interrupted,
        "signal": None if result.signal is None else signal.Signals(result.signal).name,
        "requests": stats.requests,
        "responses": stats.responses,
        "error_count": stats.error_count,
        "unfinished": result.unfinished,
        "success_rate": round(stats.responses / sent, 6) if sent else None,
        "duration": round(duration, 6),
        "requests_per_sec": round(stats.responses / duration, 3),
        "bytes": stats.bytes,
        "bytes_per_sec": round(stats.bytes / duration, 3),
        "latency": {k: _round(v) for k, v in stats.latency(percentiles).items()},
        "status": {str(code): n for code, n in sorted(stats.status.items())},
        "errors": [
            {"type": kind, "message": message, "count": n}
            for (kind, message), n in stats.errors.most_common(MAX_ERROR_KINDS_SHOWN)
        ],
        "error_kinds": len(stats.errors),
        "model": result.model,
        "rate": {
            "target": target,
            "achieved": round(achieved, 3),
            "kept_up": kept_up,
            "max_lag": round(result.max_lag, 6),
        },
        "percentiles": [float(p) for p in percentiles],
        "spectrum": stats.spectrum(),
        "timeseries": stats.timeseries(),
        "workers": result.workers,
    }


def seconds_text(value: float, micro: str = "us") -> str:
    """Return a duration in seconds as ``1.234 s``, ``1.234 ms`` or ``12 us`` (``micro``)."""
    if value >= 1.0:
        return f"{value:.3f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3f} ms"
    return f"{value * 1e6:.0f} {micro}"


def size_text(value: float) -> str:
    """Return a size in bytes as ``12 B``, ``1.50 KiB``, ... up to GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError  # pragma: no cover


def errors_not_shown(report: dict[str, Any]) -> tuple[int, int]:
    """Return ``(distinct kinds, errors)`` of the report that its ``errors`` list leaves out."""
    shown = report["errors"]
    rest = report["error_count"] - sum(error["count"] for error in shown)
    return report["error_kinds"] - len(shown), rest


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
    hidden, rest = errors_not_shown(report)
    if hidden > 0:
        lines.append(f"              ... and {hidden} more distinct ({rest} errors)")
    return lines


def _load_lines(report: dict[str, Any]) -> list[str]:
    """Return the ``Load:`` and ``Rate:`` lines, with a warning when the client fell behind."""
    rate = report["rate"]
    shape = f"{report['connections']} connections, pipeline {report['pipeline']}"
    if report["workers"] > 1:
        shape += f", {report['workers']} workers"
    method = f"{report['method']} {report['path']}"
    if report["model"] == "closed":
        return [
            f"Load:         {method}, closed model: {shape}",
            f"Rate:         {rate['achieved']:.1f} req/s sent",
        ]
    target = rate["target"]
    lines = [
        f"Load:         {method}, open model: {target:g} req/s asked, {shape}",
        f"Rate:         {rate['achieved']:.1f} req/s sent ({rate['achieved'] / target:.1%} of "
        f"the rate asked); the pacer was at most {seconds_text(rate['max_lag'])} late",
    ]
    if not rate["kept_up"]:
        lines.append(
            "WARNING:      the client could not keep up with the rate asked (below "
            f"{KEPT_UP_SHARE:.0%} of it, or more than {seconds_text(MAX_LAG)} behind): the "
            "latencies include its own delay; lower -R, or add -c or --workers"
        )
    return lines


def _latency_lines(report: dict[str, Any], spectrum: bool) -> list[str]:
    lat = report["latency"]
    if lat["max"] is None:
        return ["Latency:      n/a (no responses)"]
    keys = [percentile_key(p) for p in report["percentiles"]]
    lines = [
        "Latency:      " + "  ".join(f"{k} {seconds_text(lat[k])}" for k in keys),
        f"              min {seconds_text(lat['min'])}  mean {seconds_text(lat['mean'])}  "
        f"max {seconds_text(lat['max'])}",
    ]
    if spectrum:
        lines.append("Spectrum:     percentile    latency       count")
        lines += [
            f"              {step['percentile']:>10.6f} {seconds_text(step['latency']):>12} "
            f"{step['count']:>11}"
            for step in report["spectrum"]
        ]
    return lines


def format_report(report: dict[str, Any], spectrum: bool = False) -> str:
    """Return the report of :func:`summarize` as text for people.

    Latency and the success rate read ``n/a`` when there is nothing to
    measure them on. ``spectrum`` adds the HDR percentile spectrum.
    """
    target = report["url"] + ("  (embedded server)" if report["embedded_server"] else "")
    done = f"{report['requests']} ({report['responses']} responses"
    done += f", {report['error_count']} errors"
    done += f", {report['unfinished']} unfinished)" if report["unfinished"] else ")"
    if report["interrupted"]:
        done += f"  [interrupted by {report['signal'] or 'SIGINT'}]"
    rate = report["success_rate"]
    success = "n/a" if rate is None else f"{rate * 100:.1f}% of requests sent got a response"
    lines = [
        f"Target:       {target}",
        *_load_lines(report),
        f"Requests:     {done}",
        f"Success:      {success}",
        f"Duration:     {report['duration']:.3f} s",
        f"Requests/s:   {report['requests_per_sec']:.1f} (responses)",
        f"Transfer:     {size_text(report['bytes'])} read, {size_text(report['bytes_per_sec'])}/s",
        *_latency_lines(report, spectrum),
        "Status codes: " + (", ".join(f"{k}: {v}" for k, v in report["status"].items()) or "none"),
        *_error_lines(report),
    ]
    return "\n".join(lines)


def format_csv(report: dict[str, Any]) -> str:
    """Return the per-second time series as CSV: a header row, then one row per second.

    Columns: ``second,requests,responses,errors,bytes,p50,p99`` (latencies in
    seconds; empty in a second without responses).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in report["timeseries"]:
        writer.writerow(["" if row[k] is None else row[k] for k in CSV_FIELDS])
    return out.getvalue()


class ProgressLine:
    """Draw one progress line on a terminal, redrawn in place.

    Shows the elapsed time out of the planned one (or requests out of the
    planned count), the requests completed, responses per second over the
    last second, the errors and, in the open model, the rate asked.
    """

    WINDOW: Final = 1.0  # seconds over which req/s is counted

    def __init__(self, out: TextIO) -> None:
        """Draw on ``out``."""
        self._out = out
        self._history: collections.deque[tuple[int, int]] = collections.deque()
        self._width = 0

    def draw(self, progress: Progress) -> None:
        """Redraw the line for ``progress``."""
        history = self._history
        history.append((progress.at_ns, progress.responses))
        while len(history) > 2 and progress.at_ns - history[1][0] >= self.WINDOW * NS:
            history.popleft()
        then, before = history[0]
        span = (progress.at_ns - then) / NS
        rate = (progress.responses - before) / span if span > 0 else 0.0
        if progress.duration is not None:
            where = f"{progress.elapsed:6.1f}/{progress.duration:g} s {progress.completed:>10}"
        else:
            where = f"{progress.elapsed:6.1f} s {progress.completed:>10}/{progress.planned}"
        line = f"{where} requests {rate:>8.0f} req/s {progress.errors:>7} errors"
        if progress.target_rate is not None:
            line += f"  (target {progress.target_rate:g} req/s)"
        self._width = max(self._width, len(line))
        self._out.write(f"\r{line:<{self._width}}")
        self._out.flush()

    def clear(self) -> None:
        """Erase the line."""
        if self._width:
            self._out.write("\r" + " " * self._width + "\r")
            self._out.flush()
            self._width = 0
