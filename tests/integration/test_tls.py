"""TLS against a real server (uvicorn with trustme certificates) and scripted TLS sockets.

What must hold: requests work over verified TLS, keep-alive reuses the TLS
connection, and every certificate problem (untrusted CA, expired, wrong name,
missing client certificate) fails with :class:`TLSError`, a ``ConnectError``
that says what was wrong, and is never accepted silently. ``connect_timeout``
also bounds the TLS handshake.
"""

from __future__ import annotations

import json
import socket
import ssl
import time

import pytest

import fusco_actor
from fusco_actor import ConnectError, ConnectInfo, ConnectTimeout, RequestTimeout, TLSError
from fusco_actor._options import parse_destination, parse_options
from fusco_actor._transport import open_connection
from tests.helpers import client_socket, client_tls, session_ticket_arrived
from tests.integration.realservers import (
    LONG_TIMEOUT,
    SHORT_TIMEOUT,
    Certificates,
    SocketServerThread,
    UvicornServer,
    echo,
    fetch,
    recv_head,
    response,
    scripted,
    server_handshake,
    wait_for_close,
)

integration = pytest.mark.integration


# -- requests over TLS ----------------------------------------------------------


@integration
def test_get_over_tls_reaches_the_server_with_host_and_query(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, ssl_context=trusting_context)
    report = echo(client, "/echo?x=1")
    assert report["scheme"] == "https"
    assert report["method"] == "GET"
    assert report["query"] == "x=1"
    assert ["host", f"127.0.0.1:{tls_server.port}"] in report["headers"]


@integration
def test_post_over_tls_sends_the_whole_body(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, ssl_context=trusting_context)
    body = b"0123456789abcdef" * 8192  # 128 KiB: several TLS records
    report = echo(client, method="POST", body=body)
    assert report["method"] == "POST"
    assert report["body"] == body.decode()
    assert ["content-length", str(len(body))] in report["headers"]


@integration
def test_chunked_response_over_tls_is_reassembled(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, ssl_context=trusting_context)
    resp = fetch(client, "/chunked?parts=5")
    assert resp.status == 200
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.body == b"part-0;part-1;part-2;part-3;part-4;"


@integration
def test_chunked_echo_of_a_posted_body_over_tls(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, ssl_context=trusting_context)
    resp = fetch(client, "/chunked", "POST", body=b"x" * 100_000)
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.body == b"x" * 100_000


@integration
def test_keep_alive_requests_over_tls_share_one_connection(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        tls_server.url, ssl_context=trusting_context, on_connect=infos.append
    )
    reports = [echo(client), echo(client, method="POST", body=b"b"), echo(client), echo(client)]
    assert len({tuple(r["client"]) for r in reports}) == 1, "the server saw several connections"
    assert len(infos) == 1
    assert infos[0].ok


@integration
def test_a_request_after_connect_reuses_the_tls_connection_despite_session_tickets(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    # A TLS 1.3 server sends session tickets after the handshake: the idle
    # socket is readable before any request, and that is not a close.
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        tls_server.url, ssl_context=trusting_context, on_connect=infos.append
    )
    client.connect(timeout=LONG_TIMEOUT)
    assert client_tls(client).version() == "TLSv1.3"
    assert session_ticket_arrived(client, SHORT_TIMEOUT), "the server sent no session ticket"
    reports = [echo(client), echo(client)]
    assert reports[0]["client"] == reports[1]["client"]
    assert len(infos) == 1


@integration
def test_on_connect_reports_success_with_the_handshake_time_and_peer(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        tls_server.url, ssl_context=trusting_context, on_connect=infos.append
    )
    started = time.monotonic()
    fetch(client)
    wall = time.monotonic() - started
    [info] = infos
    assert info.ok is True
    assert info.error is None
    assert info.address == ("127.0.0.1", tls_server.port)
    assert 0 < info.connect_time <= wall


# -- certificate failures ------------------------------------------------------------


