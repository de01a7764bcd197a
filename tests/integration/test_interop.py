"""Interoperability with the servers people run (issue 9, point 9).

Every server of :data:`SERVERS` (nginx, gunicorn, waitress, hypercorn, uvicorn
with h11 and with httptools, tornado, aiohttp.web, Python's HTTP/1.0
http.server) is started once for this module on a free 127.0.0.1 port and
put through every scenario of :data:`SCENARIOS`; two real proxies, tinyproxy
and proxy.py, carry a GET in absolute form to an http origin and a CONNECT
tunnel to an https one. Connections are counted with ``on_connect``.

``INTEROP_TABLE=docs/interop.md pytest tests/integration/test_interop.py`` refreshes
the results tables of that page from the run.
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import TYPE_CHECKING

import pytest

import fusco_actor
from fusco_actor import ConnectInfo
from tests.helpers import idle_connection_closed_by_peer, idle_connection_readable
from tests.integration.interop_apps.routes import PARTS, digest
from tests.integration.interop_servers import (
    IDLE,
    SERVERS,
    InteropServer,
    TinyproxyServer,
    record,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack
from tests.integration.realservers import (
    LONG_TIMEOUT,
    REQUEST_TIMEOUT,
    Certificates,
    ProxyPyServer,
    UvicornServer,
    echo,
    fetch,
)

pytestmark = pytest.mark.integration

ONE_MIB = bytes(range(256)) * 4096

# (server, scenario) -> why the server cannot do it: recorded as n/a.
# (A server that closes after every response still gets the pipeline scenario,
# which then checks that the unanswered requests are sent again.)
NOT_SUPPORTED: dict[tuple[str, str], str] = {
    ("http.server (HTTP/1.0)", "chunked-upload"): "n/a: an HTTP/1.0 server reads no chunked"
    " request body (it takes the body as empty, answers and closes on the unread chunks)",
}

# (server, scenario) -> a client bug that makes it fail: xfail(strict=True).
CLIENT_BUGS: dict[tuple[str, str], str] = {}


class Connects:
    """A client with its ``on_connect`` reports."""

    def __init__(self, server: InteropServer, **options: Unpack[fusco_actor.ClientOptions]) -> None:
        """Start a client of ``server`` that records every connection attempt."""
        self.infos: list[ConnectInfo] = []
        options["on_connect"] = self.infos.append
        self.client = fusco_actor.start(server.url, **options)

    @property
    def count(self) -> int:
        """Return how many connections were made, all of them successful."""
        assert all(info.ok for info in self.infos), self.infos
        return len(self.infos)


@contextlib.contextmanager
def client_of(
    server: InteropServer, **options: Unpack[fusco_actor.ClientOptions]
) -> Iterator[Connects]:
    """Run a counting client of ``server`` for the ``with`` block."""
    connects = Connects(server, **options)
    try:
        yield connects
    finally:
        fusco_actor.disconnect(connects.client)


def wait_for_server_close(client: fusco_actor.Client, timeout: float) -> None:
    """Wait (bounded) until the server closes the client's idle connection (either engine).

    See :func:`tests.helpers.idle_connection_closed_by_peer`.
    """
    if not idle_connection_closed_by_peer(client, timeout):
        raise AssertionError(f"the server did not close the idle connection in {timeout} s")


# -- the scenarios ---------------------------------------------------------------------------


def closes(resp: fusco_actor.Response) -> bool:
    """Tell whether the server ends the connection after ``resp`` (RFC 9112 section 9.3)."""
    tokens = {t.strip().lower() for t in resp.headers.get("connection", "").split(",")}
    if resp.version == "HTTP/1.0":
        return "keep-alive" not in tokens
    return "close" in tokens


def expected_connects(responses: list[fusco_actor.Response]) -> int:
    """Return the connections these sequential responses take: a new one after each close."""
    return 1 + sum(closes(resp) for resp in responses[:-1])


def scenario_get(server: InteropServer) -> None:
    with client_of(server) as c:
        resp = fetch(c.client, "/ping")
        assert (resp.status, resp.body, resp.version) == (200, b"pong", resp.version)
        assert resp.headers.get("content-length") == "4"


def scenario_head_then_get(server: InteropServer) -> None:
    with client_of(server) as c:
        head = fetch(c.client, "/ping", "HEAD")
        get = fetch(c.client, "/ping")
        assert (head.status, head.body) == (200, b"")
        assert (get.status, get.body) == (200, b"pong")
        assert c.count == expected_connects([head, get])
        assert c.count == 1 or not server.spec.keep_alive


def scenario_post_1mib(server: InteropServer) -> None:
    with client_of(server) as c:
        resp = fetch(c.client, "/upload", "POST", body=ONE_MIB)
        assert resp.status == 200
        assert resp.body == (ONE_MIB if server.spec.upload_echoes else digest(ONE_MIB))
        after = fetch(c.client, "/ping")  # the connection is still in step
        assert after.body == b"pong"


def scenario_chunked_upload(server: InteropServer) -> None:
    def pieces() -> Iterator[bytes]:
        for start in range(0, len(ONE_MIB), 16 * 1024):
            yield ONE_MIB[start : start + 16 * 1024]

    with client_of(server) as c:
        resp = fetch(c.client, "/upload", "POST", body=pieces())
        assert resp.status == 200
        assert resp.body == (ONE_MIB if server.spec.upload_echoes else digest(ONE_MIB))
        after = fetch(c.client, "/echo-path/8")
        assert (after.status, after.body) == (200, b"8")
        assert c.count == expected_connects([resp, after])


def scenario_chunked(server: InteropServer) -> None:
    with client_of(server) as c:
        resp = fetch(c.client, "/chunked")
        assert resp.status == 200
        assert resp.body == b"".join(PARTS)
        assert "content-length" not in resp.headers
        if server.spec.chunked:
            assert resp.headers.get("transfer-encoding") == "chunked"
        else:
            assert "transfer-encoding" not in resp.headers
        after = fetch(c.client, "/ping")
        assert after.body == b"pong"
        assert c.count == expected_connects([resp, after])


def scenario_head_chunked(server: InteropServer) -> None:
    with client_of(server) as c:
        head = fetch(c.client, "/chunked", "HEAD")
        get = fetch(c.client, "/echo-path/1")
        assert (head.status, head.body) == (200, b"")
        assert (get.status, get.body) == (200, b"1")
        assert c.count == expected_connects([head, get])


def scenario_100_on_one_conn(server: InteropServer) -> None:
    with client_of(server) as c:
        first_port = fetch(c.client, "/port")
        responses = [fetch(c.client, f"/echo-path/{i}") for i in range(100)]
        last_port = fetch(c.client, "/port")
        assert [(r.status, r.body) for r in responses] == [
            (200, str(i).encode()) for i in range(100)
        ]
        assert c.count == expected_connects([first_port, *responses, last_port])
        if server.spec.keep_alive:
            assert c.count == 1
            assert first_port.body == last_port.body  # the server saw one client port too


def scenario_idle_close(server: InteropServer) -> None:
    body = b"after the idle close"
    with client_of(server) as c:
        assert fetch(c.client, "/ping").body == b"pong"
        wait_for_server_close(c.client, IDLE + LONG_TIMEOUT)
        # A POST, which may only be sent again where the server cannot have seen it (API 4).
        resp = fetch(c.client, "/upload", "POST", body)
        assert resp.status == 200
        assert resp.body == (body if server.spec.upload_echoes else digest(body))
        assert c.count == 2


def scenario_connection_close(server: InteropServer) -> None:
    with client_of(server) as c:
        resp = fetch(c.client, "/ping", headers=[("Connection", "close")])
        assert (resp.status, resp.body) == (200, b"pong")
        again = fetch(c.client, "/echo-path/7")
        assert (again.status, again.body) == (200, b"7")
        assert c.count == 2


def scenario_204_304(server: InteropServer) -> None:
    with client_of(server) as c:
        responses = []
        for status in (204, 304):
            resp = fetch(c.client, f"/status/{status}")
            assert (resp.status, resp.body) == (status, b"")
            after = fetch(c.client, f"/echo-path/{status}")
            assert (after.status, after.body) == (200, str(status).encode())
            responses += [resp, after]
        assert c.count == expected_connects(responses)


def scenario_expect_100(server: InteropServer) -> None:
    body = ONE_MIB[: 256 * 1024]
    with client_of(server) as c:
        resp = fetch(c.client, "/upload", "POST", body, [("Expect", "100-continue")])
        assert resp.status == 200
        assert resp.body == (body if server.spec.upload_echoes else digest(body))
        if server.spec.sends_100:
            # The body went on the 100, not after the client's 1 s wait for it.
            assert resp.elapsed < 0.9, resp.elapsed


def scenario_expect_100_refused(server: InteropServer) -> None:
    body = ONE_MIB[: 256 * 1024]
    with client_of(server) as c:
        refused = fetch(c.client, "/nothing", "POST", body, [("Expect", "100-continue")])
        assert refused.status == 404
        # Whether or not the body went out, the connection is in step (or was closed).
        after = [fetch(c.client, f"/echo-path/{i}") for i in range(3)]
        assert [(r.status, r.body) for r in after] == [(200, b"0"), (200, b"1"), (200, b"2")]


def scenario_pipeline_8(server: InteropServer) -> None:
    # send_retry=0: a request written behind a response that closed the connection was
    # never seen by the server (RFC 9112 9.6), so sending it again spends no retry.
    with client_of(server, pipeline=8, send_retry=0) as c:
        futures = [
            c.client.request(f"/echo-path/{i}", "GET", [], b"", timeout=REQUEST_TIMEOUT)
            for i in range(32)
        ]
        responses = [f.get(timeout=REQUEST_TIMEOUT + LONG_TIMEOUT) for f in futures]
        assert [r.body for r in responses] == [str(i).encode() for i in range(32)]
        # A server that closes after each response leaves the requests written behind it
        # unanswered: they are sent again, on the next connection.
        assert c.count == expected_connects(responses)
        assert c.count == 1 or not server.spec.keep_alive


SCENARIOS: dict[str, Callable[[InteropServer], None]] = {
    "get": scenario_get,
    "head-then-get": scenario_head_then_get,
    "post-1MiB": scenario_post_1mib,
    "chunked-upload": scenario_chunked_upload,
    "chunked": scenario_chunked,
    "head-chunked": scenario_head_chunked,
    "100-on-one-conn": scenario_100_on_one_conn,
    "idle-close": scenario_idle_close,
    "connection-close": scenario_connection_close,
    "204-304": scenario_204_304,
    "expect-100": scenario_expect_100,
    "expect-100-404": scenario_expect_100_refused,
    "pipeline-8": scenario_pipeline_8,
}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InteropServer]:
    """Each server of SERVERS in turn, started once for all its scenarios."""
    spec = SERVERS[request.param]
    directory = tmp_path_factory.mktemp("interop")
    instance = InteropServer(spec, directory)
    try:
        yield instance.start()
    finally:
        instance.stop()


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_server_scenario(
    server: InteropServer, scenario: str, request: pytest.FixtureRequest
) -> None:
    key = (server.name, scenario)
    note = (server.spec.notes or {}).get(scenario)
    request.node.user_properties.append(
        record("Servers", server.name, scenario, server.spec.version(), note)
    )
    if key in NOT_SUPPORTED:
        pytest.skip(NOT_SUPPORTED[key])
    if key in CLIENT_BUGS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=CLIENT_BUGS[key]))
    SCENARIOS[scenario](server)


@pytest.fixture(scope="module")
def aiohttp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InteropServer]:
    """aiohttp.web alone."""
    instance = InteropServer(SERVERS["aiohttp.web"], tmp_path_factory.mktemp("careless"))
    try:
        yield instance.start()
    finally:
        instance.stop()


def test_a_body_sent_on_a_head_answer_never_reaches_the_next_request(
    aiohttp_server: InteropServer,
) -> None:
    """A real careless peer: an aiohttp.web handler that writes a body for HEAD.

    aiohttp sends those chunks after the bodiless HEAD answer; the connection
    that holds them must be dropped, never read for the next response.
    """
    with client_of(aiohttp_server) as c:
        head = fetch(c.client, "/careless-head", "HEAD")
        assert (head.status, head.body) == (200, b"")
        # Not dropped yet? Wait (bounded) for the stray chunks to land.
        assert idle_connection_readable(c.client, 5.0), "aiohttp sent no stray body"
        get = fetch(c.client, "/ping")
        assert (get.status, get.body) == (200, b"pong")
        assert c.count == 2  # the connection holding the stray chunks was dropped


# -- proxies ---------------------------------------------------------------------------------

PROXIES = ["tinyproxy", "proxy.py"]
# Proxies that close the client's connection after each forwarded response, with no
# "Connection: close" to say so (an HTTP/1.1 peer may close at any time, RFC 9112 9.5).
CLOSES_SILENTLY = {
    "tinyproxy": "tinyproxy closes the client connection after each forwarded response"
    " without Connection: close: the second GET reconnects"
}


@pytest.fixture(scope="module")
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyproxyServer]:
    """tinyproxy (Debian's) on a free loopback port."""
    proxy = TinyproxyServer(tmp_path_factory.mktemp("tinyproxy"))
    try:
        yield proxy.start()
    finally:
        proxy.stop()


def proxy_url(name: str, request: pytest.FixtureRequest) -> tuple[str, int, str]:
    """Return (url, port, version) of the proxy called ``name``."""
    if name == "tinyproxy":
        tiny: TinyproxyServer = request.getfixturevalue("tinyproxy")
        return tiny.url(), tiny.port, TinyproxyServer.version()
    pyproxy: ProxyPyServer = request.getfixturevalue("open_proxy")
    return pyproxy.url(), pyproxy.port, f"proxy.py {metadata.version('proxy.py')}"


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_absolute_form_get(
    name: str, request: pytest.FixtureRequest, http_server: UvicornServer
) -> None:
    url, port, version = proxy_url(name, request)
    column = "GET http (absolute-form)"
    note = CLOSES_SILENTLY.get(name)
    request.node.user_properties.append(record("Proxies", name, column, version, note))
    infos: list[ConnectInfo] = []
    with fusco_actor.start(http_server.url, proxy=url, on_connect=infos.append) as client:
        first = fetch(client, "/echo?n=1")
        second = fetch(client, "/echo?n=2")
    reports = [json.loads(resp.body) for resp in (first, second)]
    assert [(r["path"], r["query"]) for r in reports] == [("/echo", "n=1"), ("/echo", "n=2")]
    assert ["host", f"127.0.0.1:{http_server.port}"] in reports[0]["headers"]
    assert {info.address for info in infos} == {("127.0.0.1", port)}
    assert len(infos) == expected_connects([first, second]) + (name in CLOSES_SILENTLY)


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_connect_tunnel_to_https(
    name: str,
    request: pytest.FixtureRequest,
    tls_server: UvicornServer,
    certs: Certificates,
) -> None:
    url, port, version = proxy_url(name, request)
    column = "CONNECT to https"
    request.node.user_properties.append(record("Proxies", name, column, version, None))
    context: ssl.SSLContext = certs.client_context()
    infos: list[ConnectInfo] = []
    with fusco_actor.start(
        tls_server.url, proxy=url, ssl_context=context, on_connect=infos.append
    ) as client:
        reports = [echo(client, method="POST", body=b"tunnel-%d" % i) for i in range(3)]
    assert [r["body"] for r in reports] == ["tunnel-0", "tunnel-1", "tunnel-2"]
    assert {r["scheme"] for r in reports} == {"https"}
    assert [info.address for info in infos] == [("127.0.0.1", port)]  # one tunnel, kept alive
