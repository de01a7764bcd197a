"""The `fusco bench --html` page, as text: contents, escaping, edge cases, missing plotly."""

from __future__ import annotations

import html
import math
import re
import sys
from html.parser import HTMLParser
from typing import Any

import pytest

from fusco_actor import _bench_html
from fusco_actor._bench_html import CHART_IDS, INSTALL_HINT, render_html
from tests.bench_reports import (
    INJECTIONS,
    empty_report,
    no_response_report,
    realistic_report,
)


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and the text outside scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def injected_report() -> dict[str, Any]:
    report = realistic_report(
        seconds=3,
        url="http://127.0.0.1:8080/" + INJECTIONS[0],
        errors=[
            {"type": f"Error{i}{payload}", "message": payload, "count": 1}
            for i, payload in enumerate(INJECTIONS)
        ],
    )
    report["path"] = "/" + INJECTIONS[1]
    report["method"] = INJECTIONS[2]
    report["status"] = {"200": 5, INJECTIONS[1]: 1}
    report["signal"] = INJECTIONS[0]
    report["interrupted"] = True
    return report


def test_the_page_has_three_charts_with_plotly_inlined_once_and_no_external_resource() -> None:
    page = render_html(realistic_report())
    tags = parse(page)
    scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
    assert len(scripts) == 1 + len(CHART_IDS)  # plotly.js, then one per chart
    assert all("src" not in attrs for attrs in scripts)
    assert not [attrs for tag, attrs in tags.tags if tag == "link"]
    ids = [attrs.get("id") for tag, attrs in tags.tags if tag == "div"]
    for chart in CHART_IDS:
        assert ids.count(chart) == 1
        assert re.search(rf'Plotly\.newPlot\(\s*"{chart}"', page)
    assert page.count("plotly.js v") == 1  # the library's banner, once
    assert page.startswith("<!DOCTYPE html>")


def test_the_summary_shows_target_model_rate_connections_and_every_percentile() -> None:
    report = realistic_report(seconds=4, rate=500.0)
    report["rate"].update(achieved=498.25, max_lag=0.0035)
    report["success_rate"] = 0.9995
    text = " ".join(parse(render_html(report)).text)
    assert "http://127.0.0.1:8080/" in text
    assert "open" in text
    assert "asked 500.0 req/s, achieved 498.2 req/s: kept up (max lag 3.500 ms)" in text
    assert "Workers 2" in " ".join(text.split())
    for key in ("min", "mean", "p50", "p75", "p90", "p99", "p99.9", "p99.99", "max"):
        assert f"{key} " in text
    assert "99.95% of requests sent" in text
    assert "RequestTimeout" in text
    assert "no response within 1.0 s" in text


def test_an_open_run_that_fell_behind_is_flagged_first() -> None:
    report = realistic_report(seconds=2, rate=2000.0)
    report["rate"].update(kept_up=False, max_lag=1.5, achieved=1200.0)
    page = render_html(report)
    assert "did NOT keep up (max lag 1.500 s)" in page
    assert page.index("did not keep up with the asked rate") < page.index("<h2>Summary")


def test_a_closed_run_shows_no_asked_rate() -> None:
    report = realistic_report(seconds=2, rate=None)
    page = render_html(report)
    assert "closed model" in page
    assert "asked rate" not in page
    assert "did not keep up" not in page.lower()


def test_report_strings_are_escaped_and_never_become_markup() -> None:
    report = injected_report()
    page = render_html(report)
    tags = parse(page)
    assert not [tag for tag, _ in tags.tags if tag in {"img", "iframe", "object"}]
    assert len([tag for tag, _ in tags.tags if tag == "script"]) == 1 + len(CHART_IDS)
    assert not [name for _, attrs in tags.tags for name in attrs if name.startswith("on")]
    for payload in INJECTIONS:
        assert payload not in page
        assert html.escape(payload) in page
    text = "".join(tags.text)
    for payload in INJECTIONS:
        assert payload in text  # shown to the reader, as text
    assert f"<title>fusco bench: {html.escape(report['url'])}</title>" in page


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(empty_report(), id="nothing-completed"),
        pytest.param(no_response_report(seconds=1), id="errors-only-one-second"),
        pytest.param(no_response_report(seconds=3), id="errors-only"),
        pytest.param(realistic_report(seconds=1), id="one-second"),
    ],
)
def test_edge_cases_give_a_whole_page(report: dict[str, Any]) -> None:
    page = render_html(report)
    assert page.rstrip().endswith("</html>")
    for chart in CHART_IDS:
        assert f'id="{chart}"' in page
    if report["responses"] == 0:
        assert "n/a (no responses)" in page
        assert page.count("no responses to time") == (2 if report["timeseries"] else 1)
    if not report["timeseries"]:
        assert page.count("no requests completed") == 2  # latency and throughput over time
        assert "interrupted by SIGINT" in page


def test_a_report_without_the_new_keys_still_renders() -> None:
    report = realistic_report(seconds=2)
    for key in ("model", "rate", "percentiles", "spectrum", "timeseries", "workers"):
        del report[key]
    page = render_html(report)
    assert "closed model" in page
    assert page.count("no per-second data") == 2  # latency and throughput over time
    assert "no responses to time" in page  # the spectrum


def test_the_spectrum_uses_an_inverse_tail_axis_with_percent_ticks() -> None:
    report = realistic_report(seconds=10)
    figure = _bench_html._spectrum_figure(report)
    trace = figure["data"][0]
    axis = figure["layout"]["xaxis"]
    points = report["spectrum"]
    assert points[-1]["percentile"] == 100.0
    last_finite = max(1 / (1 - p["percentile"] / 100) for p in points[:-1])
    assert 1e4 < last_finite < 1e5  # 10,000 latencies: 99.99% and a bit past
    assert axis["type"] == "log"
    assert axis["ticktext"] == ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "max"]
    assert axis["tickvals"] == [1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5]
    assert trace["x"][-1] == 1e5  # the maximum, one decade past the last finite point
    for point, x in zip(points[:-1], trace["x"], strict=False):
        assert math.isclose(x, 1 / (1 - point["percentile"] / 100))
    assert trace["y"] == [p["latency"] * 1e3 for p in points]  # milliseconds
    assert trace["y"][-1] == report["latency"]["max"] * 1e3


def test_without_plotly_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [name for name in sys.modules if name == "plotly" or name.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(ImportError, match=r"pip install 'fusco_actor\[html\]'") as caught:
        render_html(realistic_report(seconds=1))
    assert INSTALL_HINT in str(caught.value)
