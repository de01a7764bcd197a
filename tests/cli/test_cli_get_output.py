"""`fusco get`'s output: streamed to stdout or `-o FILE` in bounded memory, never a half file."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Final

import pytest

from fusco_actor._server import EmbeddedServer
from tests.cli.get_helpers import RUN_TIMEOUT, clean_env, fusco_get, one_line
from tests.socketserver import LONG_TIMEOUT, SocketServerThread, read_request

BIG: Final = 64 * 1024 * 1024  # bytes of the large body (the most the embedded server sends)
SMALL: Final = 10
PATTERN: Final = b"0123456789abcdef"  # what /bytes/N repeats
GROWTH_LIMIT: Final = BIG // 8  # bytes the peak RSS may grow by for the large body


# Runs `python -m fusco_actor ARGS` and writes its peak RSS (VmHWM, KiB) to the file argv[1].
# VmHWM belongs to the process's own memory since its exec; getrusage's ru_maxrss would
# also count the pytest process it was forked from, which exec records as its own.
PEAK_SCRIPT: Final = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def peak():
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
atexit.register(peak)
runpy.run_module("fusco_actor", run_name="__main__", alter_sys=True)
"""


def get_peak_rss(
    args: list[str], stdout: Any, env: dict[str, str], report: Path
) -> tuple[int, int]:
    """Run `fusco get ARGS`; return its exit status and its own peak RSS in bytes."""
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(report), "get", *args],
        stdout=stdout, stderr=subprocess.DEVNULL, env=env, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    return proc.returncode, int(report.read_text()) * 1024


def assert_pattern(path: Path, size: int) -> None:
    assert path.stat().st_size == size
    block = PATTERN * (1 << 16)  # 1 MiB: whole periods of the pattern
    with path.open("rb") as file:
        done = 0
        while piece := file.read(len(block)):
            assert piece == block[: len(piece)], f"wrong bytes after {done}"
            done += len(piece)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
@pytest.mark.parametrize("engine", ["loop", "thread"])
@pytest.mark.parametrize("destination", ["stdout", "-o"])
def test_a_large_body_is_written_as_it_arrives_in_bounded_memory(
    embedded_server: EmbeddedServer, tmp_path: Path, engine: str, destination: str
) -> None:
    env = clean_env(FUSCO_ACTOR_ENGINE=engine)
    out, report = tmp_path / "body.bin", tmp_path / "peak"
    peaks = []
    for size in (SMALL, BIG):
        url = f"{embedded_server.url}/bytes/{size}"
        if destination == "-o":
            status, peak = get_peak_rss(["-o", str(out), url], subprocess.DEVNULL, env, report)
        else:
            with out.open("wb") as sink:
                status, peak = get_peak_rss([url], sink, env, report)
        assert status == 0
        assert_pattern(out, size)
        peaks.append(peak)
    small, big = peaks
    print(f"peak RSS ({engine}, {destination}): {small / 2**20:.0f} MiB for {SMALL} bytes, "
          f"{big / 2**20:.0f} MiB for {BIG / 2**20:.0f} MiB")  # fmt: skip
    # Before streaming, the body was held whole: the peak grew by 100 MiB for 50 MiB.
    assert big - small < GROWTH_LIMIT, (small, big)


def test_stdout_gets_each_piece_before_the_body_ends() -> None:
    """The first chunk reaches a pipe while the server still holds the rest back."""
    release = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        assert release.wait(LONG_TIMEOUT)
        conn.sendall(b"4\r\nlast\r\n0\r\n\r\n")
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fusco_actor", "get", server.url + "/"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], LONG_TIMEOUT)
            assert ready, "nothing on stdout while the body was still coming"
            assert os.read(proc.stdout.fileno(), 100) == b"first"
            release.set()
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert (proc.returncode, out, err) == (0, b"last", b"")


def truncating_handler(listener: Any, server: SocketServerThread) -> None:
    """Announce 100000 bytes, send 50000, close."""
    conn = server.accept()
    read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 50_000)
    conn.close()


