"""connect_options (source_address, family, sockopts, tcp_nodelay) and on_connect.

Each option is checked by what the server sees (the peer address) or by
reading the option back from the client's socket (``tests.helpers.client_socket``
after a request, under either engine). ``on_connect`` must be called once per connection attempt
with its outcome, its error and its time.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest

import fusco_actor
from fusco_actor import BadOption, ConnectError, ConnectInfo
from tests.helpers import client_socket
from tests.integration.realservers import (
    SHORT_TIMEOUT,
    ProxyPyServer,
    SocketServerThread,
    UvicornServer,
    echo,
    fetch,
    free_port,
    recv_head,
    response,
    scripted,
    wait_for_close,
)

integration = pytest.mark.integration


def peer_recorder(peers: list[Any], connections: int = 1, close: bool = True) -> Any:
    """Return a scripted HTTP handler that records each connection's peer address.

    Each connection gets one response, with ``Connection: close`` when ``close``
    (then the next request needs a new connection); the handler then waits
    for the client to close.
    """
    extra = b"Connection: close\r\n" if close else b""

    def handler(server: SocketServerThread) -> None:
        for _ in range(connections):
            with server.accept() as conn:
                peers.append(conn.getpeername())
                recv_head(conn)
                conn.sendall(response(b"seen", extra=extra))
                wait_for_close(conn)

    return handler


# -- tcp_nodelay and sockopts --------------------------------------------------------


@integration
@pytest.mark.parametrize("use_tls", [False, True], ids=["http", "https"])
def test_tcp_nodelay_is_on_by_default(
    http_server: UvicornServer,
    tls_server: UvicornServer,
    trusting_context: ssl.SSLContext,
    use_tls: bool,
) -> None:
    url = tls_server.url if use_tls else http_server.url
    client = fusco_actor.start(url, ssl_context=trusting_context)
    fetch(client)
    assert client_socket(client).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


@integration
def test_tcp_nodelay_false_leaves_nagle_on(http_server: UvicornServer) -> None:
    client = fusco_actor.start(http_server.url, connect_options={"tcp_nodelay": False})
    fetch(client)
    assert client_socket(client).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


SOCKOPTS = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
if hasattr(socket, "TCP_KEEPIDLE"):  # Linux
    SOCKOPTS.append((socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 42))


@integration
def test_sockopts_are_set_on_the_connection(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(
        tls_server.url, ssl_context=trusting_context, connect_options={"sockopts": SOCKOPTS}
    )
    fetch(client)
    sock = client_socket(client)
    for level, option, value in SOCKOPTS:
        assert sock.getsockopt(level, option) == value


@integration
def test_sockopts_and_nodelay_apply_to_the_proxy_connection(
    open_proxy: ProxyPyServer, tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    client = fusco_actor.start(
        tls_server.url,
        proxy=open_proxy.url(),
        ssl_context=trusting_context,
        connect_options={"sockopts": SOCKOPTS, "tcp_nodelay": False},
    )
    fetch(client)
    sock = client_socket(client)
    assert sock.getpeername() == ("127.0.0.1", open_proxy.port)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


# -- source_address ------------------------------------------------------------------------


@integration
def test_source_address_is_the_address_the_server_sees(http_server: UvicornServer) -> None:
    client = fusco_actor.start(
        http_server.url, connect_options={"source_address": ("127.0.0.2", 0)}
    )
    assert echo(client)["client"][0] == "127.0.0.2"


@integration
def test_source_address_port_is_the_port_the_server_sees(
    tls_server: UvicornServer, trusting_context: ssl.SSLContext
) -> None:
    port = free_port()
    client = fusco_actor.start(
        tls_server.url,
        ssl_context=trusting_context,
        connect_options={"source_address": ("127.0.0.1", port)},
    )
    assert echo(client)["client"] == ["127.0.0.1", port]


def test_source_address_binds_the_connection_to_the_proxy() -> None:
    peers: list[Any] = []
    with scripted(peer_recorder(peers)) as proxy:
        client = fusco_actor.start(
            "http://127.0.0.1:8080",
            proxy=f"http://127.0.0.1:{proxy.port}",
            connect_options={"source_address": ("127.0.0.3", 0)},
        )
        assert fetch(client).body == b"seen"
    assert peers[0][0] == "127.0.0.3"


def test_a_source_address_in_use_is_a_connect_error() -> None:
    with socket.socket() as taken, scripted(lambda _server: None) as server:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        client = fusco_actor.start(
            f"http://127.0.0.1:{server.port}",
            connect_options={"source_address": taken.getsockname()},
        )
        with pytest.raises(ConnectError):
            fetch(client)


# -- family --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_host", "url_host", "family"),
    [("::1", "[::1]", socket.AF_INET6), ("127.0.0.1", "localhost", socket.AF_INET)],
)
def test_family_selects_the_address_family(
    server_host: str, url_host: str, family: socket.AddressFamily
) -> None:
    peers: list[Any] = []
    with scripted(peer_recorder(peers, close=False), host=server_host) as server:
        client = fusco_actor.start(
            f"http://{url_host}:{server.port}", connect_options={"family": family}
        )
        fetch(client)
        assert client_socket(client).family == family
        client.disconnect(SHORT_TIMEOUT)
    assert peers[0][0] == server_host


@pytest.mark.parametrize(
    ("url_host", "family"), [("127.0.0.1", socket.AF_INET6), ("[::1]", socket.AF_INET)]
)
def test_a_family_the_destination_does_not_have_is_a_connect_error(
    url_host: str, family: socket.AddressFamily
) -> None:
    infos: list[ConnectInfo] = []
    client = fusco_actor.start(
        f"http://{url_host}:9", connect_options={"family": family}, on_connect=infos.append
    )
    with pytest.raises(ConnectError):
        fetch(client)
    assert infos[0].ok is False


@pytest.mark.parametrize(
    "connect_options",
    [
        {"bogus": 1},
        {"family": socket.AF_UNIX},
        {"tcp_nodelay": "yes"},
        {"sockopts": [(socket.SOL_SOCKET, socket.SO_KEEPALIVE)]},
        {"source_address": "127.0.0.1"},
        "tcp_nodelay",
    ],
)
def test_bad_connect_options_are_a_bad_option(connect_options: Any) -> None:
    with pytest.raises(BadOption, match="connect_options"):
        fusco_actor.start("http://127.0.0.1:9", connect_options=connect_options)


# -- on_connect ----------------------------------------------------------------------------


def test_on_connect_reports_every_attempt_failed_or_not() -> None:
    infos: list[ConnectInfo] = []
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = bound.getsockname()[1]
        client = fusco_actor.start(f"http://127.0.0.1:{port}", on_connect=infos.append)
        with pytest.raises(ConnectError) as refused:
            fetch(client)
        peers: list[Any] = []
        with scripted(peer_recorder(peers, connections=2), sock=bound):
            fetch(client)
            fetch(client)  # the first answer said Connection: close: a new connection
    assert [info.ok for info in infos] == [False, True, True]
    failed, first, second = infos
    assert failed.error is refused.value
    assert failed.address is None
    assert failed.connect_time >= 0
    for info in (first, second):
        assert info.error is None
        assert info.address == ("127.0.0.1", port)
        assert info.connect_time > 0
    assert len(peers) == 2


def test_an_on_connect_that_raises_does_not_fail_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(_info: ConnectInfo) -> None:
        raise RuntimeError("callback bug")

    peers: list[Any] = []
    with scripted(peer_recorder(peers)) as server:
        client = fusco_actor.start(f"http://127.0.0.1:{server.port}", on_connect=broken)
        assert fetch(client).body == b"seen"
    assert "on_connect" in caplog.text


def test_on_connect_info_is_public_and_immutable() -> None:
    info = fusco_actor.ConnectInfo(ok=True, error=None, connect_time=0.5, address=("::1", 1))
    with pytest.raises(AttributeError):
        info.ok = False  # type: ignore[misc]
    assert info.connect_time == pytest.approx(0.5)
