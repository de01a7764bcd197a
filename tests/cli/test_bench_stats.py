"""`fusco bench`'s measurements: per-second series, spectrum, merges, the open model's pacer."""

from __future__ import annotations

import json
import random
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from fusco_actor import RequestTimeout
from fusco_actor._bench import ClosedLoad
from fusco_actor._bench_open import OpenLoad
from fusco_actor._bench_plan import Plan
from fusco_actor._bench_report import format_csv, format_report, summarize
from fusco_actor._bench_result import RunResult
from fusco_actor._bench_stats import (
    NS,
    Stats,
    new_histogram,
    percentile_key,
    values_at_percentiles,
)
from fusco_actor._future import ReplyFuture
from tests.cli.test_bench_report import INFO, Done

MS = 1_000_000  # nanoseconds per millisecond
OLD_KEYS = {
    "url", "embedded_server", "method", "path", "connections", "pipeline", "body_size",
    "interrupted", "signal", "requests", "responses", "error_count", "unfinished",
    "success_rate", "duration", "requests_per_sec", "bytes", "bytes_per_sec", "latency",
    "status", "errors", "error_kinds",
}  # fmt: skip
NEW_KEYS = {"model", "rate", "percentiles", "spectrum", "timeseries", "workers"}


def filled(seed: int, seconds: int = 5, per_second: int = 300, origin: int = 0) -> Stats:
    """Stats of responses and errors spread over `seconds`, latencies 50 us to 2 s."""
    rng = random.Random(seed)
    stats = Stats(origin)
    results: list[tuple[int, int, Any]] = []
    for second in range(seconds):
        for _ in range(per_second):
            end = origin + second * NS + rng.randrange(NS)
            latency = int(rng.lognormvariate(13, 1.5)) + 50_000
            outcome = Done(200 if rng.random() < 0.9 else 503, size=rng.randrange(100, 200))
            if rng.random() < 0.05:
                outcome = Done(error=RequestTimeout(f"timed out {rng.randrange(3)}"))
            results.append((end - latency, end, outcome))
        stats.sent.append(per_second)
    for start in range(0, len(results), 97):  # batches, as the main thread drains them
        stats.add_all(results[start : start + 97])
    return stats


def test_percentiles_in_one_pass_equal_hdrh_one_at_a_time() -> None:
    stats = filled(1)
    hist = stats.histogram
    percentiles = [0.0, 1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0]
    fast = values_at_percentiles(hist, percentiles)
    assert fast == [hist.get_value_at_percentile(p) for p in percentiles]
    assert values_at_percentiles(new_histogram(), [50.0]) == [0]


@pytest.mark.parametrize(
    ("percentile", "key"),
    [(50.0, "p50"), (99.0, "p99"), (99.9, "p99.9"), (99.99, "p99.99"), (75.5, "p75.5")],
)
def test_percentile_keys(percentile: float, key: str) -> None:
    assert percentile_key(percentile) == key


def test_the_time_series_adds_up_to_the_totals_and_has_each_seconds_percentiles() -> None:
    stats = filled(2, seconds=4)
    series = stats.timeseries()
    assert [row["second"] for row in series] == [0, 1, 2, 3]
    assert sum(row["responses"] for row in series) == stats.responses
    assert sum(row["errors"] for row in series) == stats.error_count
    assert sum(row["bytes"] for row in series) == stats.bytes
    assert sum(row["requests"] for row in series) == sum(stats.sent) == 1200
    for row in series:
        assert 0 < row["p50"] <= row["p99"] <= stats.histogram.get_max_value() / 1e6


def test_a_late_result_reopens_a_sealed_second() -> None:
    stats = Stats()
    for second in range(5):  # second 0 is sealed once second 2 has results
        stats.add(second * NS, second * NS + 2 * MS, Done())
    stats.add(0, 900 * MS, Done())  # a slow response that ended in second 0, drained late
    first = stats.timeseries()[0]
    assert first["responses"] == 2
    assert first["p50"] == pytest.approx(0.002, rel=0.01)
    assert first["p99"] == pytest.approx(0.9, rel=0.01)


def test_a_second_without_responses_has_no_latency() -> None:
    stats = Stats()
    stats.add(0, 10 * MS, Done(error=RequestTimeout("late")))
    stats.add(2 * NS, 2 * NS + MS, Done())
    series = stats.timeseries()
    assert [(r["responses"], r["errors"], r["p50"]) for r in series] == [
        (0, 1, None),
        (0, 0, None),
        (1, 0, pytest.approx(0.001, rel=0.01)),
    ]


