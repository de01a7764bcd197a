"""`python -m fusco_actor.server`: the embedded server in the foreground, as README.md starts it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

import fusco_actor

START_TIMEOUT = 15.0  # seconds for the server to print its address
STOP_TIMEOUT = 10.0  # seconds for it to exit after a signal


@pytest.fixture
def server_process() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusco_actor.server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT)


def read_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded by the test's timeout
    assert line.startswith("serving on http://127.0.0.1:"), line
    assert line.endswith("(Ctrl-C to stop)\n")
    return line.split()[2]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serves_until_a_signal_then_exits_zero(
    server_process: subprocess.Popen[str], signum: int
) -> None:
    url = read_url(server_process)
    with fusco_actor.start(url) as client:
        response = client.request("/bytes/5", "GET", timeout=5.0).get()
    assert (response.status, response.body) == (200, b"01234")
    server_process.send_signal(signum)
    assert server_process.wait(STOP_TIMEOUT) == 0


def test_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "fusco_actor.server", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


def test_a_host_that_is_not_loopback_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fusco_actor.server", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == "error: not a loopback address: '0.0.0.0'\n"
