"""A send ends at the request's deadline however slowly the peer reads (plain and TLS).

Before issue 10 each partial write got a fresh socket timeout, so a peer that
read a little at a time held a 1 s request for many seconds.
"""

from __future__ import annotations

import array
import contextlib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

import fusco_actor
from fusco_actor import RequestTimeout
from fusco_actor._transport import Connection
from tests.helpers import outcome
from tests.socketserver import LONG_TIMEOUT, SocketServerThread

BODY = b"x" * (32 * 1_048_576)  # far more than loopback socket buffers hold
TIMEOUT = 1.0  # seconds: the request's deadline
SLACK = 1.0  # seconds the failure may come after it on a loaded machine


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a trustme certificate for 127.0.0.1, and a client one trusting it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@contextlib.contextmanager
def peer(read_slowly: bool, server_context: ssl.SSLContext | None) -> Iterator[SocketServerThread]:
    """A server that reads nothing, or 16 KiB every 50 ms, until the client goes away."""

    def handler(listener: Any, server: SocketServerThread) -> None:
        sock = server.accept().sock
        sock.setblocking(True)
        sock.settimeout(LONG_TIMEOUT)
        if server_context is not None:
            sock = server_context.wrap_socket(sock, server_side=True)
        with sock:
            while not server.quit.is_set():
                if read_slowly:
                    with contextlib.suppress(OSError):
                        if not sock.recv(16_384):
                            return
                server.quit.wait(0.05)  # the peer's pace, not a synchronisation

    with SocketServerThread(handler) as server:
        yield server


@pytest.mark.parametrize("read_slowly", [False, True], ids=["never-reads", "reads-slowly"])
@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
def test_a_send_ends_at_the_deadline_however_slowly_the_peer_reads(
    read_slowly: bool, use_tls: bool, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_context, client_context = tls if use_tls else (None, None)
    with peer(read_slowly, server_context) as server:
        url = server.url.replace("http://", "https://") if use_tls else server.url
        options: fusco_actor.ClientOptions = {"ssl_context": client_context} if use_tls else {}
        with fusco_actor.start(url, **options) as client:
            started = time.monotonic()
            result = outcome(client.request("/upload", "POST", body=BODY, timeout=TIMEOUT), 10.0)
            took = time.monotonic() - started
            assert isinstance(result, RequestTimeout), result
            assert took < TIMEOUT + SLACK, f"the send outlived its deadline: {took:.1f} s"


class PartialSocket:
    """A stand-in socket whose every send takes at most 3000 bytes (as a timed-out send may)."""

    def __init__(self) -> None:
        self.out = bytearray()

    def settimeout(self, timeout: float | None) -> None:
        pass

    def gettimeout(self) -> float | None:
        return None

    def setsockopt(self, *args: Any) -> None:
        pass

    def send(self, data: Any) -> int:
        view = memoryview(data).cast("B")[:3000]
        self.out += view
        return view.nbytes


def test_partial_sends_of_a_view_of_wide_items_count_bytes() -> None:
    data = memoryview(array.array("I", range(1000)))  # 4000 bytes, 1000 items
    sock = PartialSocket()
    Connection(sock, ("127.0.0.1", 0), False).send_all(data, time.monotonic() + LONG_TIMEOUT)  # type: ignore[arg-type]
    assert bytes(sock.out) == data.tobytes()