@integration
def test_the_default_context_verifies_and_rejects_an_unknown_ca(tls_server: UvicornServer) -> None:
    client = fusco_actor.start(tls_server.url)  # no ssl_context: the verifying default
    with pytest.raises(TLSError, match="certificate verify failed") as caught:
        fetch(client)
    assert isinstance(caught.value, ConnectError)


@integration
def test_a_certificate_from_an_untrusted_ca_fails_with_tls_error(
    tls_server: UvicornServer, certs: Certificates
) -> None:
    infos: list[ConnectInfo] = []
    context = certs.client_context(trust=certs.other_ca)
    client = fusco_actor.start(tls_server.url, ssl_context=context, on_connect=infos.append)
    with pytest.raises(TLSError, match="certificate verify failed") as caught:
        fetch(client)
    [info] = infos
    assert info.ok is False
    assert info.error is caught.value
    assert info.address is None
    assert info.connect_time > 0


@integration
def test_an_expired_certificate_fails_with_tls_error_saying_so(
    expired_tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(expired_tls_server.url, ssl_context=trusting_context)
    with pytest.raises(TLSError, match="expired"):
        fetch(client)


@integration
@pytest.mark.parametrize(
    ("host", "words"), [("127.0.0.1", "IP address mismatch"), ("localhost", "Hostname mismatch")]
)
def test_a_certificate_for_another_name_fails_with_tls_error_saying_so(
    wrong_name_tls_server: UvicornServer,
    trusting_context: ssl.SSLContext,
    host: str,
    words: str,
) -> None:
    destination = f"https://{host}:{wrong_name_tls_server.port}"
    client = fusco_actor.start(destination, ssl_context=trusting_context)
    with pytest.raises(TLSError, match=words):
        fetch(client)


@integration
def test_a_failed_verification_fails_again_on_the_next_request(
    expired_tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        expired_tls_server.url, ssl_context=trusting_context, on_connect=infos.append
    )
    for _ in range(2):
        with pytest.raises(TLSError):
            fetch(client)
    assert [info.ok for info in infos] == [False, False]


@integration
def test_a_plain_http_server_behind_an_https_url_is_a_tls_error(
    http_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(
        f"https://127.0.0.1:{http_server.port}", ssl_context=trusting_context
    )
    with pytest.raises(TLSError):
        fetch(client)


# -- client certificates -------------------------------------------------------------


@integration
def test_a_client_certificate_given_through_the_context_is_accepted(
    mtls_server: UvicornServer, certs: Certificates
) -> None:
    context = certs.client_context(cert=certs.client)
    client = fusco_actor.start(mtls_server.url, ssl_context=context)
    assert echo(client)["scheme"] == "https"


@integration
def test_a_missing_client_certificate_fails_the_tls12_handshake(
    mtls_server: UvicornServer, certs: Certificates
) -> None:
    # In TLS 1.2 the server checks the client certificate inside the
    # handshake. (uvicorn's asyncio TLS closes without an alert; in TLS 1.3
    # that reaches the client only after its handshake, as a plain close.)
    context = certs.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(mtls_server.url, ssl_context=context, on_connect=infos.append)
    with pytest.raises(TLSError):
        fetch(client)
    assert infos[0].ok is False


def test_a_tls13_certificate_required_alert_is_a_tls_error(certs: Certificates) -> None:
    # TLS 1.3 finishes the client's handshake before the server has checked
    # the client certificate: the refusal comes as an alert on the first read.
    server_context = certs.server_context()
    server_context.minimum_version = ssl.TLSVersion.TLSv1_3
    server_context.verify_mode = ssl.CERT_REQUIRED
    certs.client_ca.configure_trust(server_context)
    failures: list[str] = []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn:
            try:
                server_handshake(conn, server_context)
            except ssl.SSLError as exc:
                failures.append(str(exc.reason))

    with scripted(handler) as server:
        client = fusco_actor.start(
            f"https://127.0.0.1:{server.port}", ssl_context=certs.client_context(), send_retry=0
        )
        with pytest.raises(TLSError, match="CERTIFICATE_REQUIRED"):
            fetch(client)
    assert failures == ["PEER_DID_NOT_RETURN_A_CERTIFICATE"]


# -- SNI, IPv6 and the handshake's time limit -------------------------------------------


def test_sni_carries_the_destination_host_name(certs: Certificates) -> None:
    names: list[str | None] = []
    server_context = certs.server_context()
    server_context.sni_callback = lambda _sock, name, _ctx: names.append(name)

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn, server_handshake(conn, server_context) as tls:
            recv_head(tls)
            tls.sendall(response(b"sni"))
            wait_for_close(tls)

    with scripted(handler) as server:
        client = fusco_actor.start(
            f"https://localhost:{server.port}", ssl_context=certs.client_context()
        )
        assert fetch(client).body == b"sni"
        client.disconnect(LONG_TIMEOUT)
    assert names == ["localhost"]


def test_an_ipv6_literal_is_verified_against_the_certificate(certs: Certificates) -> None:
    heads: list[bytes] = []

    def handler(server: SocketServerThread) -> None:
        with server.accept() as conn, server_handshake(conn, certs.server_context()) as tls:
            heads.append(recv_head(tls)[0])
            tls.sendall(response(b"v6"))
            wait_for_close(tls)

    with scripted(handler, host="::1") as server:
        client = fusco_actor.start(
            f"https://[::1]:{server.port}", ssl_context=certs.client_context()
        )
        assert fetch(client).body == b"v6"
        client.disconnect(LONG_TIMEOUT)
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in heads[0]


def _silent_server(server: SocketServerThread) -> None:
    """Accept one connection and never speak: a TLS handshake that never ends."""
    with server.accept() as conn:
        wait_for_close(conn)


def test_connect_timeout_covers_the_tls_handshake(certs: Certificates) -> None:
    infos: list[ConnectInfo] = []
    with scripted(_silent_server) as server:
        client = fusco_actor.start(
            f"https://127.0.0.1:{server.port}",
            ssl_context=certs.client_context(),
            connect_timeout=0.3,
            on_connect=infos.append,
        )
        started = time.monotonic()
        with pytest.raises(ConnectTimeout):
            fetch(client)
        assert time.monotonic() - started < 0.3 + SHORT_TIMEOUT
    [info] = infos
    assert info.ok is False
    assert isinstance(info.error, ConnectTimeout)
    assert info.connect_time >= 0.3  # TCP was at once: the time went into the handshake


def test_a_request_timeout_shorter_than_connect_timeout_wins_during_the_handshake(
    certs: Certificates,
) -> None:
    with scripted(_silent_server) as server:
        client = fusco_actor.start(
            f"https://127.0.0.1:{server.port}",
            ssl_context=certs.client_context(),
            connect_timeout=LONG_TIMEOUT,
        )
        future = client.request("/", "GET", timeout=0.3)
        with pytest.raises(RequestTimeout):
            future.get(timeout=LONG_TIMEOUT)


@integration
def test_tls_sockets_are_what_the_client_holds(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(tls_server.url, ssl_context=trusting_context)
    fetch(client)
    assert client_socket(client).family == socket.AF_INET
    cert = client_tls(client).getpeercert()
    assert cert is not None
    assert ("IP Address", "127.0.0.1") in cert["subjectAltName"]
    assert json.loads(fetch(client).body)["scheme"] == "https"


@integration
def test_a_tls_read_past_its_deadline_is_a_request_timeout(
    tls_server: UvicornServer, certs: Certificates
) -> None:
    options = parse_options({"ssl_context": certs.client_context()})
    conn = open_connection(parse_destination(tls_server.url), options, None)
    try:
        for _ in range(5):  # today it raised TLSError one time in five; now never
            with pytest.raises(RequestTimeout):
                conn.recv(time.monotonic() - 0.001)
            with pytest.raises(RequestTimeout):
                conn.send_all(b"GET / HTTP/1.1\r\n", time.monotonic() - 0.001)
    finally:
        conn.close()
