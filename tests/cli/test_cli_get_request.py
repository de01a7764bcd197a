"""What `fusco get` sends: URL, method, headers, body, credentials, and the `-v` trace of it."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import fusco_actor
from fusco_actor._server import EmbeddedServer
from tests.cli.get_helpers import fusco_get, one_line, requests_of, response, routes, trace
from tests.socketserver import SocketServerThread, parse_request, refused_port, stalled_listener

AGENT = f"fusco_actor/{fusco_actor.__version__}"


def received_headers(proc: Any) -> list[tuple[str, str]]:
    """The headers the embedded server's /headers route saw, in order."""
    assert proc.returncode == 0, proc.stderr
    return [(name, value) for name, value in json.loads(proc.stdout)]


def test_a_url_without_scheme_is_http(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get(f"127.0.0.1:{embedded_server.port}/bytes/5")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"01234", b"")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "http://", "http://127.0.0.1:99999/"])
def test_a_bad_url_is_a_usage_error(url: str) -> None:
    proc = fusco_get(url)
    assert proc.returncode == 2
    assert b"usage: fusco get" in proc.stderr


def test_default_headers_are_host_user_agent_and_accept(embedded_server: EmbeddedServer) -> None:
    headers = received_headers(fusco_get(embedded_server.url + "/headers"))
    assert headers == [
        ("Host", f"127.0.0.1:{embedded_server.port}"),
        ("User-Agent", AGENT),
        ("Accept", "*/*"),
    ]


@pytest.mark.parametrize(
    ("args", "agent"),
    [
        (["-A", "probe/2"], "probe/2"),
        (["-H", "User-Agent: custom/1"], "custom/1"),
        (["-A", "probe/2", "-H", "user-agent: custom/1"], "custom/1"),
        (["-A", ""], None),
        (["-H", "User-Agent:"], None),
    ],
    ids=["-A", "-H", "-H wins over -A", "-A empty", "-H empty"],
)
def test_the_user_agent_can_be_replaced_or_removed(
    embedded_server: EmbeddedServer, args: list[str], agent: str | None
) -> None:
    headers = received_headers(fusco_get(*args, embedded_server.url + "/headers"))
    agents = [value for name, value in headers if name.lower() == "user-agent"]
    assert agents == ([] if agent is None else [agent])


def test_basic_auth_from_user_option_and_from_the_url(embedded_server: EmbeddedServer) -> None:
    expected = ("Authorization", "Basic " + base64.b64encode(b"alice:s3cr:et").decode())
    assert expected in received_headers(
        fusco_get("-u", "alice:s3cr:et", embedded_server.url + "/headers")
    )
    url = f"http://alice:s3cr%3Aet@127.0.0.1:{embedded_server.port}/headers"
    assert expected in received_headers(fusco_get(url))


