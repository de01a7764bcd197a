"""`python -m fusco_actor` as a subprocess against the embedded loopback server."""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from fusco_actor._server import EmbeddedServer
from fusco_actor.cli import main
from tests.helpers import process_gone, wait_gone

RUN_TIMEOUT = 30.0  # seconds for one CLI run
STARTUP_TIMEOUT = 15.0  # seconds for `bench` to announce itself
SIGINT_EXIT_TIMEOUT = 5.0  # seconds `bench` may take to report after Ctrl-C (or SIGTERM)
ORPHAN_EXIT_TIMEOUT = 10.0  # seconds the embedded server may outlive a killed `bench`


def fusco(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "fusco_actor", *args],
        input=stdin,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def stderr_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def unreachable_port() -> int:
    """A loopback port that was free a moment ago: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def unreachable_url(unreachable_port: int) -> str:
    return f"http://127.0.0.1:{unreachable_port}/"


# -- processes (Linux /proc) ---------------------------------------------------------


def server_children(parent: int) -> list[int]:
    """The pids of the embedded-server processes whose parent is `parent`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                ppid = int(file.read().rpartition(b")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                cmdline = file.read().split(b"\0")
        except (OSError, ValueError, IndexError):  # it ended while we looked
            continue
        if ppid == parent and b"fusco_actor._server_process" in cmdline:
            found.append(int(entry))
    return found


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")


class BenchRun:
    """`python -m fusco_actor bench ARGS` in the background, its stderr read by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fusco_actor", "bench", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        self.server_pid = 0

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.lines.put(line)

    def wait_announcement(self) -> str:
        """Return the announcement line, once `bench` printed it (the server is up)."""
        return self.lines.get(timeout=STARTUP_TIMEOUT).decode()

    def find_server(self) -> int:
        """Return the pid of the one embedded-server child (call after the announcement)."""
        children = server_children(self.proc.pid)
        assert len(children) == 1, children
        self.server_pid = children[0]
        return self.server_pid

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait up to `timeout` s for the exit; return the exit status and stdout."""
        returncode = self.proc.wait(timeout=timeout)
        assert self.proc.stdout is not None
        return returncode, self.proc.stdout.read().decode()

    def close(self) -> None:
        """Kill whatever is left (bench, its server) and close the pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.server_pid:
            with suppress(ProcessLookupError):
                os.kill(self.server_pid, signal.SIGKILL)
        self.reader.join(RUN_TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def bench_run(*args: str) -> Iterator[BenchRun]:
    run = BenchRun(*args)
    try:
        yield run
    finally:
        run.close()


# -- fusco get -----------------------------------------------------------------------


def test_get_writes_the_body_to_stdout_and_exits_zero(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", embedded_server.url + "/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"Hello, fusco!\n"
    assert proc.stderr == b""


def test_get_include_prints_the_status_line_and_headers_before_the_body(
    embedded_server: EmbeddedServer,
) -> None:
    proc = fusco("get", "-i", embedded_server.url + "/")
    assert proc.returncode == 0, proc.stderr
    head, sep, body = proc.stdout.partition(b"\r\n\r\n")
    assert sep
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "content-length: 14" in lines[1:]
    assert "server: fusco-embedded" in lines[1:]
    assert body == b"Hello, fusco!\n"


def test_get_is_binary_safe(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", embedded_server.url + "/bytes/100000")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == 100000
    assert proc.stdout.startswith(b"0123456789abcdef0123")


def test_get_post_data_is_echoed(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", "-X", "POST", "-d", "hello fusco", embedded_server.url + "/echo")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello fusco"


def test_get_data_file_and_stdin_are_sent_as_the_body(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 4
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    from_file = fusco("get", "--data-file", str(path), embedded_server.url + "/echo")
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == data
    from_stdin = fusco("get", "--data-file", "-", embedded_server.url + "/echo", stdin=data)
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == data


def test_get_headers_reach_the_server(embedded_server: EmbeddedServer) -> None:
    proc = fusco(
        "get",
        "-H",
        "X-Fusco-Test: yes please",
        "-H",
        "Accept:*/*",
        embedded_server.url + "/headers",
    )
    assert proc.returncode == 0, proc.stderr
    received = [tuple(pair) for pair in json.loads(proc.stdout)]
    assert ("X-Fusco-Test", "yes please") in received
    assert ("Accept", "*/*") in received
    assert ("Host", f"127.0.0.1:{embedded_server.port}") in received


def test_get_sends_path_and_query_as_the_request_target(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", "-i", embedded_server.url + "/status/201?ignored=1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"HTTP/1.1 201 Created\r\n")


def test_get_exits_zero_for_an_error_status(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", embedded_server.url + "/no-such-page")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"not found\n"


def test_get_to_an_unreachable_port_fails_with_one_connect_error_line(
    unreachable_url: str,
) -> None:
    proc = fusco("get", unreachable_url)
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert stderr_line(proc).startswith("fusco: ConnectError: ")


def test_get_timeout_fails_with_request_timeout(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", "--timeout", "0.3", embedded_server.url + "/delay/5")
    assert proc.returncode == 1
    assert stderr_line(proc).startswith("fusco: RequestTimeout: ")


def test_get_bad_method_fails_with_bad_argument(embedded_server: EmbeddedServer) -> None:
    proc = fusco("get", "-X", "NOT A TOKEN", embedded_server.url + "/")
    assert proc.returncode == 1
    assert stderr_line(proc).startswith("fusco: BadArgument: ")


def test_get_missing_ca_file_fails_with_one_line() -> None:
    proc = fusco("get", "--cacert", "/nonexistent/ca.pem", "https://127.0.0.1:1/")
    assert proc.returncode == 1
    assert stderr_line(proc).startswith("fusco: FileNotFoundError: ")


# -- fusco bench ---------------------------------------------------------------------


def check_report(report: dict[str, Any], requests: int) -> None:
    assert report["requests"] == requests
    assert report["responses"] == requests
    assert report["error_count"] == 0
    assert report["errors"] == []
    assert report["error_kinds"] == 0
    assert report["unfinished"] == 0
    assert report["success_rate"] == 1.0
    assert report["status"] == {"200": requests}
    assert report["interrupted"] is False
    assert report["signal"] is None
    lat = report["latency"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert report["requests_per_sec"] > 0
    assert report["duration"] > 0
    assert report["bytes"] > 0
    assert report["bytes_per_sec"] > 0


def test_bench_json_against_the_embedded_server() -> None:
    proc = fusco("bench", "-n", "200", "-c", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_report(report, 200)
    assert report["embedded_server"] is True
    assert report["connections"] == 4
    assert report["method"] == "GET"
    assert report["path"] == "/"
    assert "embedded server at http://127.0.0.1:" in proc.stderr.decode()


def test_bench_json_against_a_url(embedded_server: EmbeddedServer) -> None:
    proc = fusco("bench", embedded_server.url + "/bytes/100", "-n", "200", "-c", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_report(report, 200)
    assert report["embedded_server"] is False
    assert report["path"] == "/bytes/100"
    assert report["bytes"] > 200 * 100


def test_bench_pipelined_over_checked_out_clients() -> None:
    proc = fusco("bench", "-n", "300", "-c", "2", "--pipeline", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_report(report, 300)
    assert report["pipeline"] == 4


def test_bench_body_size_posts_to_echo_on_the_embedded_server() -> None:
    proc = fusco("bench", "-n", "50", "-c", "2", "--body-size", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    check_report(report, 50)
    assert (report["method"], report["path"], report["body_size"]) == ("POST", "/echo", 1000)
    assert report["bytes"] > 50 * 1000


def test_bench_for_a_duration_prints_a_text_report() -> None:
    proc = fusco("bench", "-z", "0.5", "-c", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "(embedded server)" in out
    for label in ("Requests:", "Duration:", "Requests/s:", "Transfer:", "Latency:", "p99.9"):
        assert label in out
    assert "Errors:       none" in out
    # Not a TTY: one announcement line, no progress line.
    assert len(proc.stderr.decode().splitlines()) == 1


def bench_on_a_terminal(*args: str) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """Run `bench ARGS` with stderr on a pseudo-terminal; return the run and what it drew."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fusco_actor", "bench", *args],
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal side is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    return proc, drawn


def test_bench_draws_a_progress_line_when_stderr_is_a_tty() -> None:
    proc, drawn = bench_on_a_terminal("-z", "1", "-c", "2")
    assert proc.returncode == 0
    assert re.search(rb"\r +[\d.]+/1 s +\d+ requests +\d+ req/s +0 errors", drawn), drawn
    assert b"Requests/s:" in proc.stdout


class _AnyMessage:
    """Equal to any non-empty string."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<any non-empty message>"


ANY_MESSAGE = _AnyMessage()


def test_bench_with_failed_requests_exits_one_and_reports_each_error_with_its_message(
    unreachable_port: int,
) -> None:
    url = f"http://127.0.0.1:{unreachable_port}/"
    proc = fusco("bench", url, "-n", "20", "-c", "2", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["requests"], report["responses"], report["error_count"]) == (20, 0, 20)
    assert report["errors"] == [{"type": "ConnectError", "message": ANY_MESSAGE, "count": 20}]
    assert f"127.0.0.1:{unreachable_port}" in report["errors"][0]["message"]
    assert report["error_kinds"] == 1
    assert report["success_rate"] == 0.0
    # Errors are not responses: no rate of them, and no latency to speak of.
    assert report["requests_per_sec"] == 0.0
    keys = ("min", "mean", "p50", "p75", "p90", "p99", "p99.9", "p99.99", "max")
    assert report["latency"] == dict.fromkeys(keys)
    assert proc.stderr.decode().splitlines()[-1] == "fusco: 20 of 20 requests failed"


def test_bench_text_report_of_failed_requests(unreachable_port: int) -> None:
    url = f"http://127.0.0.1:{unreachable_port}/"
    proc = fusco("bench", url, "-n", "20", "-c", "2")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert "Requests:     20 (0 responses, 20 errors)" in lines
    assert "Requests/s:   0.0 (responses)" in lines
    assert "Latency:      n/a (no responses)" in lines
    assert "Success:      0.0% of requests sent got a response" in lines
    errors = lines.index("Errors:       20 (1 distinct)")
    assert re.fullmatch(
        rf" +20 x ConnectError: .*127\.0\.0\.1:{unreachable_port}.*", lines[errors + 1]
    ), lines[errors + 1]
    assert proc.stderr.decode().splitlines()[-1] == "fusco: 20 of 20 requests failed"


def test_bench_timeouts_are_errors_not_responses(embedded_server: EmbeddedServer) -> None:
    proc = fusco(
        "bench", embedded_server.url + "/delay/2", "--timeout", "0.2", "-n", "4", "-c", "2",
        "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["responses"], report["error_count"]) == (0, 4)
    assert [(e["type"], e["count"]) for e in report["errors"]] == [("RequestTimeout", 4)]
    assert report["errors"][0]["message"]
    assert report["latency"]["p99"] is None


@needs_proc
@pytest.mark.parametrize(
    ("signum", "returncode"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_bench_stopped_by_a_signal_reports_stops_its_server_and_exits_128_plus_signal(
    signum: signal.Signals, returncode: int
) -> None:
    with bench_run("-z", "30", "-c", "4") as run:
        assert "embedded server at http://127.0.0.1:" in run.wait_announcement()
        server = run.find_server()
        run.proc.send_signal(signum)
        sent = time.monotonic()
        status, out = run.finish(SIGINT_EXIT_TIMEOUT + 5)  # the report fits a pipe's buffer
        assert time.monotonic() - sent < SIGINT_EXIT_TIMEOUT
        assert status == returncode, out
        assert process_gone(server), "bench exited and left its embedded server running"
    assert f"[interrupted by {signum.name}]" in out
    for label in ("Requests/s:", "Duration:", "Latency:", "Status codes:", "Errors:       none"):
        assert label in out


@needs_proc
def test_bench_sigterm_json_report_names_the_signal() -> None:
    with bench_run("-z", "30", "-c", "2", "--json") as run:
        run.wait_announcement()
        server = run.find_server()
        run.proc.send_signal(signal.SIGTERM)
        status, out = run.finish(SIGINT_EXIT_TIMEOUT + 5)
        assert status == 143
        assert process_gone(server)
    report = json.loads(out)
    assert report["interrupted"] is True
    assert report["signal"] == "SIGTERM"
    assert report["error_count"] == 0


def test_bench_sigterm_reports_requests_still_in_flight_as_unfinished(
    embedded_server: EmbeddedServer,
) -> None:
    url = embedded_server.url + "/delay/30"
    with bench_run(url, "-z", "30", "-c", "2", "--timeout", "60", "--json") as run:
        assert url in run.wait_announcement()
        run.proc.send_signal(signal.SIGTERM)
        status, out = run.finish(SIGINT_EXIT_TIMEOUT + 5)  # the grace period is 2 s
    assert status == 143
    report = json.loads(out)
    assert (report["responses"], report["error_count"], report["unfinished"]) == (0, 0, 2)
    assert report["success_rate"] == 0.0
    assert report["signal"] == "SIGTERM"


@needs_proc
def test_bench_killed_leaves_no_embedded_server_behind() -> None:
    with bench_run("-z", "30", "-c", "2") as run:
        run.wait_announcement()
        server = run.find_server()
        run.proc.kill()  # SIGKILL: bench cannot clean up; the server must notice by itself
        run.proc.wait(timeout=RUN_TIMEOUT)
        assert wait_gone(server, ORPHAN_EXIT_TIMEOUT), "the embedded server outlived bench"


# -- usage errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "-n", "-5"],
        ["bench", "-c", "0"],
        ["bench", "-z", "0"],
        ["bench", "--pipeline", "0"],
        ["bench", "-n", "10", "-z", "1"],
        ["bench", "ftp://127.0.0.1/"],
        ["frobnicate"],
        ["get"],
        [],
        ["get", "-H", "no colon here", "http://127.0.0.1:1/"],
        ["get", "--insecure", "--cacert", "ca.pem", "https://127.0.0.1:1/"],
    ],
)
def test_invalid_arguments_are_usage_errors(args: list[str]) -> None:
    proc = fusco(*args)
    assert proc.returncode == 2
    assert b"usage: fusco" in proc.stderr
    assert proc.stdout == b""


def test_main_returns_two_for_a_usage_error_without_exiting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "-c", "0"]) == 2
    assert "usage: fusco" in capsys.readouterr().err


def test_help_exits_zero() -> None:
    proc = fusco("--help")
    assert proc.returncode == 0
    assert b"get" in proc.stdout
    assert b"bench" in proc.stdout
