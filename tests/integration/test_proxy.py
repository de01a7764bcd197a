"""Proxies: the real proxy.py (CONNECT, Basic auth) and a scripted fake proxy socket.

What must hold: ``https`` origins go through one HTTP CONNECT tunnel per
connection (``Host`` = host:port, IPv6 in brackets, ``Proxy-Authorization:
Basic`` from the percent-decoded user-info, 1xx answers skipped), reused by
keep-alive requests; a refusal is ``ProxyError(status, reason)``, a proxy
that closes is ``ProxyError`` too; ``http`` origins are sent to the proxy in
absolute form; ``proxy_ssl_context`` is the context of the TLS session made
through the tunnel.
"""

from __future__ import annotations

import base64
import ssl
import time
from dataclasses import dataclass, field

import pytest

import fusco_actor
from fusco_actor import ConnectError, ConnectInfo, ConnectTimeout, ProxyError, TLSError
from tests.helpers import client_connection
from tests.integration.conftest import PROXY_CREDENTIALS, PROXY_PASSWORD, PROXY_USER
from tests.integration.realservers import (
    SHORT_TIMEOUT,
    Certificates,
    ProxyPyServer,
    SocketServerThread,
    UvicornServer,
    echo,
    fetch,
    free_port,
    recv_head,
    response,
    scripted,
    server_handshake,
    wait_for_close,
)

integration = pytest.mark.integration

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
BASIC = b"Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode())


# -- the real proxy: proxy.py ------------------------------------------------------


@integration
def test_https_origin_through_an_authenticating_proxy(
    auth_proxy: ProxyPyServer, tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        tls_server.url,
        proxy=auth_proxy.url(PROXY_CREDENTIALS),
        ssl_context=trusting_context,
        on_connect=infos.append,
    )
    report = echo(client, "/echo?via=proxy")
    assert report["scheme"] == "https"
    assert report["query"] == "via=proxy"
    assert ["host", f"127.0.0.1:{tls_server.port}"] in report["headers"]
    # Inside the tunnel the origin sees no proxy credentials.
    assert not any(name == "proxy-authorization" for name, _ in report["headers"])
    [info] = infos
    assert info.ok
    assert info.address == ("127.0.0.1", auth_proxy.port)
    assert client_connection(client).tunnelled


@integration
def test_https_origin_through_a_proxy_without_authentication(
    open_proxy: ProxyPyServer, tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, proxy=open_proxy.url(), ssl_context=trusting_context)
    assert echo(client, method="POST", body=b"through")["body"] == "through"


@integration
@pytest.mark.parametrize("credentials", ["alice:wrong", "bob:p%40ss%20w%3A0rd", None])
def test_wrong_or_missing_credentials_are_a_proxy_error_407(
    auth_proxy: ProxyPyServer,
    tls_server: UvicornServer,
    trusting_context: ssl.SSLContext,
    credentials: str | None,
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        tls_server.url,
        proxy=auth_proxy.url(credentials),
        ssl_context=trusting_context,
        on_connect=infos.append,
    )
    with pytest.raises(ProxyError) as caught:
        fetch(client)
    assert caught.value.status == 407
    assert caught.value.reason == "Proxy Authentication Required"
    assert isinstance(caught.value, ConnectError)
    [info] = infos
    assert info.ok is False
    assert info.error is caught.value


@integration
def test_a_proxy_that_cannot_reach_the_target_is_a_proxy_error(
    open_proxy: ProxyPyServer, trusting_context: ssl.SSLContext
) -> None:
    closed = free_port()
    client = fusco_actor.start(
        f"https://127.0.0.1:{closed}", proxy=open_proxy.url(), ssl_context=trusting_context
    )
    with pytest.raises(ProxyError) as caught:
        fetch(client)
    assert caught.value.status == 502
    assert "502" in str(caught.value)