def test_the_spectrum_climbs_to_100_percent_and_every_response() -> None:
    stats = filled(3)
    spectrum = stats.spectrum()
    assert spectrum[-1]["percentile"] == 100.0
    assert spectrum[-1]["count"] == stats.responses
    assert spectrum[-1]["latency"] == stats.histogram.get_max_value() / 1e6
    steps = [(s["percentile"], s["latency"], s["count"]) for s in spectrum]
    assert steps == sorted(steps)
    assert len(spectrum) > 30  # 5 ticks per half distance
    assert Stats().spectrum() == []


def test_merging_worker_snapshots_is_exact() -> None:
    parts = [filled(10 + n, seconds=3 + n, origin=7 * NS) for n in range(3)]
    wire = [json.loads(json.dumps(part.snapshot())) for part in parts]  # plain values
    merged = Stats(7 * NS)
    merged.merge(wire)
    assert merged.responses == sum(p.responses for p in parts)
    assert merged.error_count == sum(p.error_count for p in parts)
    assert merged.bytes == sum(p.bytes for p in parts)
    assert merged.status == sum((p.status for p in parts), start=type(parts[0].status)())
    assert merged.errors == sum((p.errors for p in parts), start=type(parts[0].errors)())
    total = merged.histogram.get_total_count()
    assert total == sum(p.histogram.get_total_count() for p in parts) == merged.responses
    # Bucket by bucket, the merged histogram is the one of all the latencies together.
    together = new_histogram()
    for part in parts:
        together.add(part.histogram)
    assert list(merged.histogram.counts) == list(together.counts)
    assert merged.histogram.get_max_value() == together.get_max_value()
    series = merged.timeseries()
    assert len(series) == 5
    for index, row in enumerate(series):
        rows = [p.timeseries()[index] for p in parts if index < len(p.timeseries())]
        for key in ("requests", "responses", "errors", "bytes"):
            assert row[key] == sum(r[key] for r in rows)


def test_merged_run_results_add_counts_and_keep_the_longest_times() -> None:
    parts = [
        RunResult(filled(20), 3.0, unfinished=1, model="open", target_rate=500.0, sent=1500,
                  send_period=3.0, max_lag=0.002),
        RunResult(filled(21), 3.2, unfinished=2, interrupted=True, signal=15, model="open",
                  target_rate=500.0, sent=1490, send_period=3.0, max_lag=0.004),
    ]  # fmt: skip
    merged = RunResult.merge([part.to_wire() for part in parts], 0)
    assert (merged.workers, merged.unfinished, merged.sent) == (2, 3, 2990)
    assert (merged.duration, merged.send_period, merged.max_lag) == (3.2, 3.0, 0.004)
    assert (merged.target_rate, merged.interrupted, merged.signal) == (1000.0, True, 15)
    assert merged.achieved_rate == pytest.approx(2990 / 3.0)


def test_the_report_adds_exactly_the_new_keys() -> None:
    result = RunResult(filled(30, seconds=2), 2.0, sent=600)
    report = summarize(result, INFO, percentiles=(50.0, 99.999))
    json.dumps(report)
    assert set(report) == OLD_KEYS | NEW_KEYS
    assert report["model"] == "closed"
    assert report["rate"] == {"target": None, "achieved": 300.0, "kept_up": True, "max_lag": 0.0}
    assert report["percentiles"] == [50.0, 99.999]
    assert list(report["latency"]) == ["min", "mean", "p50", "p99.999", "max"]
    assert report["workers"] == 1
    assert {tuple(row) for row in report["timeseries"]} == {
        ("second", "requests", "responses", "errors", "bytes", "p50", "p99")
    }
    assert set(report["spectrum"][0]) == {"percentile", "latency", "count"}
    text = format_report(report)
    assert "Load:         GET /, closed model: 2 connections, pipeline 1" in text
    assert "p50 " in text and "p99.999 " in text and " p90 " not in text


def test_an_open_run_that_fell_behind_says_so() -> None:
    kept = RunResult(filled(31, seconds=2), 2.0, model="open", target_rate=300.0, sent=600,
                     send_period=2.0, max_lag=0.003)  # fmt: skip
    behind = RunResult(filled(31, seconds=2), 2.0, model="open", target_rate=400.0, sent=600,
                       send_period=2.0, max_lag=0.003)  # fmt: skip
    lagging = RunResult(filled(31, seconds=2), 2.0, model="open", target_rate=300.0, sent=600,
                        send_period=2.0, max_lag=0.5)  # fmt: skip
    ok = summarize(kept, INFO)
    assert ok["rate"] == {"target": 300.0, "achieved": 300.0, "kept_up": True, "max_lag": 0.003}
    assert "WARNING" not in format_report(ok)
    assert "open model: 300 req/s asked" in format_report(ok)
    for result in (behind, lagging):
        report = summarize(result, INFO)
        assert report["rate"]["kept_up"] is False
        assert "WARNING:      the client could not keep up" in format_report(report)


