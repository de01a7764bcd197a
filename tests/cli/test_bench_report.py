"""What `fusco bench` reports, from recorded outcomes: Stats, summarize and format_report."""

from __future__ import annotations

import json
import signal
from types import SimpleNamespace
from typing import Any

from fusco_actor import ConnectError, RequestTimeout
from fusco_actor._bench_report import MAX_ERROR_KINDS_SHOWN, format_report, summarize
from fusco_actor._bench_result import RunResult
from fusco_actor._bench_stats import (
    HIGHEST_LATENCY_US,
    MAX_ERROR_KINDS_KEPT,
    MAX_MESSAGE_LENGTH,
    OTHER_MESSAGES,
    Stats,
)
from fusco_actor._future import ReplyFuture

MS = 1_000_000  # nanoseconds per millisecond
INFO = {
    "url": "http://127.0.0.1:9/",
    "embedded_server": False,
    "method": "GET",
    "path": "/",
    "connections": 2,
    "pipeline": 1,
    "body_size": 0,
}


class Done(ReplyFuture[Any]):
    """A resolved future: ``get()`` returns a response stand-in or raises ``error``."""

    def __init__(self, status: int = 200, size: int = 10, error: Exception | None = None) -> None:
        super().__init__()
        if error is not None:
            self.try_fail(error)
        else:
            self.try_set(SimpleNamespace(status=status, size=size))


def report_of(
    stats: Stats,
    duration: float = 1.0,
    unfinished: int = 0,
    signum: int | None = None,
) -> dict[str, Any]:
    result = RunResult(
        stats, duration, unfinished=unfinished, interrupted=signum is not None, signal=signum
    )
    report = summarize(result, INFO)
    json.dumps(report)  # JSON-ready
    return report


def test_requests_per_second_and_latency_count_responses_only() -> None:
    stats = Stats()
    stats.add(0, 2 * MS, Done(200))
    stats.add(0, 4 * MS, Done(404))  # any status is a response
    stats.add(0, 6 * MS, Done(500))
    stats.add(0, 1000 * MS, Done(error=RequestTimeout("timed out after 1 s")))
    stats.add(0, 0, ConnectError("connect to 127.0.0.1:9: refused"))  # raised by the sender
    report = report_of(stats, duration=2.0)
    assert (report["requests"], report["responses"], report["error_count"]) == (5, 3, 2)
    assert report["requests_per_sec"] == 1.5  # 3 responses in 2 s, not 5 requests
    assert report["success_rate"] == 0.6
    assert report["status"] == {"200": 1, "404": 1, "500": 1}
    lat = report["latency"]
    assert lat["max"] < 0.01  # the 1 s timeout is not a latency
    assert 0.0019 < lat["min"] <= lat["p50"] <= lat["max"] < 0.0061


def test_success_rate_counts_unfinished_requests_as_sent() -> None:
    stats = Stats()
    for _ in range(3):
        stats.add(0, MS, Done())
    report = report_of(stats, unfinished=1)
    assert report["success_rate"] == 0.75
    assert "3 (3 responses, 0 errors, 1 unfinished)" in format_report(report)


def test_no_responses_means_no_latency() -> None:
    stats = Stats()
    stats.add(0, MS, Done(error=ConnectError("refused")))
    report = report_of(stats)
    assert set(report["latency"].values()) == {None}
    assert report["requests_per_sec"] == 0.0
    text = format_report(report)
    assert "Latency:      n/a (no responses)" in text.splitlines()
    assert " us" not in text


def test_nothing_sent_has_no_success_rate() -> None:
    report = report_of(Stats(), signum=signal.SIGINT)
    assert report["success_rate"] is None
    assert report["signal"] == "SIGINT"
    text = format_report(report).splitlines()
    assert "Success:      n/a" in text
    assert "Requests:     0 (0 responses, 0 errors)  [interrupted by SIGINT]" in text


