"""A keep-alive server that sometimes drops a request unanswered: the stale keep-alive case.

The server answers HTTP/1.1 requests on kept-alive connections and, at
random (seeded, about 1 in 10), closes a connection that already served a
request right after reading the next one, without answering it — what a
server does when its keep-alive timer fires as a request arrives. It records
each request's ``X-Request-Id`` as *executed* (answered) or *dropped*.

README "Send-retry": such a request is sent again on a fresh connection (a POST too,
since it went out on a reused connection that closed with no byte of
response); so every GET succeeds and no request is ever executed twice.
"""

from __future__ import annotations

import collections
import contextlib
import random
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import fusco_actor
from fusco_actor import ConnectionClosed, FuscoError, Pool, Response
from tests.conftest import LONG_TIMEOUT
from tests.socketserver import SocketServerThread, read_request

THREADS = 16
PER_THREAD = 500
DROP_RATE = 0.1
MAX_CLIENTS = 8
BUDGET = 20.0  # seconds each load test may take
POLL = 0.1  # seconds between looks at the stop event while blocked


class FlakyServer:
    """A threaded loopback HTTP/1.1 server that drops ~``drop_rate`` of kept-alive requests.

    Attributes:
        executed: X-Request-Id -> how many times it was answered.
        dropped: X-Request-Ids read and then dropped unanswered, in order.
        connections: how many connections were accepted.
    """

    def __init__(self, seed: int, drop_rate: float = DROP_RATE) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.drop_rate = drop_rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self.executed: collections.Counter[str] = collections.Counter()
        self.dropped: list[str] = []
        self.connections = 0
        self.errors: list[BaseException] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="flaky-accept", daemon=True
        )

    def __enter__(self) -> FlakyServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._acceptor.join(LONG_TIMEOUT)
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(LONG_TIMEOUT)
        self.listener.close()
        assert not self._acceptor.is_alive(), "the accept thread did not stop"
        assert not any(t.is_alive() for t in threads), "a connection thread did not stop"
        if self.errors:
            raise self.errors[0]

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.listener], [], [], POLL)
            if not readable:
                continue
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
                self._threads.append(thread)
            thread.start()

    def _recv(self, sock: socket.socket) -> bytes:
        while not self._stop.is_set():
            try:
                return sock.recv(65_536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""

    def _serve(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        sock.settimeout(POLL)
        buf = bytearray()
        served = 0
        try:
            while True:
                while (end := buf.find(b"\r\n\r\n")) < 0:
                    data = self._recv(sock)
                    if not data:
                        return
                    buf += data
                head = bytes(buf[:end]).decode("latin-1").split("\r\n")
                headers = {}
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buf) < end + 4 + length:
                    data = self._recv(sock)
                    if not data:
                        return
                    buf += data
                del buf[: end + 4 + length]
                request_id = headers.get("x-request-id", "")
                with self._lock:
                    drop = served > 0 and self._rng.random() < self.drop_rate
                    if drop:
                        self.dropped.append(request_id)
                    else:
                        self.executed[request_id] += 1
                if drop:
                    return  # close the kept-alive connection without a byte of response
                body = request_id.encode()
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Request-Id: %s\r\n\r\n%s"
                    % (len(body), body, body)
                )
                served += 1
        except OSError:
            pass  # the test is ending: the socket was shut down
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def flaky_server() -> Iterator[FlakyServer]:
    with FlakyServer(seed=20240611) as server:
        yield server


@pytest.fixture
def pool_for(flaky_server: FlakyServer) -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def start(**options: Any) -> Pool:
        pool = Pool.start(flaky_server.url, max_clients=MAX_CLIENTS, **options)
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.stop(LONG_TIMEOUT)