def test_csv_has_a_header_and_one_row_per_second() -> None:
    report = summarize(RunResult(filled(40, seconds=3), 3.0), INFO)
    lines = format_csv(report).splitlines()
    assert lines[0] == "second,requests,responses,errors,bytes,p50,p99"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]
    empty = summarize(RunResult(Stats(), 1.0), INFO)
    assert format_csv(empty) == "second,requests,responses,errors,bytes,p50,p99\n"


# -- the plan and the open model's pacer --------------------------------------------


def test_plan_shares_split_connections_count_and_the_schedule() -> None:
    plan = Plan("http://127.0.0.1:1", ("/", "GET", [], b"", 5.0), 7, 1, 10, None, 900.0, {})
    shares = [plan.share(i, 3) for i in range(3)]
    assert [s.connections for s in shares] == [3, 2, 2]
    assert [s.count for s in shares] == [4, 3, 3]
    assert [(s.offset, s.stride) for s in shares] == [(0, 3), (1, 3), (2, 3)]


def ok_now() -> ReplyFuture[Any]:
    future: ReplyFuture[Any] = ReplyFuture()
    future.try_set(SimpleNamespace(status=200, size=10))
    return future


def test_the_pacer_sends_each_request_at_its_intended_time_in_its_share() -> None:
    calls: list[int] = []

    def send(*request: Any) -> ReplyFuture[Any]:
        calls.append(time.monotonic_ns())
        return ok_now()

    start = time.monotonic_ns() + 50 * MS
    rate, stride, offset = 400.0, 2, 1  # this share: 200 req/s, from 2.5 ms on
    generator = OpenLoad(send, ("/",), 20, None, rate, start_at_ns=start, offset=offset,
                         stride=stride)  # fmt: skip
    result = generator.run()
    intended = [start + int((offset + j * stride) * NS / rate) for j in range(20)]
    assert len(calls) == 20
    assert all(call >= due for call, due in zip(calls, intended, strict=True))
    assert result.sent == 20 == result.stats.responses
    assert result.model == "open"
    assert result.target_rate == 200.0
    assert 0 <= result.max_lag < 1.0
    assert result.achieved_rate == pytest.approx(200.0, rel=0.2)


def test_the_shares_of_one_schedule_send_for_count_over_rate_in_all() -> None:
    def send(*request: Any) -> ReplyFuture[Any]:
        return ok_now()

    start = time.monotonic_ns() + 50 * MS
    rate, each = 100.0, 20
    shares = [
        OpenLoad(send, ("/",), each, None, rate, start_at_ns=start, offset=offset, stride=2)
        for offset in (0, 1)
    ]
    with ThreadPoolExecutor(2) as workers:  # side by side, as worker processes run
        parts = [result.to_wire() for result in workers.map(OpenLoad.run, shares)]
    merged = RunResult.merge(parts, start)
    assert merged.sent == 2 * each
    # 40 requests at 100/s take 0.4 s: the last share ends 1/rate (10 ms) after its last
    # request, not one stride (20 ms); 5 ms of slack for a late pacer thread
    assert 2 * each / rate <= merged.send_period < 2 * each / rate + 0.005
    assert merged.achieved_rate == pytest.approx(rate, rel=0.02)


def test_requests_queued_past_their_timeout_fail_so_memory_stays_bounded() -> None:
    def queued_forever(*request: Any) -> ReplyFuture[Any]:
        return ReplyFuture(deadline=time.monotonic() + 0.2)  # what Pool.request returns

    generator = OpenLoad(queued_forever, ("/",), 5, None, 1000.0)
    started = time.monotonic()
    result = generator.run()
    assert time.monotonic() - started < 2.0  # not the 2 s grace: they expired
    assert (result.stats.responses, result.stats.error_count, result.unfinished) == (0, 5, 0)
    ((kind, _),) = result.stats.errors
    assert kind == "RequestTimeout"


def test_a_stop_before_the_shared_start_still_reports_what_was_sent() -> None:
    # A worker told to stop while it waits for the shared start (the parent's
    # SIGINT in the START_DELAY window) used to raise IndexError from its first send.
    def never(*request: Any) -> ReplyFuture[Any]:
        return ReplyFuture()

    start = time.monotonic_ns() + 10 * NS
    generator = ClosedLoad([never, never], ("/",), None, 1.0, start_at_ns=start)
    generator.stop(signal.SIGINT, abort=True)
    result = generator.run()
    assert result.interrupted
    assert result.sent == 2 == result.unfinished
    assert result.stats.sent == [2]