def test_errors_are_grouped_by_type_and_message_most_frequent_first() -> None:
    stats = Stats()
    for _ in range(3):
        stats.add(0, MS, Done(error=ConnectError("connect to 127.0.0.1:9: refused")))
    stats.add(0, MS, Done(error=ConnectError("connect to 127.0.0.1:8: refused")))
    for _ in range(2):
        stats.add(0, MS, Done(error=RequestTimeout("timed\n  out")))  # whitespace collapsed
    report = report_of(stats)
    assert report["errors"] == [
        {"type": "ConnectError", "message": "connect to 127.0.0.1:9: refused", "count": 3},
        {"type": "RequestTimeout", "message": "timed out", "count": 2},
        {"type": "ConnectError", "message": "connect to 127.0.0.1:8: refused", "count": 1},
    ]
    assert (report["error_count"], report["error_kinds"]) == (6, 3)
    lines = format_report(report).splitlines()
    at = lines.index("Errors:       6 (3 distinct)")
    assert lines[at + 1 : at + 4] == [
        "              3 x ConnectError: connect to 127.0.0.1:9: refused",
        "              2 x RequestTimeout: timed out",
        "              1 x ConnectError: connect to 127.0.0.1:8: refused",
    ]


def test_only_the_most_frequent_errors_are_listed_but_all_are_counted() -> None:
    stats = Stats()
    kinds = MAX_ERROR_KINDS_SHOWN + 5
    for i in range(kinds):
        for _ in range(kinds - i):  # error 0 is the most frequent
            stats.add(0, MS, Done(error=ConnectError(f"error {i}")))
    total = kinds * (kinds + 1) // 2
    report = report_of(stats)
    assert report["error_count"] == total
    assert report["error_kinds"] == kinds
    shown = report["errors"]
    assert [e["message"] for e in shown] == [f"error {i}" for i in range(MAX_ERROR_KINDS_SHOWN)]
    rest = total - sum(e["count"] for e in shown)
    lines = format_report(report).splitlines()
    assert f"Errors:       {total} ({kinds} distinct)" in lines
    assert lines[-1] == f"              ... and 5 more distinct ({rest} errors)"


def test_error_messages_are_bounded_in_length_and_in_number() -> None:
    stats = Stats()
    stats.add(0, MS, Done(error=ConnectError("x" * 10_000)))
    ((_, message),) = stats.errors
    assert len(message) == MAX_MESSAGE_LENGTH
    assert message.endswith("...")
    for i in range(MAX_ERROR_KINDS_KEPT + 10):
        stats.add(0, MS, Done(error=ConnectError(f"port {i}")))
    assert len(stats.errors) == MAX_ERROR_KINDS_KEPT + 1  # + the pooled ones
    assert stats.errors["ConnectError", OTHER_MESSAGES] == 11
    assert stats.error_count == MAX_ERROR_KINDS_KEPT + 11


def test_an_error_without_a_message_is_shown_by_its_type() -> None:
    stats = Stats()
    stats.add(0, MS, Done(error=ConnectError()))
    report = report_of(stats)
    assert report["errors"] == [{"type": "ConnectError", "message": "", "count": 1}]
    assert "              1 x ConnectError" in format_report(report).splitlines()


def test_a_batch_gives_the_histogram_that_one_record_per_response_gives() -> None:
    latencies_ns = [0, 999, 1_000, 2_047_999, 2_048_000, 2_049_000, 3_141_592_653, 10**19]
    latencies_ns += [(n * 7919) % 50_000 * 1_000 + n for n in range(5_000)]
    batched, one_by_one = Stats(), Stats()
    batched.add_all([(0, ns, Done()) for ns in latencies_ns])
    for ns in latencies_ns:
        one_by_one.histogram.record_value(min(max(1, ns // 1_000), HIGHEST_LATENCY_US))
    assert batched.responses == len(latencies_ns)
    assert batched.status == {200: len(latencies_ns)}
    got, want = batched.histogram, one_by_one.histogram
    assert got.get_total_count() == want.get_total_count()
    assert (got.get_min_value(), got.get_max_value()) == (
        want.get_min_value(),
        want.get_max_value(),
    )
    assert got.get_mean_value() == want.get_mean_value()
    for percentile in (1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0):
        assert got.get_value_at_percentile(percentile) == want.get_value_at_percentile(percentile)
