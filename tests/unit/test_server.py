"""Tests for the embedded loopback HTTP/1.1 server, driven over raw sockets."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import IO

import pytest

from fusco_actor._server import EmbeddedServer
from fusco_actor._server_process import ServerProcess
from tests.helpers import descriptors_above, process_gone, wait_gone

TIMEOUT = 5.0
EXIT_TIMEOUT = 10.0  # seconds for a server process to be gone once told (or orphaned)


class Conn:
    """A raw client socket with a tiny buffered HTTP/1.1 response reader."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def read_until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        out, self.buf = self.buf.split(sep, 1)
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_eof(self) -> bytes:
        """Everything until the peer closes (recv returns b"")."""
        while True:
            data = self.sock.recv(65536)
            if not data:
                out, self.buf = self.buf, b""
                return out
            self.buf += data

    def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes, dict[str, str]]:
        """Read one response: status, headers (lower-cased names), body, trailers."""
        lines = self.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        trailers: dict[str, str] = {}
        if head or status < 200 or status in (204, 304):
            return status, headers, b"", trailers
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    break
                assert size <= 16 * 1024
                body += self.read_exact(size)
                assert self.read_exact(2) == b"\r\n"
            while line := self.read_until(b"\r\n").decode():
                name, _, value = line.partition(":")
                trailers[name.strip().lower()] = value.strip()
            return status, headers, body, trailers
        return status, headers, self.read_exact(int(headers["content-length"])), trailers


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as srv:
        yield srv


@pytest.fixture
def conn(server: EmbeddedServer) -> Iterator[Conn]:
    c = Conn(server)
    yield c
    c.close()


def get(path: str, extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


def test_get_root(server: EmbeddedServer, conn: Conn) -> None:
    conn.send(get("/"))
    status, headers, body, _ = conn.response()
    assert (status, body) == (200, b"Hello, fusco!\n")
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "14"
    assert headers["server"] == "fusco-embedded"
    assert "connection" not in headers
    assert server.requests_served == 1


def test_url_and_port(server: EmbeddedServer) -> None:
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_keep_alive_two_requests(conn: Conn) -> None:
    conn.send(get("/"))
    assert conn.response()[0] == 200
    conn.send(get("/bytes/10"))
    status, _, body, _ = conn.response()
    assert (status, body) == (200, b"0123456789")


def test_pipelined_requests_answered_in_order(conn: Conn) -> None:
    conn.send(
        get("/delay/0.05")
        + get("/bytes/3")
        + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
        + get("/status/204")
        + get("/nope")
        + get("/")
    )
    assert conn.response()[2] == b"delayed\n"
    assert conn.response()[2] == b"012"
    assert conn.response()[2] == b"hello"
    assert conn.response()[0] == 204
    assert conn.response()[0] == 404
    assert conn.response()[2] == b"Hello, fusco!\n"


def test_request_split_over_many_reads(conn: Conn) -> None:
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for byte in b"PUT /echo HTTP/1.1\r\nContent-Type: text/x\r\nContent-Length: 3\r\n\r\nabc":
        conn.send(bytes([byte]))
    status, headers, body, _ = conn.response()
    assert (status, body, headers["content-type"]) == (200, b"abc", "text/x")


def test_chunked_request_body_echoed(conn: Conn) -> None:
    conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
    conn.send(b"lo\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\n")
    status, _, body, _ = conn.response()
    assert (status, body) == (200, b"hello world!")
    conn.send(get("/"))  # the connection is still usable
    assert conn.response()[0] == 200


def test_chunked_response_decodable(conn: Conn) -> None:
    conn.send(get("/chunked/100000"))
    status, headers, body, trailers = conn.response()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert len(body) == 100000
    assert body == (b"0123456789abcdef" * 6250)[:100000]
    assert trailers == {"x-trailer": "done"}


def test_expect_100_continue(conn: Conn) -> None:
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    )
    assert conn.read_exact(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"ping")
    status, _, body, _ = conn.response()
    assert (status, body) == (200, b"ping")


def test_connection_close_from_client(conn: Conn) -> None:
    conn.send(get("/", "Connection: close\r\n"))
    status, headers, body, _ = conn.response()
    assert (status, headers["connection"], body) == (200, "close", b"Hello, fusco!\n")
    assert conn.read_eof() == b""


def test_close_route(conn: Conn) -> None:
    conn.send(get("/close"))
    status, headers, _, _ = conn.response()
    assert (status, headers["connection"]) == (200, "close")
    assert conn.read_eof() == b""


