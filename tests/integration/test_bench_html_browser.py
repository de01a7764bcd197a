"""The `fusco bench --html` page in a real headless Chromium: the charts draw, offline.

Debian's ``chromium`` (``make sysdeps`` installs it) loads the page from a file
with every host name unresolvable, runs its scripts (``--virtual-time-budget``),
and prints the DOM after them (``--dump-dom``) and a screenshot. The tests then
look for what Plotly draws: an ``svg.main-svg`` per chart with one ``g.trace``
per series, each line a ``path.js-line`` through several points, and the trace
colours in the screenshot; and for what an injection would have made: no
``<img>``, no extra ``<script>``, nothing on ``<body>``.

Chromium runs in a session of its own with ``HOME`` and its profile in the
test's temporary directory, so that every process it starts (crashpad handlers
daemonise out of its process group) names that directory: the test kills the
group on a timeout and fails if any such process is still alive afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Final

import pytest
from PIL import Image

from fusco_actor._bench_html import (
    CHART_IDS,
    ERRORS_COLOR,
    P50_COLOR,
    P99_COLOR,
    RESPONSES_COLOR,
    SPECTRUM_COLOR,
    render_html,
)
from tests.bench_reports import INJECTIONS, no_response_report, realistic_report

pytestmark = pytest.mark.integration

CHROMIUM: Final = "/usr/bin/chromium"
BROWSER_TIMEOUT: Final = 45.0  # seconds for one page load, scripts and dump
EXIT_TIMEOUT: Final = 10.0  # seconds for Chromium's helper processes to go after it
VIRTUAL_TIME_MS: Final = 10_000  # the page's own clock: ample for Plotly to draw
WINDOW: Final = (1200, 2600)  # pixels: the whole page, charts included
VOID: Final = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()  # noqa: SIM905
)
#: Traces in each chart of a realistic open-model report.
TRACES: Final = {
    "latency-over-time": 2,  # p50, p99
    "latency-spectrum": 1,
    "throughput-over-time": 3,  # responses/s, errors/s, asked rate
}


def chromium_binary() -> str:
    """Return Chromium's path, or skip (fail under CI=true) when it is not installed."""
    for path in (CHROMIUM, shutil.which("chromium")):
        if path and os.access(path, os.X_OK):
            return path
    why = "chromium is not installed (make sysdeps installs it from Debian)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}: CI must run the browser test", pytrace=False)
    pytest.skip(why)