def hammer(pool: Pool, method: str, body: bytes, per_thread: int = PER_THREAD) -> dict[str, Any]:
    """Send THREADS x per_thread requests, one at a time per thread; return id -> outcome."""
    outcomes: dict[str, Any] = {}
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        start.wait(LONG_TIMEOUT)
        mine: dict[str, Any] = {}
        for i in range(per_thread):
            request_id = f"{method}-{index}-{i}"
            future = pool.request(
                "/", method, headers=[("X-Request-Id", request_id)], body=body, timeout=LONG_TIMEOUT
            )
            try:
                mine[request_id] = future.get(timeout=LONG_TIMEOUT + 1.0)
            except FuscoError as exc:
                mine[request_id] = exc
        with lock:
            outcomes.update(mine)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    limit = time.monotonic() + BUDGET * 2
    for thread in threads:
        thread.join(max(0.0, limit - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    return outcomes


def test_16_threads_x_500_gets_through_a_pool_all_succeed_despite_dropped_keep_alives(
    flaky_server: FlakyServer, pool_for: Callable[..., Pool]
) -> None:
    pool = pool_for()
    started = time.monotonic()
    outcomes = hammer(pool, "GET", b"")
    elapsed = time.monotonic() - started

    assert len(outcomes) == THREADS * PER_THREAD
    failures = {k: v for k, v in outcomes.items() if not isinstance(v, Response)}
    assert failures == {}
    # Each caller got the answer to its own request.
    assert all(r.status == 200 and r.body == k.encode() for k, r in outcomes.items())
    assert flaky_server.dropped, "the server never dropped a request: the fault was not exercised"
    assert set(flaky_server.executed) == set(outcomes)
    assert set(flaky_server.dropped) <= set(outcomes)
    assert pool._size <= MAX_CLIENTS
    assert elapsed < BUDGET


def test_16_threads_x_500_posts_are_each_executed_at_most_once(
    flaky_server: FlakyServer, pool_for: Callable[..., Pool]
) -> None:
    pool = pool_for()
    started = time.monotonic()
    outcomes = hammer(pool, "POST", b"payload")
    elapsed = time.monotonic() - started

    ok = [k for k, v in outcomes.items() if isinstance(v, Response)]
    failed = [k for k, v in outcomes.items() if isinstance(v, FuscoError)]
    assert len(ok) + len(failed) == THREADS * PER_THREAD == len(outcomes)
    assert all(outcomes[k].status == 200 and outcomes[k].body == k.encode() for k in ok)
    twice = {k: n for k, n in flaky_server.executed.items() if n > 1}
    assert twice == {}, f"POSTs executed more than once: {twice}"
    assert all(flaky_server.executed[k] == 1 for k in ok)
    assert set(flaky_server.executed) <= set(outcomes)
    assert flaky_server.dropped, "the server never dropped a request: the fault was not exercised"
    assert elapsed < BUDGET
    print(
        f"POST: {len(ok)} ok, {len(failed)} failed "
        f"({collections.Counter(type(outcomes[k]).__name__ for k in failed)}), "
        f"{len(flaky_server.dropped)} dropped by the server, {elapsed:.1f} s"
    )


def test_with_send_retry_0_exactly_the_dropped_posts_fail_connection_closed(
    flaky_server: FlakyServer, pool_for: Callable[..., Pool]
) -> None:
    pool = pool_for(send_retry=0)
    outcomes = hammer(pool, "POST", b"payload", per_thread=100)

    ok = {k for k, v in outcomes.items() if isinstance(v, Response)}
    failed = {k for k, v in outcomes.items() if not isinstance(v, Response)}
    assert len(outcomes) == THREADS * 100
    assert flaky_server.dropped
    assert failed == set(flaky_server.dropped)
    assert all(isinstance(outcomes[k], ConnectionClosed) for k in failed)
    assert ok == set(flaky_server.executed)
    assert max(flaky_server.executed.values()) == 1


# -- a POST on a brand-new connection is never sent twice ----------------------------------


def test_a_post_on_the_fresh_connection_after_a_dropped_idle_one_is_not_sent_again() -> None:
    idle_closed = threading.Event()

    def handler(listener: Any, server: SocketServerThread) -> None:
        first = server.accept()
        read_request(first)
        first.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        first.close()  # the keep-alive timer fires while the client is idle
        idle_closed.set()
        # If the client sees the FIN before it writes, it reconnects and the POST goes out
        # once, on a fresh connection. If not, the POST fails on the stale one (never read
        # here) and goes out once more on a fresh connection. Either way the server below
        # reads exactly one POST, then closes: ConnectionClosed.
        second = server.accept()
        read_request(second)
        second.close()  # the server may have acted on it: no byte of response
        third = server.accept()  # only a wrong re-send comes here
        read_request(third)
        third.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with SocketServerThread(handler) as server:
        client = fusco_actor.start(server.url, send_retry=1)
        assert client.request("/", timeout=LONG_TIMEOUT).get(timeout=LONG_TIMEOUT).status == 200
        assert idle_closed.wait(LONG_TIMEOUT)
        future = client.request("/pay", "POST", body=b"once", timeout=LONG_TIMEOUT)
        try:
            result: Any = future.get(timeout=LONG_TIMEOUT)
        except FuscoError as exc:
            result = exc
        client.disconnect(LONG_TIMEOUT)
    posts = [r for conn in server.connections for r in conn.requests if r.startswith(b"POST")]
    assert len(posts) == 1, f"the POST was sent {len(posts)} times"
    assert isinstance(result, ConnectionClosed)