def test_http10_closes_unless_keep_alive(server: EmbeddedServer) -> None:
    c = Conn(server)
    try:
        c.send(b"GET /chunked/5 HTTP/1.0\r\n\r\n")
        data = c.read_eof()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Length: 5\r\n" in data and data.endswith(b"\r\n\r\n01234")
    finally:
        c.close()
    c = Conn(server)
    try:
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert c.response()[1]["connection"] == "keep-alive"
        c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        assert c.response()[0] == 200
    finally:
        c.close()


def test_head_has_no_body(conn: Conn) -> None:
    conn.send(get("/", method="HEAD") + get("/bytes/2"))
    status, headers, _, _ = conn.response(head=True)
    assert (status, headers["content-length"]) == (200, "14")
    # the next response starts right after the HEAD response's headers
    status, _, body, _ = conn.response()
    assert (status, body) == (200, b"01")


def test_not_found(conn: Conn) -> None:
    conn.send(get("/no/such/thing?x=1"))
    status, headers, body, _ = conn.response()
    assert status == 404 and body and headers["content-length"] == str(len(body))


@pytest.mark.parametrize("code", [204, 304, 418, 503])
def test_status(conn: Conn, code: int) -> None:
    conn.send(get(f"/status/{code}") + get("/"))
    status, headers, body, _ = conn.response()
    assert (status, body) == (code, b"")
    assert ("content-length" in headers) == (code not in (204, 304))
    assert conn.response()[0] == 200


def test_headers_in_wire_order(conn: Conn) -> None:
    conn.send(b"GET /headers HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nx-a:1\r\n\r\n")
    status, headers, body, _ = conn.response()
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == [["Host", "h"], ["X-B", "2"], ["x-a", "1"]]


def test_cookies(conn: Conn) -> None:
    conn.send(get("/set-cookie?a=1&b=two"))
    lines = conn.read_until(b"\r\n\r\n").split(b"\r\n")
    assert [ln for ln in lines if ln.startswith(b"Set-Cookie")] == [
        b"Set-Cookie: a=1; Path=/",
        b"Set-Cookie: b=two; Path=/",
    ]
    conn.read_exact(3)
    conn.send(get("/cookies", "Cookie: a=1; b=two\r\n") + get("/cookies"))
    assert conn.response()[2] == b"a=1; b=two"
    assert conn.response()[2] == b""


def test_delay_does_not_block_other_connections(server: EmbeddedServer) -> None:
    slow, fast = Conn(server), Conn(server)
    try:
        slow.send(get("/delay/1.0"))
        fast.send(get("/"))
        assert fast.response()[0] == 200
        assert select.select([slow.sock], [], [], 0)[0] == []  # still waiting
        assert slow.response()[2] == b"delayed\n"
    finally:
        slow.close()
        fast.close()


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n"],
)
def test_malformed_request_gets_400_and_close(conn: Conn, request_bytes: bytes) -> None:
    conn.send(request_bytes)
    assert conn.response()[0] == 400
    assert conn.read_eof() == b""


def test_head_too_large_gets_431(conn: Conn) -> None:
    conn.send(b"GET / HTTP/1.1\r\nX: " + b"a" * (64 * 1024 - 18))  # 64 KiB + 1, no end
    assert conn.response()[0] == 431
    assert conn.read_eof() == b""


def test_stop_closes_open_connections() -> None:
    server = EmbeddedServer().start()
    idle, pending = Conn(server), Conn(server)
    try:
        idle.send(get("/"))
        assert idle.response()[0] == 200
        pending.send(get("/delay/30"))
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < TIMEOUT
        for c in (idle, pending):
            with contextlib.suppress(ConnectionResetError):
                assert c.read_eof() == b""
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.port), timeout=TIMEOUT).close()
    finally:
        idle.close()
        pending.close()
        server.stop()  # idempotent


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "example.com", "192.168.0.1"])
def test_non_loopback_host_rejected(host: str) -> None:
    with pytest.raises(ValueError):
        EmbeddedServer(host).start()


def test_localhost_and_ipv6_loopback() -> None:
    with EmbeddedServer("localhost") as srv:
        assert srv.host == "127.0.0.1"
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv6 = EmbeddedServer("::1").start()
    except OSError:
        pytest.skip("cannot bind ::1")
    try:
        assert srv6.url == f"http://[::1]:{srv6.port}"
        with socket.create_connection(("::1", srv6.port), timeout=TIMEOUT) as s:
            s.sendall(get("/"))
            assert s.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        srv6.stop()


