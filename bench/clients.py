"""The clients under test and the table of them, with the fusco_actor engine of each cell.

fusco_actor is driven in the ways issue 10's table names (:mod:`fusco_cells`):
``fusco bench`` (a pool kept busy by done-callbacks, as ``fusco bench -c N``),
the same with ``--pipeline 16``, asyncio tasks awaiting ``pool.arequest``,
threads blocking over one pool, one client with 16 futures outstanding, and
threads each calling the blocking ``fusco_actor.request`` on a client of its
own. Every such cell runs on the loop engine; rows marked ``[thread]`` run on
today's threaded engine. The third-party peers are in :mod:`peers` and
:mod:`rust_peers`; http.client is here: one ``HTTPConnection`` per thread.
The raw-socket baseline is a blocking socket per thread that speaks just
enough HTTP/1.1 to check each response, one request in flight or 32 per write.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from typing import Any, Final

from fusco_cells import (
    bench_lanes,
    bench_p16,
    on_engine,
    one_client_futures,
    pool_tasks,
    pool_tasks_scheduler,
)
from harness import (
    TIMEOUT,
    BenchError,
    Finish,
    Meter,
    Scenario,
    check,
    host_port,
    run_threads,
    then_close,
)
from peers import aiohttp_session, httpx_client, pycurl_client, urllib3_pool
from rust_peers import pyreqwest_async, pyreqwest_sync, wreq_async, wreq_sync

__all__ = ["BASELINES", "CLIENTS", "Client", "Runs"]

RECV_SIZE: Final = 256 * 1024
RAW_BATCH: Final = 32  # requests per write for "raw socket x32"


# -- fusco_actor (the rest is in fusco_cells) ------------------------------------------


def _request_args(scenario: Scenario) -> tuple[Any, ...]:
    return (scenario.path, scenario.method, (), scenario.body, TIMEOUT)


def fusco_pool_threads(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """fusco_actor: ``conns`` threads blocking on ``pool.request(...).get()``."""
    import fusco_actor  # noqa: PLC0415

    pool = fusco_actor.Pool.start(url, max_clients=conns)
    args = _request_args(scenario)

    def make() -> Callable[[], int]:
        def one() -> int:
            response = pool.request(*args).get()
            check(response.status, len(response.body), scenario)
            return 1

        return one

    return then_close(run_threads(make, conns, meter), pool.stop)


def fusco_clients_blocking(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """fusco_actor: ``conns`` threads, each calling ``fusco_actor.request`` on its own client.

    The blocking call (fusco's request/6) runs the request in the calling thread
    while the client is idle: no hand-off to the actor thread.
    """
    import fusco_actor  # noqa: PLC0415

    clients: list[Any] = []
    path, method, headers, body, timeout = _request_args(scenario)

    def make() -> Callable[[], int]:
        client = fusco_actor.start(url)
        clients.append(client)

        def one() -> int:
            response = fusco_actor.request(client, path, method, headers, body, timeout)
            check(response.status, len(response.body), scenario)
            return 1

        return one

    finish = run_threads(make, conns, meter)
    return then_close(finish, lambda: [c.disconnect() for c in clients])


# -- the standard library and the raw-socket baseline -----------------------------------


def http_client(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """http.client: one ``HTTPConnection`` per thread, reused."""
    host, port = host_port(url)
    method, path, body = scenario.method, scenario.path, scenario.body or None

    def make() -> Callable[[], int]:
        conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)

        def one() -> int:
            conn.request(method, path, body)
            response = conn.getresponse()
            check(response.status, len(response.read()), scenario)
            return 1

        return one

    return run_threads(make, conns, meter)


class RawConnection:
    """A blocking socket speaking just enough HTTP/1.1 to count and check responses."""

    def __init__(self, host: str, port: int) -> None:
        """Connect (TCP_NODELAY on)."""
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(RECV_SIZE)
        if not data:
            raise BenchError("the server closed the connection")
        self.buf += data

    def _take(self, n: int) -> None:
        while len(self.buf) < n:
            self._fill()
        del self.buf[:n]

    def _line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def read_response(self) -> tuple[int, int]:
        """Read one response; return its status and body length."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self.buf[:end]).lower()
        del self.buf[: end + 4]
        status = int(head[9:12])
        start = head.find(b"\r\ncontent-length:")
        if start >= 0:
            end = head.find(b"\r\n", start + 2)
            length = int(head[start + 17 : end if end >= 0 else None])
            self._take(length)
            return status, length
        if b"\r\ntransfer-encoding: chunked" not in head:
            raise BenchError("raw socket: response with neither length nor chunks")
        length = 0
        while size := int(self._line().split(b";")[0], 16):
            self._take(size + 2)
            length += size
        while self._line():  # trailers, up to the empty line
            pass
        return status, length


def _raw_request(host: str, port: int, scenario: Scenario) -> bytes:
    head = f"{scenario.method} {scenario.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if scenario.body:
        head += f"Content-Length: {len(scenario.body)}\r\n"
    return (head + "\r\n").encode() + scenario.body


def _raw(url: str, scenario: Scenario, conns: int, meter: Meter, batch: int) -> Finish:
    host, port = host_port(url)
    wire = _raw_request(host, port, scenario) * batch

    def make() -> Callable[[], int]:
        conn = RawConnection(host, port)

        def one() -> int:
            conn.sock.sendall(wire)
            for _ in range(batch):
                check(*conn.read_response(), scenario)
            return batch

        return one

    return run_threads(make, conns, meter)


def raw_socket(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """Baseline: a blocking socket per thread, one request in flight."""
    return _raw(url, scenario, conns, meter, 1)


def raw_socket_x32(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """Baseline: a blocking socket per thread, 32 pipelined requests per write."""
    return _raw(url, scenario, conns, meter, RAW_BATCH)


# -- the table --------------------------------------------------------------------------

Client = Callable[[str, Scenario, int, Meter], Finish]
Runs = Callable[[Scenario, int], bool]


def _always(scenario: Scenario, conns: int) -> bool:
    return True


def _get(scenario: Scenario, conns: int) -> bool:
    return scenario.method == "GET"


def _small(conns: int | None) -> Runs:
    return lambda s, n: s.path == "/small" and (conns is None or n == conns)


def _loop(client: Client) -> Client:
    return on_engine("loop", client)


def _thread(client: Client) -> Client:
    return on_engine("thread", client)


#: name -> (function, whether it runs a scenario at a connection count).
#: fusco_actor first (loop engine, then today's threaded engine), then the peers,
#: baselines last. Names starting "fusco" are fusco_actor; "[thread]" marks the threaded engine.
CLIENTS: Final[dict[str, tuple[Client, Runs]]] = {
    "fusco bench": (_loop(bench_lanes), _always),
    "fusco bench p16": (_loop(bench_p16), _get),
    "fusco arequest tasks": (_loop(pool_tasks), _small(16)),
    "fusco arequest tasks on scheduler": (_loop(pool_tasks_scheduler), _small(16)),
    "fusco pool threads": (_loop(fusco_pool_threads), _small(16)),
    "fusco p16 futures": (_loop(one_client_futures), _small(1)),
    "fusco blocking": (_loop(fusco_clients_blocking), _always),
    "fusco bench [thread]": (_thread(bench_lanes), _small(16)),
    "fusco pool threads [thread]": (_thread(fusco_pool_threads), _small(16)),
    "fusco blocking [thread]": (_thread(fusco_clients_blocking), _small(1)),
    "http.client": (http_client, _always),
    "urllib3": (urllib3_pool, _always),
    "httpx": (httpx_client, _always),
    "aiohttp": (aiohttp_session, _always),
    "pycurl": (pycurl_client, _always),
    "pyreqwest": (pyreqwest_sync, _always),
    "pyreqwest async": (pyreqwest_async, _always),
    "wreq": (wreq_sync, _always),
    "wreq async": (wreq_async, _always),
    "raw socket": (raw_socket, _always),
    "raw socket x32": (raw_socket_x32, _small(None)),
}
BASELINES: Final = frozenset({"raw socket", "raw socket x32"})