def test_a_failed_transfer_leaves_the_output_file_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "page.html"
    out.write_bytes(b"the previous download\n")
    with SocketServerThread(truncating_handler) as server:
        proc = fusco_get("-o", str(out), server.url + "/page.html")
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("fusco: ProtocolError: "), lines
    assert lines[1] == f"fusco: {out} left as it was: the 50000 bytes received were discarded"
    assert out.read_bytes() == b"the previous download\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html"]  # no temporary file left


def test_a_failed_transfer_creates_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "new.bin"
    with SocketServerThread(truncating_handler) as server:
        proc = fusco_get("-o", str(out), server.url + "/")
    assert proc.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_a_failed_transfer_to_stdout_exits_one_after_the_bytes_it_got() -> None:
    with SocketServerThread(truncating_handler) as server:
        proc = fusco_get(server.url + "/")
    assert proc.returncode == 1
    assert proc.stdout == b"x" * 50_000
    assert one_line(proc).startswith("fusco: ProtocolError: ")


def test_output_replaces_the_file_keeping_its_mode(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    out = tmp_path / "data.bin"
    out.write_bytes(b"old")
    out.chmod(0o640)
    proc = fusco_get("-o", str(out), embedded_server.url + "/bytes/1000")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert_pattern(out, 1000)
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_output_through_a_symbolic_link_writes_its_target(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "data.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    proc = fusco_get("-o", str(link), embedded_server.url + "/bytes/1000")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    assert link.is_symlink() and link.resolve() == target  # the link stays, as with curl
    assert_pattern(target, 1000)
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["data.bin"]


def test_output_to_a_device_is_written_directly(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get("-o", os.devnull, embedded_server.url + "/bytes/1000")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


@pytest.mark.parametrize("where", ["missing directory", "directory"])
def test_an_output_file_that_cannot_be_made_is_named_and_nothing_is_sent(
    tmp_path: Path, where: str
) -> None:
    out = tmp_path / "no" / "such.bin" if where == "missing directory" else tmp_path
    with SocketServerThread(lambda listener, server: None) as server:
        proc = fusco_get("-o", str(out), server.url + "/")
    assert proc.returncode == 1
    line = one_line(proc)
    error = "FileNotFoundError" if where == "missing directory" else "IsADirectoryError"
    assert line.startswith(f"fusco: {error}: "), line
    assert repr(str(out)) in line
    assert server.connections == []


def test_remote_name_writes_to_the_last_path_segment(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    proc = fusco_get("-O", embedded_server.url + "/bytes/321?x=1", cwd=str(tmp_path))
    assert (proc.returncode, proc.stdout) == (0, b"")
    assert_pattern(tmp_path / "321", 321)


def test_remote_name_without_a_file_name_fails(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get("-O", embedded_server.url + "/")
    assert proc.returncode == 1
    assert "has no file name" in one_line(proc)


def test_include_writes_the_head_into_the_output_file(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    out = tmp_path / "with-head"
    proc = fusco_get("-i", "-o", str(out), embedded_server.url + "/")
    assert proc.returncode == 0
    head, _, body = out.read_bytes().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"Hello, fusco!\n"


def test_head_request_writes_the_head_only(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get("-I", embedded_server.url + "/bytes/100")
    assert proc.returncode == 0
    assert proc.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert proc.stdout.endswith(b"content-length: 100\r\n\r\n")


@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_ctrl_c_or_sigterm_exits_128_plus_signal_and_leaves_no_partial_file(
    tmp_path: Path, signum: signal.Signals, status: int, said: str
) -> None:
    # SIGTERM (`timeout 5 fusco get -o FILE`) used to kill the process without
    # cleanup, leaving the hidden .FILE.XXXXXXXX.part beside FILE.
    arrived = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        arrived.set()
        conn.wait_closed_by_peer()

    out = tmp_path / "slow.bin"
    with SocketServerThread(handler) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fusco_actor", "get", "-o", str(out), server.url + "/"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(),
        )  # fmt: skip
        try:
            assert arrived.wait(LONG_TIMEOUT)  # the request came: the body is on its way
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == status
    assert err.decode().splitlines()[-1] == f"fusco: {said}"
    assert list(tmp_path.iterdir()) == []
