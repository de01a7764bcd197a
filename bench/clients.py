"""The clients under test and the table of them; the third-party peers are in :mod:`peers`.

fusco_actor is driven like the synchronous peers, through its blocking API
(``fusco_actor.request``, fusco's request/6): a thread and a client per
connection; while a client is idle the call runs in the calling thread
(``VARIANTS`` holds the other ways to drive it — pools with done-callbacks or
threads — measured with ``--clients``). ``fusco_actor p16`` keeps 16 requests
outstanding per client with done-callbacks. http.client: one ``HTTPConnection`` per thread.
The raw-socket baseline is a blocking socket per thread that speaks just
enough HTTP/1.1 to check each response, one request in flight or 32 per write.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Final

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

__all__ = ["BASELINES", "CLIENTS", "FUSCO", "VARIANTS"]

RECV_SIZE: Final = 256 * 1024
PIPELINE: Final = 16  # requests in flight per connection for "fusco_actor p16"
RAW_BATCH: Final = 32  # requests per write for "raw socket x32"


# -- fusco_actor ------------------------------------------------------------------------


def _chains(submits: list[Callable[[], Any]], scenario: Scenario, meter: Meter) -> Finish:
    """Keep one request outstanding per ``submits`` entry; its done-callback sends the next.

    The callbacks run in the client actors' threads (no thread wakes up per response).
    """
    meter.slots(len(submits))
    lock = threading.Lock()
    live = [len(submits)]
    ended = threading.Event()

    def on_done(slot: int, future: Any) -> None:
        try:
            response = future.get()
            check(response.status, len(response.body), scenario)
            meter.counts[slot] += 1
            if not meter.stop:
                submits[slot]().add_done_callback(callbacks[slot])
                return
        except BaseException as exc:  # never let an error escape into the actor
            meter.fail(exc)
        with lock:
            live[0] -= 1
            if live[0] == 0:
                ended.set()

    callbacks = [partial(on_done, slot) for slot in range(len(submits))]
    for slot, submit in enumerate(submits):
        submit().add_done_callback(callbacks[slot])

    def finish() -> None:
        meter.stop = True
        if not ended.wait(TIMEOUT):
            meter.fail(BenchError("requests still outstanding after the stop"))

    return finish


def _request_args(scenario: Scenario) -> tuple[Any, ...]:
    return (scenario.path, scenario.method, (), scenario.body, TIMEOUT)


def fusco_clients(
    url: str, scenario: Scenario, conns: int, meter: Meter, pipeline: int = 1
) -> Finish:
    """fusco_actor: ``conns`` clients with ``pipeline`` callback chains each."""
    import fusco_actor  # noqa: PLC0415 - every client library is imported where used

    clients = [fusco_actor.start(url, pipeline=pipeline) for _ in range(conns)]
    args = _request_args(scenario)
    submits = [partial(c.request, *args) for c in clients for _ in range(pipeline)]
    return then_close(_chains(submits, scenario, meter), *(c.disconnect for c in clients))


def fusco_pool(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """fusco_actor: one ``Pool`` of ``conns`` clients kept busy by ``conns`` callback chains."""
    import fusco_actor  # noqa: PLC0415

    pool = fusco_actor.Pool.start(url, max_clients=conns)
    submit = partial(pool.request, *_request_args(scenario))
    return then_close(_chains([submit] * conns, scenario, meter), pool.stop)


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


def fusco_clients_threads(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """fusco_actor: ``conns`` threads, each blocking on its own client's ``request().get()``."""
    import fusco_actor  # noqa: PLC0415

    clients: list[Any] = []
    args = _request_args(scenario)

    def make() -> Callable[[], int]:
        client = fusco_actor.start(url)
        clients.append(client)

        def one() -> int:
            response = client.request(*args).get()
            check(response.status, len(response.body), scenario)
            return 1

        return one

    finish = run_threads(make, conns, meter)
    return then_close(finish, lambda: [c.disconnect() for c in clients])


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


def fusco_p1(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """fusco_actor, pipeline=1: the blocking API, one thread and one client per connection."""
    return fusco_clients_blocking(url, scenario, conns, meter)


def fusco_p16(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """fusco_actor, pipeline=16: ``conns`` clients with 16 requests in flight on each."""
    return fusco_clients(url, scenario, conns, meter, PIPELINE)


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

#: name -> (function, whether it runs the scenario); fusco_actor first, baselines last.
CLIENTS: Final[dict[str, tuple[Client, Callable[[Scenario], bool]]]] = {
    "fusco_actor": (fusco_p1, lambda s: True),
    "fusco_actor p16": (fusco_p16, lambda s: s.method == "GET"),
    "http.client": (http_client, lambda s: True),
    "urllib3": (urllib3_pool, lambda s: True),
    "httpx": (httpx_client, lambda s: True),
    "aiohttp": (aiohttp_session, lambda s: True),
    "pycurl": (pycurl_client, lambda s: True),
    "raw socket": (raw_socket, lambda s: True),
    "raw socket x32": (raw_socket_x32, lambda s: s.path == "/small"),
}
#: Other ways to drive fusco_actor, for ``--clients`` (the table keeps the fastest).
VARIANTS: Final[dict[str, tuple[Client, Callable[[Scenario], bool]]]] = {
    "fusco_actor pool+callbacks": (fusco_pool, lambda s: True),
    "fusco_actor pool+threads": (fusco_pool_threads, lambda s: True),
    "fusco_actor clients+callbacks": (fusco_clients, lambda s: True),
    "fusco_actor clients+threads": (fusco_clients_threads, lambda s: True),
}
BASELINES: Final = frozenset({"raw socket", "raw socket x32"})
FUSCO: Final = ("fusco_actor", "fusco_actor p16")
