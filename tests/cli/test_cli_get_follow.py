"""`fusco get -L` (redirects), `-f` (exit 22) and `-w` (write-out) against loopback servers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from fusco_actor._server import EmbeddedServer
from tests.cli.get_helpers import fusco_get, one_line, requests_of, response, routes, trace
from tests.socketserver import SocketServerThread, parse_request, refused_port


def redirect(status: str, location: str) -> bytes:
    return response(status, b"moved\n", f"Location: {location}\r\n".encode())


# -- redirects -------------------------------------------------------------------------


def test_without_location_option_a_redirect_is_the_output() -> None:
    table = {b"/old": redirect("302 Found", "/new?x=1")}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-w", "%{http_code} %{redirect_url}", server.url + "/old")
    assert proc.returncode == 0
    assert proc.stdout == f"moved\n302 {server.url}/new?x=1".encode()
    assert len(requests_of(server)) == 1


def test_location_follows_a_relative_redirect_on_the_same_connection() -> None:
    table = {b"/a/old": redirect("301 Moved Permanently", "../b/new"), b"/b/new": response()}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-L", "-i", server.url + "/a/old")
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"301 Moved Permanently\r\n") and b"location: ../b/new" in first
    assert second.startswith(b"200 OK\r\n") and second.endswith(b"\r\n\r\nok")
    assert len(server.connections) == 1  # the redirect's body was read: keep-alive
    assert [parse_request(r)[0] for r in requests_of(server)] == [
        b"GET /a/old HTTP/1.1", b"GET /b/new HTTP/1.1"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "method", "keeps_body"),
    [
        ("301 Moved Permanently", "POST", False),
        ("302 Found", "POST", False),
        ("303 See Other", "POST", False),
        ("303 See Other", "PUT", False),
        ("302 Found", "PUT", True),
        ("307 Temporary Redirect", "POST", True),
        ("308 Permanent Redirect", "PATCH", True),
    ],
)
def test_redirect_method_and_body_rules(status: str, method: str, keeps_body: bool) -> None:
    table = {b"/form": redirect(status, "/done"), b"/done": response(body=b"done")}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-L", "-X", method, "-d", "k=v", server.url + "/form")
    assert (proc.returncode, proc.stdout) == (0, b"done"), proc.stderr
    first, second = (parse_request(raw) for raw in requests_of(server))
    assert first[0] == f"{method} /form HTTP/1.1".encode() and first[2] == b"k=v"
    if keeps_body:
        assert second[0] == f"{method} /done HTTP/1.1".encode()
        assert second[2] == b"k=v"
        assert second[1]["content-type"] == b"application/x-www-form-urlencoded"
    else:
        assert second[0] == b"GET /done HTTP/1.1"
        assert second[2] == b""
        assert "content-type" not in second[1] and "content-length" not in second[1]


def test_authorization_does_not_follow_to_another_origin() -> None:
    with SocketServerThread(routes({b"/landing": response(body=b"there")})) as other:
        table = {b"/start": redirect("302 Found", f"{other.url}/landing")}
        with SocketServerThread(routes(table)) as first:
            proc = fusco_get("-L", "-u", "alice:pw", "-H", "Cookie: id=1", first.url + "/start")
    assert (proc.returncode, proc.stdout) == (0, b"there"), proc.stderr
    [sent] = requests_of(first)
    [followed] = requests_of(other)
    assert parse_request(sent)[1]["authorization"] == b"Basic " + base64.b64encode(b"alice:pw")
    assert parse_request(sent)[1]["cookie"] == b"id=1"
    assert "authorization" not in parse_request(followed)[1]
    assert "cookie" not in parse_request(followed)[1]
    assert parse_request(followed)[1]["host"] == f"127.0.0.1:{other.port}".encode()


def test_location_trusted_sends_authorization_to_another_origin() -> None:
    with SocketServerThread(routes({b"/landing": response()})) as other:
        table = {b"/start": redirect("307 Temporary Redirect", f"{other.url}/landing")}
        with SocketServerThread(routes(table)) as first:
            proc = fusco_get("-L", "--location-trusted", "-u", "a:b", first.url + "/start")
    assert proc.returncode == 0, proc.stderr
    [followed] = requests_of(other)
    assert parse_request(followed)[1]["authorization"] == b"Basic " + base64.b64encode(b"a:b")


def test_too_many_redirects_fail_with_a_clear_message() -> None:
    table = {b"/loop": redirect("302 Found", "/loop")}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-L", "--max-redirs", "2", server.url + "/loop")
    assert proc.returncode == 1
    assert one_line(proc) == "fusco: TooManyRedirects: maximum (2) redirects followed"
    assert len(requests_of(server)) == 3
    assert proc.stdout == b""


def test_head_with_location_writes_every_head() -> None:
    table = {  # answers to HEAD: the length a GET would have, no body
        b"/a": b"HTTP/1.1 308 Permanent Redirect\r\nLocation: /b\r\nContent-Length: 6\r\n\r\n",
        b"/b": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
    }
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-IL", server.url + "/a")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"HTTP/1.1 308 Permanent Redirect\r\n")
    assert proc.stdout.endswith(b"\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert [parse_request(r)[0] for r in requests_of(server)] == [
        b"HEAD /a HTTP/1.1", b"HEAD /b HTTP/1.1"
    ]  # fmt: skip


def test_max_redirs_zero_follows_none() -> None:
    table = {b"/loop": redirect("302 Found", "/loop")}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-L", "--max-redirs", "0", server.url + "/loop")
    assert proc.returncode == 1
    assert len(requests_of(server)) == 1


def test_a_redirect_to_another_scheme_is_an_error() -> None:
    with SocketServerThread(routes({b"/": redirect("302 Found", "ftp://127.0.0.1/x")})) as server:
        proc = fusco_get("-L", server.url + "/")
    assert proc.returncode == 1
    assert one_line(proc).startswith("fusco: BadRedirect: cannot follow the redirect to 'ftp:")


def test_verbose_notes_each_redirect() -> None:
    table = {b"/a": redirect("303 See Other", "/b"), b"/b": response()}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-v", "-L", server.url + "/a")
    assert proc.returncode == 0
    assert trace(proc.stderr, "*") == [
        f"Connected to 127.0.0.1 (127.0.0.1) port {server.port}",
        f"Issue another request to this URL: '{server.url}/b'",
        f"Re-using the connection to 127.0.0.1 port {server.port}",
    ]
    assert [line for line in trace(proc.stderr, ">") if " HTTP/1.1" in line] == [
        "GET /a HTTP/1.1", "GET /b HTTP/1.1"
    ]  # fmt: skip


# -- --fail ----------------------------------------------------------------------------


def test_fail_exits_22_on_an_error_status_without_output(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    proc = fusco_get("-f", embedded_server.url + "/no-such-page")
    assert (proc.returncode, proc.stdout) == (22, b"")
    assert one_line(proc) == "fusco: the requested URL returned error: 404 Not Found"
    out = tmp_path / "page"
    with_file = fusco_get("--fail", "-i", "-o", str(out), embedded_server.url + "/status/500")
    assert with_file.returncode == 22
    assert not out.exists()


def test_fail_passes_a_success_and_a_followed_redirect(embedded_server: EmbeddedServer) -> None:
    assert fusco_get("-f", embedded_server.url + "/").returncode == 0
    table = {b"/x": redirect("302 Found", f"{embedded_server.url}/bytes/3")}
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-fsSL", server.url + "/x")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"012", b"")


def test_fail_with_silent_says_nothing(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get("-fs", embedded_server.url + "/status/403")
    assert (proc.returncode, proc.stdout, proc.stderr) == (22, b"", b"")


# -- --write-out ----------------------------------------------------------------------


def test_write_out_variables(embedded_server: EmbeddedServer) -> None:
    fmt = (
        "%{http_code}|%{size_download}|%{num_redirects}|%{url_effective}|%{remote_ip}|"
        "%{remote_port}|%{content_type}|%header{Server}|%{method}|%{scheme}|%{http_version}|"
        "%{num_connects}|%{exitcode}|100%%\\t\\n"
    )
    proc = fusco_get("-o", "/dev/null", "-w", fmt, embedded_server.url + "/bytes/777")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == (
        f"200|777|0|{embedded_server.url}/bytes/777|127.0.0.1|{embedded_server.port}|"
        "application/octet-stream|fusco-embedded|GET|http|1.1|1|0|100%\t\n"
    )


def test_write_out_times_are_ordered(embedded_server: EmbeddedServer) -> None:
    names = ["time_connect", "time_appconnect", "time_pretransfer", "time_starttransfer",
             "time_total", "time_redirect"]  # fmt: skip
    fmt = " ".join(f"%{{{name}}}" for name in names)
    proc = fusco_get("-o", "/dev/null", "-w", fmt, embedded_server.url + "/delay/0.2")
    assert proc.returncode == 0, proc.stderr
    times = dict(zip(names, map(float, proc.stdout.split()), strict=True))
    assert times["time_appconnect"] == 0.0  # plain http, as curl
    assert times["time_redirect"] == 0.0
    assert 0 < times["time_connect"] == times["time_pretransfer"]
    assert times["time_pretransfer"] + 0.2 <= times["time_starttransfer"]
    assert times["time_starttransfer"] <= times["time_total"]
    assert all(len(text.split(b".")[1]) == 6 for text in proc.stdout.split())


def test_write_out_after_redirects(embedded_server: EmbeddedServer) -> None:
    table = {b"/1": redirect("302 Found", "/2"), b"/2": redirect("302 Found", "/3"),
             b"/3": response(body=b"end")}  # fmt: skip
    with SocketServerThread(routes(table)) as server:
        proc = fusco_get("-L", "-w", "|%{num_redirects} %{url_effective} %{url}", server.url + "/1")
    assert proc.stdout.decode() == f"end|2 {server.url}/3 {server.url}/1"


def test_write_out_json(embedded_server: EmbeddedServer) -> None:
    proc = fusco_get("-o", "/dev/null", "-w", "%{json}", embedded_server.url + "/")
    report = json.loads(proc.stdout)
    assert report["http_code"] == 200
    assert report["size_download"] == 14
    assert report["remote_port"] == embedded_server.port
    assert report["time_total"] > 0


def test_write_out_is_written_on_failure_too() -> None:
    with refused_port() as port:
        proc = fusco_get("-w", "%{http_code} %{exitcode} %{errormsg}", f"http://127.0.0.1:{port}/")
    assert proc.returncode == 1
    code, exitcode, message = proc.stdout.decode().split(" ", 2)
    assert (code, exitcode) == ("000", "1")
    assert f"127.0.0.1:{port}" in message


def test_write_out_from_a_file_and_to_stderr(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    path = tmp_path / "format"
    path.write_text("%{stderr}code=%{response_code}\\n")
    proc = fusco_get("-w", f"@{path}", embedded_server.url + "/bytes/2")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"01", b"code=200\n")


def test_an_unknown_write_out_variable_is_a_usage_error() -> None:
    with SocketServerThread(lambda listener, server: None) as server:
        proc = fusco_get("-w", "%{http_code} %{no_such_thing}", server.url + "/")
    assert proc.returncode == 2
    assert "unknown --write-out variable 'no_such_thing'" in proc.stderr.decode()
    assert server.connections == []
