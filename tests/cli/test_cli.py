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

import pytest

from fusco_actor._server import EmbeddedServer
from fusco_actor.cli import main

RUN_TIMEOUT = 30.0  # seconds for one CLI run
STARTUP_TIMEOUT = 15.0  # seconds for `bench` to announce itself
SIGINT_EXIT_TIMEOUT = 5.0  # seconds `bench` may take to report after Ctrl-C


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
def unreachable_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


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
    embedded_server: EmbeddedServer, tmp_path
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


def check_report(report: dict, requests: int) -> None:
    assert report["requests"] == requests
    assert report["responses"] == requests
    assert report["errors"] == {}
    assert report["status"] == {"200": requests}
    assert report["interrupted"] is False
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
    proc = fusco("bench", "-d", "0.5", "-c", "2")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "(embedded server)" in out
    for label in ("Requests:", "Duration:", "Requests/s:", "Transfer:", "Latency:", "p99.9"):
        assert label in out
    assert "Errors:       none" in out
    # Not a TTY: one announcement line, no progress line.
    assert len(proc.stderr.decode().splitlines()) == 1


def test_bench_draws_a_progress_line_when_stderr_is_a_tty() -> None:
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fusco_actor", "bench", "-d", "1", "-c", "2"],
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
    assert proc.returncode == 0
    assert re.search(rb"\r +\d+ requests +\d+ req/s +0 errors", drawn), drawn
    assert b"Requests/s:" in proc.stdout


def test_bench_counts_errors_by_kind(unreachable_url: str) -> None:
    proc = fusco("bench", unreachable_url, "-n", "20", "-c", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["requests"] == 20
    assert report["responses"] == 0
    assert report["errors"] == {"ConnectError": 20}


def test_bench_stops_on_sigint_and_still_reports() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusco_actor", "bench", "-d", "30", "-c", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[bytes] = queue.Queue()

    def read_stderr() -> None:
        for line in iter(proc.stderr.readline, b""):
            lines.put(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        announcement = lines.get(timeout=STARTUP_TIMEOUT)
        assert b"embedded server at http://127.0.0.1:" in announcement
        time.sleep(0.5)  # let some requests complete
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        proc.wait(timeout=SIGINT_EXIT_TIMEOUT + 5)  # the report is far below a pipe's buffer
        assert time.monotonic() - sent < SIGINT_EXIT_TIMEOUT
        out = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(RUN_TIMEOUT)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0
    assert "[interrupted]" in out
    assert "Requests/s:" in out
    assert "Duration:" in out
    assert "Status codes: 200: " in out


# -- usage errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "-n", "-5"],
        ["bench", "-c", "0"],
        ["bench", "-d", "0"],
        ["bench", "--pipeline", "0"],
        ["bench", "-n", "10", "-d", "1"],
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


def test_main_returns_two_for_a_usage_error_without_exiting(capsys) -> None:
    assert main(["bench", "-c", "0"]) == 2
    assert "usage: fusco" in capsys.readouterr().err


def test_help_exits_zero() -> None:
    proc = fusco("--help")
    assert proc.returncode == 0
    assert b"get" in proc.stdout
    assert b"bench" in proc.stdout