@integration
def test_http_origin_through_the_proxy(
    auth_proxy: ProxyPyServer, http_server: UvicornServer
) -> None:
    client = fusco_actor.start(http_server.url, proxy=auth_proxy.url(PROXY_CREDENTIALS))
    report = echo(client, "/echo?a=b")
    # proxy.py turned our absolute-form target back into origin-form.
    assert report["path"] == "/echo"
    assert report["query"] == "a=b"
    assert report["scheme"] == "http"
    assert client_connection(client).tunnelled is False


@integration
def test_http_origin_through_the_proxy_with_wrong_credentials_answers_407(
    auth_proxy: ProxyPyServer, http_server: UvicornServer
) -> None:
    # No tunnel here: the proxy's answer is the response to the request.
    client = fusco_actor.start(http_server.url, proxy=auth_proxy.url("alice:nope"))
    assert fetch(client).status == 407


@integration
def test_tls_through_the_tunnel_uses_proxy_ssl_context(
    open_proxy: ProxyPyServer, tls_server: UvicornServer, certs: Certificates
) -> None:
    client = fusco_actor.start(
        tls_server.url,
        proxy=open_proxy.url(),
        ssl_context=certs.client_context(trust=certs.other_ca),  # would fail
        proxy_ssl_context=certs.client_context(),
    )
    assert echo(client)["scheme"] == "https"


@integration
def test_tls_through_the_tunnel_falls_back_to_ssl_context(
    open_proxy: ProxyPyServer, tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, proxy=open_proxy.url(), ssl_context=trusting_context)
    assert echo(client)["scheme"] == "https"


@integration
def test_an_expired_certificate_through_the_tunnel_is_a_tls_error(
    open_proxy: ProxyPyServer, expired_tls_server: UvicornServer, certs: Certificates
) -> None:
    client = fusco_actor.start(
        expired_tls_server.url, proxy=open_proxy.url(), proxy_ssl_context=certs.client_context()
    )
    with pytest.raises(TLSError, match="expired"):
        fetch(client)


@integration
def test_the_default_context_verifies_through_the_tunnel(
    open_proxy: ProxyPyServer, tls_server: UvicornServer
) -> None:
    client = fusco_actor.start(tls_server.url, proxy=open_proxy.url())
    with pytest.raises(TLSError, match="certificate verify failed"):
        fetch(client)


@integration
def test_the_tunnel_is_made_once_for_several_keep_alive_requests(
    auth_proxy: ProxyPyServer, tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        tls_server.url,
        proxy=auth_proxy.url(PROXY_CREDENTIALS),
        ssl_context=trusting_context,
        on_connect=infos.append,
    )
    reports = [echo(client), echo(client, method="POST", body=b"2"), echo(client), echo(client)]
    # The origin sees the proxy's one upstream connection: one client port.
    assert len({tuple(r["client"]) for r in reports}) == 1
    assert len(infos) == 1


# -- a scripted fake proxy ------------------------------------------------------------


@dataclass
class FakeProxy:
    """A scripted proxy: reads CONNECT, writes ``answer``, then serves TLS itself.

    With ``tls`` it plays the origin inside the tunnel and answers
    ``responses`` requests on it; without, it waits for the client to close.
    ``close_after`` closes at once after the answer instead.
    """

    answer: list[bytes] = field(default_factory=lambda: [ESTABLISHED])
    tls: ssl.SSLContext | None = None
    responses: int = 1
    close_after: bool = False
    connects: list[bytes] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)

    def __call__(self, server: SocketServerThread) -> None:
        with server.accept() as conn:
            head, _ = recv_head(conn)
            self.connects.append(head)
            for part in self.answer:
                conn.sendall(part)
            if self.close_after:
                return
            if self.tls is None:
                wait_for_close(conn)
                return
            with server_handshake(conn, self.tls) as tls:
                for n in range(self.responses):
                    self.requests.append(recv_head(tls)[0])
                    tls.sendall(response(b"tunnelled %d" % n))
                wait_for_close(tls)