@dataclass
class Element:
    """One element of the dumped DOM: tag, attributes, the chart div it is in."""

    tag: str
    attrs: dict[str, str]
    chart: str | None

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class Dom(HTMLParser):
    """A flat list of the elements of a serialized DOM, and its text outside scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []
        self._stack: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        chart = self._stack[-1][1] if self._stack else None
        if tag == "div" and values.get("id") in CHART_IDS:
            chart = values["id"]
        self.elements.append(Element(tag, values, chart))
        if tag not in VOID:
            self._stack.append((tag, chart))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:  # Chromium closes every element; be lenient all the same
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._stack or self._stack[-1][0] not in {"script", "style"}:
            self.text.append(data)

    def find(self, tag: str, cls: str | None = None, chart: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and (cls is None or cls in e.classes)
            and (chart is None or e.chart == chart)
        ]


@dataclass
class Loaded:
    """What Chromium made of a page."""

    dom: Dom
    source: str
    screenshot: Path
    console: list[str]
    seconds: float


def _our_processes(marker: str) -> list[int]:
    """Return the live processes whose command line names ``marker`` (our temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _reap(marker: str) -> list[int]:
    """Wait for Chromium's processes to go; kill and return those that stay."""
    deadline = time.monotonic() + EXIT_TIMEOUT
    while (left := _our_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def load_in_chromium(page: str, tmp_path: Path) -> Loaded:
    """Write ``page`` to a file, load it in headless Chromium; return DOM, screenshot, console."""
    binary = chromium_binary()
    html_file = tmp_path / "bench.html"
    html_file.write_text(page, encoding="utf-8")
    home = tmp_path / "chromium-home"
    home.mkdir()
    screenshot = tmp_path / "bench.png"
    args = [
        binary,
        "--headless",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={home / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: a fetch would fail
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={screenshot}",
        "--dump-dom",
        html_file.as_uri(),
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    env = dict(
        os.environ,
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
    )
    started = time.monotonic()
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:  # an exception other than the timeout
            _kill_group(proc.pid)
            proc.wait()
        left = _reap(str(home))
    seconds = time.monotonic() - started
    stderr = err.decode(errors="replace")
    assert not timed_out, f"Chromium took more than {BROWSER_TIMEOUT} s: {stderr[-2000:]}"
    assert not left, f"Chromium processes still running after it exited: {left}"
    assert proc.returncode == 0, stderr[-2000:]
    source = out.decode()
    dom = Dom()
    dom.feed(source)
    dom.close()
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return Loaded(dom, source, screenshot, console, seconds)


def _hex_rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return value >> 16, value >> 8 & 0xFF, value & 0xFF


def _charts_drew(dom: Dom, traces: dict[str, int]) -> None:
    """Assert each chart holds Plotly's SVG with its traces, each line through many points."""
    plots = dom.find("div", "js-plotly-plot")  # Plotly marks a div it has plotted into
    assert [e.attrs["id"] for e in plots] == list(CHART_IDS)
    for chart, count in traces.items():
        assert dom.find("svg", "main-svg", chart), chart
        assert len(dom.find("g", "trace", chart)) == count, chart
        paths = [e.attrs.get("d", "") for e in dom.find("path", "js-line", chart)]
        # a data line goes through points (L, or H and V for steps); a legend sample is "M5,0h30"
        lines = [d for d in paths if re.match(r"M[^a-z]*[LHV]", d)]
        assert len(lines) == count, (chart, paths)
        assert dom.find("g", "xtick", chart), chart  # the axes drew too


def test_the_page_draws_three_charts_offline_and_injections_stay_text(tmp_path: Path) -> None:
    report = realistic_report(
        seconds=10,
        rate=1000.0,
        url="http://127.0.0.1:8080/" + INJECTIONS[0],
        errors=[{"type": "ProtocolError", "message": m, "count": 2} for m in INJECTIONS],
    )
    report["path"] = "/" + INJECTIONS[1]
    loaded = load_in_chromium(render_html(report), tmp_path)
    dom = loaded.dom

    _charts_drew(dom, TRACES)
    ticks = " ".join(dom.text)
    for label in ("50%", "90%", "99%", "99.9%", "99.99%", "max"):
        assert f" {label} " in f" {ticks} ", label
    assert not [line for line in loaded.console if "Uncaught" in line], loaded.console

    # the payloads are shown as text and made no element
    assert not dom.find("img")
    assert len(dom.find("script")) == 1 + len(CHART_IDS)
    (body,) = dom.find("body")
    assert "data-pwned" not in body.attrs
    assert not [name for e in dom.elements for name in e.attrs if name.startswith("on")]
    assert "<title>fusco bench: http://127.0.0.1:8080/&lt;/script&gt;" in loaded.source
    text = "".join(dom.text)
    for payload in INJECTIONS:
        assert payload in text

    # the screenshot is not blank: each series' colour is on it
    with Image.open(loaded.screenshot) as image:
        assert image.size == WINDOW
        colors = image.convert("RGB").getcolors(maxcolors=WINDOW[0] * WINDOW[1])
    assert colors is not None  # None only past maxcolors, which is every pixel
    pixels = Counter({color: count for count, color in colors})
    assert len(pixels) > 100  # text, grid, lines: many colours
    for color in (P50_COLOR, P99_COLOR, SPECTRUM_COLOR, RESPONSES_COLOR, ERRORS_COLOR):
        assert pixels[_hex_rgb(color)] >= 30, color
    print(f"page {len(render_html(report)):,} bytes, Chromium {loaded.seconds:.2f} s")


def test_a_one_second_run_with_no_response_draws_its_charts_and_says_so(
    tmp_path: Path,
) -> None:
    loaded = load_in_chromium(render_html(no_response_report(seconds=1)), tmp_path)
    dom = loaded.dom
    plots = dom.find("div", "js-plotly-plot")
    assert [e.attrs["id"] for e in plots] == list(CHART_IDS)
    for chart in CHART_IDS:
        assert dom.find("svg", "main-svg", chart), chart
    notes = {chart: dom.find("g", "annotation", chart) for chart in CHART_IDS}
    assert notes["latency-over-time"]
    assert notes["latency-spectrum"]
    assert not notes["throughput-over-time"]  # errors were counted: that chart has data
    assert " ".join(dom.text).count("no responses to time") == 2
    assert len(dom.find("g", "trace", "throughput-over-time")) == 2  # responses/s, errors/s
    assert len(dom.find("path", "point", "throughput-over-time")) == 2  # one second each
    assert not [line for line in loaded.console if "Uncaught" in line], loaded.console


def test_without_chromium_ci_fails_where_a_developer_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the browser test"):
        chromium_binary()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="make sysdeps installs it"):
        chromium_binary()
