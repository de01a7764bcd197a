"""`fusco bench` in a subprocess: open model, coordinated omission, reports, flags, workers."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import signal
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from fusco_actor._bench_html import CHART_IDS, INSTALL_HINT
from fusco_actor._server import EmbeddedServer
from fusco_actor.cli import main
from tests.cli.test_cli import (
    SIGINT_EXIT_TIMEOUT,
    BenchRun,
    bench_on_a_terminal,
    bench_run,
    fusco,
    needs_proc,
    server_children,
)
from tests.helpers import wait_gone
from tests.socketserver import SocketServerThread, ok, parse_request, read_request

RATE = 2000  # requests/s of the acceptance check
STALL = 1.0  # seconds the server is stopped for in the coordinated-omission tests


def bench_json(*args: str) -> dict[str, Any]:
    proc = fusco("bench", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def check_series(report: dict[str, Any]) -> None:
    """The time series adds up to the totals."""
    series = report["timeseries"]
    assert [row["second"] for row in series] == list(range(len(series)))
    assert sum(r["requests"] for r in series) == report["requests"] + report["unfinished"]
    assert sum(r["responses"] for r in series) == report["responses"]
    assert sum(r["errors"] for r in series) == report["error_count"]
    assert sum(r["bytes"] for r in series) == report["bytes"]


# -- the open model ------------------------------------------------------------------


@pytest.mark.slow
def test_the_open_model_keeps_the_rate_asked() -> None:
    report = bench_json("-R", str(RATE), "-z", "3")
    assert report["model"] == "open"
    rate = report["rate"]
    assert rate["target"] == RATE
    assert rate["achieved"] == pytest.approx(RATE, rel=0.05)
    assert report["requests_per_sec"] == pytest.approx(RATE, rel=0.05)  # responses, too
    assert report["responses"] == pytest.approx(3 * RATE, rel=0.05)
    assert report["error_count"] == 0
    assert rate["max_lag"] >= 0
    check_series(report)
    assert len(report["timeseries"]) in (3, 4)  # completions may end just after 3 s


def stalled_run(*args: str) -> dict[str, Any]:
    """Run `bench -z 3 ARGS` and stop its embedded server for STALL seconds in the middle."""
    with bench_run("-z", "3", "-c", "16", "--json", *args) as run:
        run.wait_announcement()
        server = run.find_server()
        time.sleep(0.8)  # into the run: the stall is the measured event, not a synchronisation
        os.kill(server, signal.SIGSTOP)
        try:
            time.sleep(STALL)
        finally:
            os.kill(server, signal.SIGCONT)
        status, out = run.finish(30)
    assert status == 0, out
    report: dict[str, Any] = json.loads(out)
    return report


def slower_than(report: dict[str, Any], seconds: float) -> int:
    """How many responses took longer than `seconds`, from the HDR spectrum (a few too many:
    its steps are percentile ticks, so the count at `seconds` is that of the step below)."""
    below = [step["count"] for step in report["spectrum"] if step["latency"] <= seconds]
    return int(report["responses"]) - max(below, default=0)


@needs_proc
@pytest.mark.slow
def test_a_server_stall_shows_in_the_open_model_and_hides_in_the_closed_one() -> None:
    open_model = stalled_run("-R", "1000")
    closed_model = stalled_run()
    # Open: the requests due during the stall were sent on time and waited for it:
    # about half of the STALL x 1000 of them, out of 3000, took more than STALL / 2.
    assert open_model["latency"]["p90"] > 0.5 * STALL
    assert open_model["latency"]["p99"] > 0.8 * STALL
    open_slow = slower_than(open_model, STALL / 2)
    assert open_slow > 0.1 * open_model["responses"]
    # Closed: only the 16 requests in flight saw it; the load paused with the server.
    assert closed_model["latency"]["max"] > 0.8 * STALL
    assert closed_model["latency"]["p99"] < 0.25 * STALL
    closed_slow = slower_than(closed_model, STALL / 2)
    assert closed_slow < 0.01 * closed_model["responses"]
    assert open_slow > 10 * closed_slow


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_progress_line_shows_time_requests_rate_errors_and_target(workers: str) -> None:
    proc, drawn = bench_on_a_terminal("-R", "300", "-z", "1.5", "-c", "2", "--workers", workers)
    assert proc.returncode == 0
    line = rb"\r +[\d.]+/1.5 s +\d+ requests +\d+ req/s +0 errors  \(target 300 req/s\)"
    assert re.search(line, drawn), drawn


# -- report options ------------------------------------------------------------------


def test_percentiles_choose_the_latency_keys_and_max_is_always_there() -> None:
    report = bench_json("-n", "200", "-c", "2", "--percentiles", "99.9,50,99.999")
    assert report["percentiles"] == [50.0, 99.9, 99.999]
    assert list(report["latency"]) == ["min", "mean", "p50", "p99.9", "p99.999", "max"]
    lat = report["latency"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p99.9"] <= lat["p99.999"] <= lat["max"]
    proc = fusco("bench", "-n", "100", "-c", "2", "--percentiles", "90")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "Latency:      p90 " in text
    assert "max " in text
    assert "p50" not in text


def test_json_has_the_series_the_spectrum_and_the_model() -> None:
    report = bench_json("-z", "2", "-c", "2")
    assert report["model"] == "closed"
    assert report["workers"] == 1
    assert report["rate"]["target"] is None
    assert report["rate"]["kept_up"] is True
    assert report["rate"]["achieved"] > 0
    check_series(report)
    assert len(report["timeseries"]) in (2, 3)
    assert report["spectrum"][-1]["percentile"] == 100.0
    assert report["spectrum"][-1]["count"] == report["responses"]


def test_csv_prints_the_time_series_instead_of_the_report() -> None:
    proc = fusco("bench", "-z", "2", "-c", "2", "--csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode())))
    assert list(rows[0]) == ["second", "requests", "responses", "errors", "bytes", "p50", "p99"]
    assert [int(r["second"]) for r in rows] == list(range(len(rows)))
    assert len(rows) in (2, 3)
    assert sum(int(r["responses"]) for r in rows) > 0
    assert float(rows[0]["p50"]) <= float(rows[0]["p99"])
    assert b"Requests/s" not in proc.stdout


def test_spectrum_adds_the_percentile_spectrum_to_the_text() -> None:
    proc = fusco("bench", "-n", "300", "-c", "2", "--spectrum")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    at = lines.index("Spectrum:     percentile    latency       count")
    assert lines[at + 1].split()[0] == "0.000000"
    assert any(line.split()[0] == "100.000000" and line.split()[-1] == "300" for line in lines)


@pytest.mark.slow
def test_html_writes_the_page_of_an_open_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.html"
    proc = fusco("bench", "-R", "400", "-z", "1", "-c", "2", "--html", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)  # the HTML is written besides the report, not instead
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for chart in CHART_IDS:
        assert re.search(rf'Plotly\.newPlot\(\s*"{chart}"', page), chart
    assert report["url"] in page
    assert "open" in page


def test_html_without_plotly_fails_before_the_run_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    out = tmp_path / "report.html"
    assert main(["bench", "http://127.0.0.1:9/", "-n", "1", "--html", str(out)]) == 1
    assert capsys.readouterr().err == (
        f"fusco: ModuleNotFoundError: --html needs plotly, which is not installed: {INSTALL_HINT}\n"
    )
    assert not out.exists()


def test_html_writes_what_the_html_module_renders(
    tmp_path: Path, embedded_server: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    module = types.ModuleType("fusco_actor._bench_html")

    def render_html(report: dict[str, Any]) -> str:
        seen.append(report)
        return f"<html>{report['responses']}</html>"

    module.render_html = render_html  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fusco_actor._bench_html", module)
    out = tmp_path / "report.html"
    args = ["bench", embedded_server.url + "/", "-n", "20", "-c", "2", "--html", str(out)]
    assert main(args) == 0
    assert out.read_text() == "<html>20</html>"
    assert seen[0]["timeseries"] and seen[0]["spectrum"]


def test_html_into_a_missing_folder_fails_before_the_run_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType("fusco_actor._bench_html")
    monkeypatch.setitem(sys.modules, "fusco_actor._bench_html", module)
    out = tmp_path / "missing" / "report.html"
    assert main(["bench", "http://127.0.0.1:9/", "-n", "1", "--html", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fusco: ") and str(out) in err and err.count("\n") == 1


def test_html_without_its_module_fails_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fusco_actor._bench_html", None)
    out = tmp_path / "report.html"
    assert main(["bench", "http://127.0.0.1:9/", "-n", "1", "--html", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == (
        "fusco: ModuleNotFoundError: --html needs fusco_actor._bench_html, which is missing\n"
    )
    assert not out.exists()


# -- flags: what reaches the wire ----------------------------------------------------


def serve_requests(count: int, *, per_connection: int) -> Any:
    """A handler that answers `count` requests, `per_connection` on each connection."""

    def handler(listener: Any, server: SocketServerThread) -> None:
        served = 0
        while served < count:
            conn = server.accept()
            for _ in range(per_connection):
                read_request(conn)
                conn.sendall(ok())
                served += 1
            if per_connection == 1:
                conn.wait_closed_by_peer()

    return handler


def requests_of(server: SocketServerThread) -> list[bytes]:
    return [raw for conn in server.connections for raw in conn.requests]


@pytest.mark.parametrize("method_flag", ["-m", "-X", "--method"])
def test_method_headers_body_and_content_type_reach_the_wire(method_flag: str) -> None:
    with SocketServerThread(serve_requests(3, per_connection=3)) as server:
        proc = fusco(
            "bench", server.url + "/put?x=1", "-n", "3", "-c", "1", method_flag, "PUT",
            "-H", "X-One: 1", "-H", "X-Two: two", "-H", "Content-Type: wrong/type",
            "-d", "hello fusco", "-T", "text/plain",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    raws = requests_of(server)
    assert len(raws) == 3 and len(server.connections) == 1
    for raw in raws:
        line, headers, body = parse_request(raw)
        assert line == b"PUT /put?x=1 HTTP/1.1"
        assert (headers["x-one"], headers["x-two"]) == (b"1", b"two")
        assert headers["content-type"] == b"text/plain"  # -T replaces -H's
        assert headers["content-length"] == b"11"
        assert body == b"hello fusco"


def test_user_info_in_the_url_is_sent_as_basic_auth_and_never_reported() -> None:
    with SocketServerThread(serve_requests(2, per_connection=2)) as server:
        url = server.url.replace("http://", "alice:s%40cret@", 1)  # no scheme: http://
        proc = fusco("bench", url + "/x", "-n", "2", "-c", "1", "--json")
        assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["url"] == server.url + "/x"  # the password stays out of the report
    assert b"cret" not in proc.stdout + proc.stderr
    for raw in requests_of(server):
        line, headers, _ = parse_request(raw)
        assert line == b"GET /x HTTP/1.1"
        assert headers["authorization"] == b"Basic " + base64.b64encode(b"alice:s@cret")


@pytest.mark.parametrize("form", [["-d", "@{}"], ["-D", "{}"], ["-D", "@{}"]])
def test_a_body_from_a_file_is_posted(form: list[str], tmp_path: Path) -> None:
    data = bytes(range(256)) * 3
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    args = [part.format(path) for part in form]
    with SocketServerThread(serve_requests(2, per_connection=2)) as server:
        proc = fusco("bench", server.url + "/", "-n", "2", "-c", "1", *args)
        assert proc.returncode == 0, proc.stderr
    for raw in requests_of(server):
        line, _, body = parse_request(raw)
        assert line == b"POST / HTTP/1.1"  # a body makes it a POST, as with curl -d
        assert body == data


def test_disable_keepalive_opens_a_connection_per_request() -> None:
    with SocketServerThread(serve_requests(5, per_connection=1)) as server:
        proc = fusco("bench", server.url + "/", "-n", "5", "-c", "1", "--disable-keepalive")
        assert proc.returncode == 0, proc.stderr
        server.wait_done()
    assert len(server.connections) == 5
    for conn in server.connections:
        assert len(conn.requests) == 1
        assert parse_request(conn.requests[0])[1]["connection"] == b"close"


@pytest.mark.parametrize("option", [["-d", "@{}"], ["-D", "{}"]])
def test_a_file_that_cannot_be_used_is_named_in_one_error_line(
    option: list[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing")
    proc = fusco("bench", "http://127.0.0.1:9/", "-n", "1", *[o.format(missing) for o in option])
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fusco: "), lines
    assert missing in lines[0]
    assert proc.stdout == b""


def test_duration_takes_units() -> None:
    report = bench_json("-z", "300ms", "-c", "2")
    assert 0.25 < report["duration"] < 1.5


@pytest.mark.parametrize(
    "args",
    [
        ["--percentiles", "fifty"],
        ["--percentiles", "0"],
        ["--percentiles", "100"],
        ["--percentiles", "50,,90"],
        ["-R", "0"],
        ["-R", "fast"],
        ["-z", "5x"],
        ["-z", "-1"],
        ["--json", "--csv"],
        ["-d", "x", "-D", "file"],
        ["--workers", "0"],
        ["--workers", "3", "-c", "2"],
        ["--disable-keepalive", "--pipeline", "2"],
    ],
)
def test_bad_bench_options_are_usage_errors(args: list[str]) -> None:
    proc = fusco("bench", *args)
    assert proc.returncode == 2, proc.stderr
    assert b"usage: fusco" in proc.stderr
    assert proc.stdout == b""


# -- workers -------------------------------------------------------------------------


@pytest.mark.slow
def test_workers_split_the_count_and_merge_into_one_report() -> None:
    report = bench_json("-n", "400", "-c", "4", "--workers", "2")
    assert report["workers"] == 2
    assert (report["requests"], report["responses"], report["error_count"]) == (400, 400, 0)
    assert report["status"] == {"200": 400}
    assert report["spectrum"][-1]["count"] == 400
    check_series(report)


@pytest.mark.slow
def test_workers_share_the_open_models_rate() -> None:
    report = bench_json("-R", "1000", "-z", "2", "-c", "4", "--workers", "2")
    assert report["workers"] == 2
    assert report["rate"]["target"] == 1000
    assert report["rate"]["achieved"] == pytest.approx(1000, rel=0.05)
    assert report["responses"] == pytest.approx(2000, rel=0.05)
    check_series(report)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    if int(file.read().rpartition(b")")[2].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


@needs_proc
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_stops_the_workers_and_still_reports(signum: signal.Signals) -> None:
    with bench_run("-z", "30", "-c", "4", "--workers", "2", "--json") as run:
        run.wait_announcement()
        children = children_of(run.proc.pid)  # the server, 2 workers, multiprocessing's tracker
        assert len(server_children(run.proc.pid)) == 1 and len(children) >= 3, children
        run.proc.send_signal(signum)
        status, out = run.finish(SIGINT_EXIT_TIMEOUT + 10)
        assert status == 128 + signum
        for child in children:
            assert wait_gone(child, 10.0), f"process {child} outlived bench"
    report = json.loads(out)
    assert (report["interrupted"], report["signal"]) == (True, signum.name)
    assert report["workers"] == 2
    assert report["responses"] > 0
    assert report["error_count"] == 0
    check_series(report)


@needs_proc
@pytest.mark.slow
def test_killed_bench_leaves_no_worker_behind() -> None:
    run = BenchRun("-z", "30", "-c", "4", "--workers", "2")
    try:
        run.wait_announcement()
        children = children_of(run.proc.pid)
        run.proc.kill()
        run.proc.wait(timeout=10)
        for child in children:
            assert wait_gone(child, 10.0), f"process {child} outlived a killed bench"
    finally:
        run.close()


def test_bench_serves_the_embedded_echo_with_data() -> None:
    report = bench_json("-n", "20", "-c", "2", "-d", "abc")
    assert (report["method"], report["path"], report["body_size"]) == ("POST", "/echo", 3)
