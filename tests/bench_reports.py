"""Hand-made `fusco bench` reports in the shape of `summarize` (for the HTML page tests)."""

from __future__ import annotations

import random
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]
from hdrh.iterators import PercentileIterator  # type: ignore[import-untyped]

PERCENTILES = [50.0, 75.0, 90.0, 99.0, 99.9, 99.99]
INJECTIONS = (
    "</script><img src=x onerror=alert(1)>",
    "<img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">",
    "<script>document.title='pwned'</script>",
)


def realistic_report(
    seconds: int = 10,
    rate: float | None = 1000.0,
    seed: int = 1,
    url: str = "http://127.0.0.1:8080/",
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return a report of a run of ``seconds`` with log-normal latencies (seed-fixed).

    ``rate`` None gives a closed-model run; otherwise an open-model run that kept
    up except for a stall in its middle second.
    """
    rng = random.Random(seed)
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    per_second = int(rate or 5000)
    timeseries: list[dict[str, Any]] = []
    for second in range(seconds):
        stall = second == seconds // 2 and seconds > 2
        micros = [
            int(rng.lognormvariate(7, 0.5) * (20 if stall else 1)) + 1 for _ in range(per_second)
        ]
        for value in micros:
            histogram.record_value(value)
        micros.sort()
        timeseries.append(
            {
                "second": second,
                "requests": per_second,
                "responses": per_second - (5 if stall else 0),
                "errors": 5 if stall else 0,
                "bytes": per_second * 12,
                "p50": micros[len(micros) // 2] / 1e6,
                "p99": micros[len(micros) * 99 // 100] / 1e6,
            }
        )
    spectrum = [
        {
            "percentile": round(step.percentile_level_iterated_to, 6),
            "latency": step.value_iterated_to / 1e6,
            "count": step.count_added_in_this_iter_step,
        }
        for step in PercentileIterator(histogram, 5)
    ]
    responses = sum(row["responses"] for row in timeseries)
    stalled = sum(row["errors"] for row in timeseries)
    default_errors = [
        {"type": "RequestTimeout", "message": "no response within 1.0 s", "count": stalled}
    ]
    error_rows = errors if errors is not None else [e for e in default_errors if e["count"]]
    error_count = sum(error["count"] for error in error_rows)
    latency: dict[str, float | None] = {
        "min": histogram.get_min_value() / 1e6,
        "mean": histogram.get_mean_value() / 1e6,
    }
    for pct in PERCENTILES:
        latency[f"p{pct:g}"] = histogram.get_value_at_percentile(pct) / 1e6
    latency["max"] = histogram.get_max_value() / 1e6
    requests = responses + error_count
    return {
        "url": url,
        "embedded_server": False,
        "method": "GET",
        "path": "/",
        "connections": 16,
        "pipeline": 1,
        "body_size": 0,
        "interrupted": False,
        "signal": None,
        "requests": requests,
        "responses": responses,
        "error_count": error_count,
        "unfinished": 0,
        "success_rate": round(responses / requests, 6),
        "duration": float(seconds),
        "requests_per_sec": responses / seconds,
        "bytes": responses * 12,
        "bytes_per_sec": responses * 12 / seconds,
        "latency": latency,
        "status": {"200": responses},
        "errors": error_rows,
        "error_kinds": len(error_rows),
        "model": "closed" if rate is None else "open",
        "rate": {
            "target": rate,
            "achieved": requests / seconds,
            "kept_up": True,
            "max_lag": 0.0012,
        },
        "percentiles": PERCENTILES,
        "spectrum": spectrum,
        "timeseries": timeseries,
        "workers": 2,
    }


def no_response_report(seconds: int = 1) -> dict[str, Any]:
    """Return a run where every request failed (connection refused): no latency at all."""
    report = realistic_report(seconds=seconds, rate=None)
    count = 3 * seconds
    report.update(
        responses=0,
        requests=count,
        error_count=count,
        success_rate=0.0,
        requests_per_sec=0.0,
        bytes=0,
        bytes_per_sec=0.0,
        latency=dict.fromkeys(("min", "mean", "p50", "p99", "max")),
        status={},
        errors=[{"type": "ConnectError", "message": "[Errno 111] refused", "count": count}],
        error_kinds=1,
        spectrum=[],
        percentiles=[50.0, 99.0],
        timeseries=[
            {
                "second": second,
                "requests": 3,
                "responses": 0,
                "errors": 3,
                "bytes": 0,
                "p50": None,
                "p99": None,
            }
            for second in range(seconds)
        ],
    )
    report["rate"] = {"target": None, "achieved": float(count), "kept_up": True, "max_lag": 0.0}
    return report


def empty_report() -> dict[str, Any]:
    """Return a run that completed nothing (e.g. interrupted at once)."""
    report = no_response_report(seconds=1)
    report.update(
        requests=0,
        error_count=0,
        success_rate=None,
        errors=[],
        error_kinds=0,
        timeseries=[],
        interrupted=True,
        signal="SIGINT",
        duration=0.001,
    )
    report["rate"]["achieved"] = 0.0
    return report