def test_data_is_a_form_post(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get("-i", "-d", "a=1", "-d", "b=2", embedded_server.url + "/echo")
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    assert body == b"a=1&b=2"
    assert b"\r\ncontent-type: application/x-www-form-urlencoded" in head  # echoed back


def test_a_content_type_header_replaces_the_form_type(embedded_server: EmbeddedServer) -> None:
    headers = received_headers(
        fusco_get("-X", "POST", "-d", "x", "-H", "Content-Type: text/plain",
                  embedded_server.url + "/headers")
    )  # fmt: skip
    assert [v for n, v in headers if n.lower() == "content-type"] == ["text/plain"]


def test_data_at_file_drops_cr_and_lf_and_data_binary_keeps_them(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    path = tmp_path / "form.txt"
    path.write_bytes(b"a=1\r\nb=2\n")
    url = embedded_server.url + "/echo"
    assert fusco_get("-d", f"@{path}", url).stdout == b"a=1b=2"
    assert fusco_get("--data-binary", f"@{path}", url).stdout == b"a=1\r\nb=2\n"
    assert fusco_get("--data-raw", f"@{path}", url).stdout == f"@{path}".encode()
    assert fusco_get("-d", "@-", url, stdin=b"x=1\ny=2\n").stdout == b"x=1y=2"
    assert fusco_get("--data-binary", "@-", url, stdin=b"x\n").stdout == b"x\n"


def test_data_pieces_join_with_ampersand_in_order(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"raw\n")
    proc = fusco_get(
        "-d", "a=1", "--data-urlencode", "q=a b&c/é", "--data-binary", f"@{path}",
        "--data-urlencode", "plain text", embedded_server.url + "/echo",
    )  # fmt: skip
    assert proc.stdout == b"a=1&q=a%20b%26c%2F%C3%A9&raw\n&plain%20text"


def test_a_missing_data_file_fails_before_sending(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with SocketServerThread(lambda listener, server: None) as server:
        proc = fusco_get("-d", f"@{missing}", server.url + "/")
    assert proc.returncode == 1
    line = one_line(proc)
    assert line.startswith("fusco: FileNotFoundError: ") and str(missing) in line
    assert server.connections == []


def test_data_file_is_still_sent_as_it_is(embedded_server: EmbeddedServer, tmp_path: Path) -> None:
    data = bytes(range(256)) * 3
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    assert fusco_get("--data-file", str(path), embedded_server.url + "/echo").stdout == data


def test_json_posts_with_json_content_type_and_accept(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    headers = received_headers(fusco_get("--json", '{"a": 1}', embedded_server.url + "/headers"))
    assert ("Accept", "application/json") in headers
    assert ("Content-Type", "application/json") in headers
    assert ("Content-Length", "8") in headers
    path = tmp_path / "doc.json"
    path.write_bytes(b'{\n  "b": [1, 2]\n}\n')
    proc = fusco_get("--json", f"@{path}", "-X", "PUT", embedded_server.url + "/echo")
    assert proc.stdout == path.read_bytes()


def test_a_file_body_is_streamed_from_disk(tmp_path: Path) -> None:
    """One `--data-binary @FILE` goes out with its Content-Length, bytes as in the file."""
    data = b"0123456789" * 100_000
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    with SocketServerThread(routes({b"/up": response(body=b"stored")})) as server:
        proc = fusco_get("--data-binary", f"@{path}", server.url + "/up")
    assert (proc.returncode, proc.stdout) == (0, b"stored")
    [raw] = requests_of(server)
    line, headers, body = parse_request(raw)
    assert line == b"POST /up HTTP/1.1"
    assert headers["content-length"] == b"1000000"
    assert body == data


def test_verbose_shows_exactly_the_head_that_was_sent_and_the_one_received() -> None:
    answer = response("201 Created", b"made", b"X-Thing: 1\r\n")
    with SocketServerThread(routes({b"/make?x=1": answer})) as server:
        proc = fusco_get(
            "-v", "-u", "bob:pw", "-H", "X-Custom: yes", "-H", "Accept: text/plain",
            "-d", "name=fusco", server.url + "/make?x=1",
        )  # fmt: skip
    assert (proc.returncode, proc.stdout) == (0, b"made")
    [raw] = requests_of(server)
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1")
    assert trace(proc.stderr, ">") == [*head.split("\r\n"), ""]
    assert trace(proc.stderr, "<") == [
        "HTTP/1.1 201 Created", "x-thing: 1", "content-length: 4", ""
    ]  # fmt: skip
    assert trace(proc.stderr, "*") == [f"Connected to 127.0.0.1 (127.0.0.1) port {server.port}"]
    assert head.split("\r\n")[:3] == [
        "POST /make?x=1 HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Authorization: Basic Ym9iOnB3"
    ]  # fmt: skip


def test_verbose_through_a_proxy_shows_the_absolute_form_and_proxy_credentials() -> None:
    """A scripted proxy records the request: the trace must match its bytes."""
    origin = "http://127.0.0.1:9/"  # never contacted: the proxy answers itself
    with SocketServerThread(routes({origin.encode(): response()})) as proxy:
        proc = fusco_get("-v", "-x", f"http://pat:word@127.0.0.1:{proxy.port}", origin)
    assert (proc.returncode, proc.stdout) == (0, b"ok")
    [raw] = requests_of(proxy)
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1")
    assert trace(proc.stderr, ">") == [*head.split("\r\n"), ""]
    assert head.startswith(f"GET {origin} HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
    assert "\r\nProxy-Authorization: Basic cGF0OndvcmQ=" in head


def test_max_time_bounds_the_whole_request(embedded_server: EmbeddedServer) -> None:
    started = time.monotonic()
    proc = fusco_get("-m", "0.5", embedded_server.url + "/delay/10")
    assert time.monotonic() - started < 8
    assert proc.returncode == 1
    assert one_line(proc).startswith("fusco: RequestTimeout: ")


def test_max_time_covers_the_body() -> None:
    def handler(listener: Any, server: SocketServerThread) -> None:
        conn = server.accept()
        conn.read_until(b"\r\n\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nsome")
        conn.wait_closed_by_peer()

    with SocketServerThread(handler) as server:
        proc = fusco_get("--max-time", "0.5", server.url + "/")
    assert proc.returncode == 1
    assert proc.stdout == b"some"
    assert one_line(proc).startswith("fusco: RequestTimeout: ")


def test_connect_timeout_gives_connect_timeout() -> None:
    with stalled_listener() as port:
        started = time.monotonic()
        proc = fusco_get("--connect-timeout", "0.3", f"http://127.0.0.1:{port}/")
        assert time.monotonic() - started < 8
    assert proc.returncode == 1
    assert one_line(proc).startswith("fusco: ConnectTimeout: ")


def test_silent_hides_the_error_and_show_error_brings_it_back() -> None:
    with refused_port() as port:
        silent = fusco_get("-s", f"http://127.0.0.1:{port}/")
        shown = fusco_get("-sS", f"http://127.0.0.1:{port}/")
    assert (silent.returncode, silent.stderr) == (1, b"")
    assert shown.returncode == 1
    assert one_line(shown).startswith("fusco: ConnectError: ")


def test_head_with_data_is_a_usage_error() -> None:
    proc = fusco_get("-I", "-d", "x", "http://127.0.0.1:9/")
    assert proc.returncode == 2
    assert "-I" in one_line(proc)


def test_help_lists_the_exit_statuses() -> None:
    proc = fusco_get("--help")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    for status in ("0 ", "1 ", "2 ", "22 ", "130 "):
        assert f"\n  {status}" in text, status


@pytest.mark.parametrize("bad", [["-H", "Bad Name: v"], ["-H", "X-Ok: a\rb"], ["-X", "GE T"]])
def test_a_request_refused_as_bad_never_connects(bad: list[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        proc = fusco_get(*bad, f"http://127.0.0.1:{port}/")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing in the backlog: no connect was made
            listener.accept()[0].close()
    assert proc.returncode == 1
    assert one_line(proc).startswith("fusco: BadArgument: ")