def test_connect_names_host_and_port_and_sends_decoded_basic_credentials(
    certs: Certificates,
) -> None:
    fake = FakeProxy(tls=certs.server_context())
    with scripted(fake) as proxy:
        client = fusco_actor.start(
            "https://127.0.0.1",  # the default port 443: CONNECT still names it
            proxy=f"http://{PROXY_CREDENTIALS}@127.0.0.1:{proxy.port}",
            ssl_context=certs.client_context(),
        )
        assert fetch(client, "/x").body == b"tunnelled 0"
        client.disconnect(SHORT_TIMEOUT)
    assert fake.connects == [
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:443\r\n"
        b"Proxy-Authorization: " + BASIC + b"\r\n\r\n"
    ]
    # Inside the tunnel: origin-form, Host without the default port, no credentials.
    [request] = fake.requests
    assert request.startswith(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert b"proxy-authorization" not in request.lower()


def test_connect_to_an_ipv6_origin_brackets_the_host(certs: Certificates) -> None:
    fake = FakeProxy(tls=certs.server_context())
    with scripted(fake) as proxy:
        client = fusco_actor.start(
            "https://[::1]:8443",
            proxy=f"http://127.0.0.1:{proxy.port}",
            ssl_context=certs.client_context(),
        )
        assert fetch(client).body == b"tunnelled 0"
        client.disconnect(SHORT_TIMEOUT)
    assert fake.connects == [b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"]
    assert b"\r\nHost: [::1]:8443\r\n" in fake.requests[0]


@pytest.mark.parametrize(
    "answer",
    [
        [b"HTTP/1.1 100 Continue\r\n\r\n" + ESTABLISHED],
        [
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 102 Processing\r\nX-A: b\r\n\r\n",
            ESTABLISHED,
        ],
        [b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", ESTABLISHED[:9], ESTABLISHED[9:]],
    ],
    ids=["one-write", "two-1xx", "split-answer"],
)
def test_1xx_answers_before_the_connect_answer_are_skipped(
    certs: Certificates, answer: list[bytes]
) -> None:
    fake = FakeProxy(answer=answer, tls=certs.server_context())
    with scripted(fake) as proxy:
        client = fusco_actor.start(
            "https://127.0.0.1:8443",
            proxy=f"http://127.0.0.1:{proxy.port}",
            ssl_context=certs.client_context(),
        )
        assert fetch(client).body == b"tunnelled 0"
        client.disconnect(SHORT_TIMEOUT)


def test_an_http10_connect_answer_opens_the_tunnel(certs: Certificates) -> None:
    fake = FakeProxy(answer=[b"HTTP/1.0 200 OK\r\n\r\n"], tls=certs.server_context())
    with scripted(fake) as proxy:
        client = fusco_actor.start(
            "https://127.0.0.1:8443",
            proxy=f"http://127.0.0.1:{proxy.port}",
            ssl_context=certs.client_context(),
        )
        assert fetch(client).body == b"tunnelled 0"
        client.disconnect(SHORT_TIMEOUT)


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied", 403, "Forbidden"),
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            407,
            "Proxy Authentication Required",
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 502 Bad Gateway\r\n\r\n", 502, "Bad Gateway"),
        (b"HTTP/1.1 503 \r\n\r\n", 503, ""),
    ],
)
def test_a_non_2xx_connect_answer_is_a_proxy_error_with_status_and_reason(
    answer: bytes, status: int, reason: str
) -> None:
    infos: list[ConnectInfo] = []
    with scripted(FakeProxy(answer=[answer])) as proxy:
        client = fusco_actor.start(
            "https://127.0.0.1:8443",
            proxy=f"http://127.0.0.1:{proxy.port}",
            on_connect=infos.append,
        )
        with pytest.raises(ProxyError) as caught:
            fetch(client)
    assert (caught.value.status, caught.value.reason) == (status, reason)
    assert [info.ok for info in infos] == [False]


@pytest.mark.parametrize(
    "answer",
    [[], [b"HTTP/1.1 100 Continue\r\n\r\n"], [b"HTTP/1.1 200 Connection est"]],
    ids=["no-byte", "after-1xx", "mid-head"],
)
def test_a_proxy_that_closes_before_its_answer_is_a_proxy_error(answer: list[bytes]) -> None:
    with scripted(FakeProxy(answer=answer, close_after=True)) as proxy:
        client = fusco_actor.start(
            "https://127.0.0.1:8443", proxy=f"http://127.0.0.1:{proxy.port}", send_retry=3
        )
        with pytest.raises(ProxyError) as caught:
            fetch(client)
    assert caught.value.status is None


def test_connect_timeout_covers_the_connect_exchange() -> None:
    infos: list[ConnectInfo] = []
    with scripted(FakeProxy(answer=[])) as proxy:  # reads CONNECT, never answers
        client = fusco_actor.start(
            "https://127.0.0.1:8443",
            proxy=f"http://127.0.0.1:{proxy.port}",
            connect_timeout=0.3,
            on_connect=infos.append,
        )
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            fetch(client)
        assert time.monotonic() - started < 0.3 + SHORT_TIMEOUT
    assert infos[0].connect_time >= 0.3


def test_an_unreachable_proxy_is_a_connect_error_naming_the_proxy() -> None:
    port = free_port()
    client = fusco_actor.start("https://127.0.0.1:8443", proxy=f"http://127.0.0.1:{port}")
    with pytest.raises(ConnectError, match=f"proxy 127.0.0.1:{port}") as caught:
        fetch(client)
    assert not isinstance(caught.value, ProxyError)


def test_the_tunnel_is_made_once_for_several_keep_alive_requests_on_the_wire(
    certs: Certificates,
) -> None:
    fake = FakeProxy(tls=certs.server_context(), responses=3)
    with scripted(fake) as proxy:
        client = fusco_actor.start(
            "https://127.0.0.1:8443",
            proxy=f"http://127.0.0.1:{proxy.port}",
            ssl_context=certs.client_context(),
        )
        bodies = [fetch(client, f"/{n}").body for n in range(3)]
        client.disconnect(SHORT_TIMEOUT)
    assert bodies == [b"tunnelled 0", b"tunnelled 1", b"tunnelled 2"]
    assert proxy.accepted == 1
    assert len(fake.connects) == 1
    assert [r.split(b" ")[1] for r in fake.requests] == [b"/0", b"/1", b"/2"]


@pytest.mark.parametrize("credentials", [PROXY_CREDENTIALS, None])
def test_http_origin_requests_use_absolute_form_on_the_wire(credentials: str | None) -> None:
    heads: list[bytes] = []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            for n in range(2):
                heads.append(recv_head(conn)[0])
                conn.sendall(response(b"forwarded %d" % n))
            wait_for_close(conn)

    with scripted(handler) as proxy:
        userinfo = f"{credentials}@" if credentials else ""
        client = fusco_actor.start(
            "http://127.0.0.1:8080", proxy=f"http://{userinfo}127.0.0.1:{proxy.port}"
        )
        assert fetch(client, "/path?q=1").body == b"forwarded 0"
        assert fetch(client, "/second", "POST", body=b"x").body == b"forwarded 1"
        client.disconnect(SHORT_TIMEOUT)
    assert heads[0].startswith(b"GET http://127.0.0.1:8080/path?q=1 HTTP/1.1\r\n")
    assert heads[1].startswith(b"POST http://127.0.0.1:8080/second HTTP/1.1\r\n")
    for head in heads:
        assert b"\r\nHost: 127.0.0.1:8080\r\n" in head
        assert not head.startswith(b"CONNECT")
        if credentials:
            assert b"\r\nProxy-Authorization: " + BASIC + b"\r\n" in head
        else:
            assert b"proxy-authorization" not in head.lower()


@integration
def test_a_bad_certificate_through_the_tunnel_names_the_origin_not_the_proxy(
    open_proxy: ProxyPyServer, wrong_name_tls_server: UvicornServer, certs: Certificates
) -> None:
    client = fusco_actor.start(
        wrong_name_tls_server.url, proxy=open_proxy.url(), ssl_context=certs.client_context()
    )
    with pytest.raises(TLSError) as caught:
        fetch(client)
    message = str(caught.value)
    assert f"TLS with {wrong_name_tls_server.url}" in message
    assert "certificate verify failed" in message
    assert not message.startswith("connect to proxy")