# -- the server in a child process ---------------------------------------------------


def kill_if_running(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def read_line(stream: IO[str] | None, timeout: float = TIMEOUT) -> str:
    """One line from a child's stdout pipe, or "" if none came within `timeout`."""
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


def http_get_root(url: str) -> bytes:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(get("/", "Connection: close\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")


def start_server_main(*flags: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fusco_actor._server_process", "--port", "0", *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = read_line(proc.stdout)
    if not line.startswith("serving on http://127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"the server did not start: {line!r}")
    return proc


def close_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_main_stops_cleanly_on_sigint_and_sigterm(signum: int) -> None:
    proc = start_server_main()
    try:
        proc.send_signal(signum)
        assert proc.wait(EXIT_TIMEOUT) == 0
    finally:
        close_process(proc)


def test_main_with_parent_pipe_stops_at_the_end_of_stdin() -> None:
    proc = start_server_main("--parent-pipe")
    try:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(EXIT_TIMEOUT) == 0
    finally:
        close_process(proc)


def test_main_without_parent_pipe_ignores_the_end_of_stdin() -> None:
    proc = start_server_main()
    try:
        assert proc.stdin is not None
        proc.stdin.close()
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.5)  # still serving after the end of stdin (a bounded negative check)
    finally:
        close_process(proc)


def test_server_process_serves_and_stop_ends_the_child() -> None:
    server = ServerProcess().start()
    pid = server.pid
    assert pid is not None
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert http_get_root(server.url).startswith(b"HTTP/1.1 200 OK\r\n")
        server.stop()
        assert server.pid is None
        assert process_gone(pid)  # stop() waited for it
        server.stop()  # idempotent
    finally:
        kill_if_running(pid)


def test_server_process_starts_when_its_pipes_are_numbered_above_1023() -> None:
    # select() cannot watch a descriptor above FD_SETSIZE; the scheduler raises the
    # open-file limit, so a process with many clients gets such descriptors.
    with descriptors_above(1100):
        server = ServerProcess().start()
        try:
            assert http_get_root(server.url).startswith(b"HTTP/1.1 200 OK\r\n")
        finally:
            server.stop()


# A parent that starts ServerProcess, reports the child's pid and waits to be killed.
_PARENT = textwrap.dedent(
    """
    import sys, threading
    from fusco_actor._server_process import ServerProcess

    servers = []
    start = lambda: servers.append(ServerProcess().start())
    if sys.argv[1] == "thread":  # no PR_SET_PDEATHSIG then: the pipe alone must do it
        thread = threading.Thread(target=start)
        thread.start()
        thread.join()
    else:
        start()
    print(servers[0].pid, flush=True)
    sys.stdin.read()
    """
)


@needs_proc
@pytest.mark.parametrize("started_in", ["main", "thread"])
def test_server_process_ends_when_its_parent_is_killed(started_in: str) -> None:
    assert_server_ends_with_its_parent([sys.executable, "-c", _PARENT, started_in])


def assert_server_ends_with_its_parent(parent_argv: list[str]) -> None:
    """Run a parent that prints its server child's pid, SIGKILL it, and see the child end."""
    parent = subprocess.Popen(
        parent_argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    child = 0
    try:
        line = read_line(parent.stdout, EXIT_TIMEOUT)
        assert line.strip().isdigit(), line
        child = int(line)
        assert not process_gone(child)
        parent.kill()  # SIGKILL: no cleanup in the parent
        parent.wait(EXIT_TIMEOUT)
        assert wait_gone(child), "the server process outlived its parent"
    finally:
        close_process(parent)
        if child:
            kill_if_running(child)


@needs_proc
@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_main_with_parent_death_signal_ends_with_its_parent() -> None:
    # The parent holds no pipe to the server (stdin is /dev/null): only the signal can stop it.
    script = textwrap.dedent(
        """
        import subprocess, sys
        proc = subprocess.Popen(
            [sys.executable, "-m", "fusco_actor._server_process", "--port", "0",
             "--parent-death-signal"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
        )
        assert proc.stdout.readline().startswith("serving on ")
        print(proc.pid, flush=True)
        sys.stdin.read()
        """
    )
    assert_server_ends_with_its_parent([sys.executable, "-c", script])
