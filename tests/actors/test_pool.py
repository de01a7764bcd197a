"""Pool (fusco_cp): FIFO waiters, PoolTimeout, the client count, stop, and no leaks.

Waiters are lined up deterministically: each blocked ``get_client`` caller is
started only once the previous one is seen in ``pool._waiters``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka
import pytest

from fusco_actor import (
    BadArgument,
    BadOption,
    ClientStopped,
    Pool,
    PoolTimeout,
    RequestTimeout,
    Response,
)
from fusco_actor._handle import Client
from fusco_actor._scheduler import get_scheduler
from fusco_actor._server import EmbeddedServer
from fusco_actor.testing import inject_crash
from tests.conftest import LONG_TIMEOUT, SHORT_TIMEOUT
from tests.helpers import join_all, outcome, start_thread, uses_loop_engine, wait_for

# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize("max_clients", [0, -1, True, 1.5, "2", None])
def test_max_clients_below_1_or_not_an_int_is_a_bad_option(
    embedded_server: EmbeddedServer, max_clients: Any
) -> None:
    actors_before = len(pykka.ActorRegistry.get_all())
    with pytest.raises(BadOption, match="max_clients"):
        Pool.start(embedded_server.url, max_clients=max_clients)
    assert len(pykka.ActorRegistry.get_all()) == actors_before  # no supervisor was started


def test_a_bad_client_option_is_a_bad_option_before_any_actor_starts(
    embedded_server: EmbeddedServer,
) -> None:
    actors_before = len(pykka.ActorRegistry.get_all())
    with pytest.raises(BadOption, match="connect_timeout"):
        Pool.start(embedded_server.url, max_clients=2, connect_timeout="soon")  # type: ignore[arg-type]
    assert len(pykka.ActorRegistry.get_all()) == actors_before


# -- FIFO waiters --------------------------------------------------------------------------


def test_blocked_callers_get_a_freed_client_in_fifo_order(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    held = pool.get_client(timeout=SHORT_TIMEOUT)
    order: list[int] = []
    got: list[Client] = []
    lock = threading.Lock()

    def wait_turn(index: int) -> None:
        client = pool.get_client(timeout=LONG_TIMEOUT)
        with lock:
            order.append(index)
            got.append(client)
        pool.free_client(client)

    threads = []
    for index in range(5):
        threads.append(start_thread(wait_turn, index))
        assert wait_for(functools.partial(lambda n: len(pool._waiters) == n, index + 1))
    assert order == []

    pool.free_client(held)
    join_all(threads)

    assert order == [0, 1, 2, 3, 4]
    assert all(client is held for client in got)
    assert (pool._size, pool._free_count) == (1, 1)


def test_queued_pool_requests_are_served_in_fifo_order(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    held = pool.get_client(timeout=SHORT_TIMEOUT)
    served: list[int] = []
    futures = []
    for index in range(10):
        future = pool.request("/echo", "POST", body=b"%d" % index, timeout=LONG_TIMEOUT)
        future.add_done_callback(functools.partial(lambda i, _: served.append(i), index))
        futures.append(future)
    assert len(pool._waiters) == 10

    pool.free_client(held)

    assert [outcome(f).body for f in futures] == [b"%d" % i for i in range(10)]
    assert served == list(range(10))


# -- PoolTimeout ---------------------------------------------------------------------------


def test_get_client_raises_pool_timeout_when_no_client_becomes_free_in_time(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    held = pool.get_client(timeout=SHORT_TIMEOUT)

    started = time.monotonic()
    with pytest.raises(PoolTimeout):
        pool.get_client(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < SHORT_TIMEOUT
    with pytest.raises(PoolTimeout), pool.client(timeout=0.05):
        pass
    assert len(pool._waiters) == 0

    pool.free_client(held)
    assert pool.get_client(timeout=SHORT_TIMEOUT) is held


def test_a_pool_request_that_waits_past_its_timeout_fails_and_does_not_take_a_client(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    held = pool.get_client(timeout=SHORT_TIMEOUT)

    result = outcome(pool.request("/", timeout=0.1))
    assert isinstance(result, (RequestTimeout, PoolTimeout)), result

    pool.free_client(held)
    assert pool._free_count == 1  # the abandoned request was skipped
    assert outcome(pool.request("/", timeout=LONG_TIMEOUT)).status == 200


# -- the client count ----------------------------------------------------------------------


def crash_until_given_up(client: Client) -> None:
    """Crash ``client`` past the pool supervisor's default intensity (5 restarts in 10 s)."""
    for _ in range(5):
        inject_crash(client)
        assert outcome(client.request("/", timeout=LONG_TIMEOUT)).status == 200
    inject_crash(client)
    assert isinstance(outcome(client.request("/", timeout=LONG_TIMEOUT)), ClientStopped)


def test_a_client_that_stops_for_good_is_dropped_and_replaced_on_demand(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=2)
    doomed = pool.get_client(timeout=SHORT_TIMEOUT)
    other = pool.get_client(timeout=SHORT_TIMEOUT)
    assert pool._size == 2

    crash_until_given_up(doomed)

    assert pool._size == 1
    assert pool._supervisor.children() == [other]
    pool.free_client(doomed)  # a stopped client is forgotten, not put back
    assert (pool._size, pool._free_count) == (1, 0)
    fresh = pool.get_client(timeout=SHORT_TIMEOUT)
    assert fresh is not doomed
    assert fresh is not other
    assert pool._size == 2
    assert outcome(fresh.request("/", timeout=LONG_TIMEOUT)).status == 200
    assert sorted(map(id, pool._supervisor.children())) == sorted(map(id, [other, fresh]))


def test_a_waiter_gets_a_new_client_when_the_busy_one_stops_for_good(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    doomed = pool.get_client(timeout=SHORT_TIMEOUT)
    got: list[Client] = []
    waiter = start_thread(lambda: got.append(pool.get_client(timeout=LONG_TIMEOUT)))
    assert wait_for(lambda: len(pool._waiters) == 1)

    crash_until_given_up(doomed)
    join_all([waiter])

    assert len(got) == 1
    assert got[0] is not doomed
    assert pool._size == 1
    assert outcome(got[0].request("/", timeout=LONG_TIMEOUT)).status == 200


def test_a_crashed_pool_client_is_restarted_behind_the_same_handle(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    with pool.client(timeout=SHORT_TIMEOUT) as client:
        inject_crash(client)
        assert outcome(client.request("/", timeout=LONG_TIMEOUT)).status == 200
    assert pool._supervisor.restarts(client) == 1
    assert (pool._size, pool._free_count) == (1, 1)
    assert pool.get_client(timeout=SHORT_TIMEOUT) is client


def test_freeing_a_client_while_the_supervisor_gives_it_up_is_quietly_ignored(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The supervisor drops a child (the pool forgets it) just before it marks it stopped;
    # a caller leaving ``with pool.client()`` or a request's done-callback may free it then.
    freed_in_window: list[object] = []
    real_gone = Pool._client_gone

    def gone_then_freed(self: Pool, client: Client) -> None:
        real_gone(self, client)
        try:
            self.free_client(client)
        except BadArgument as exc:
            freed_in_window.append(exc)
        else:
            freed_in_window.append("ignored")

    monkeypatch.setattr(Pool, "_client_gone", gone_then_freed)
    pool = pools(embedded_server.url, max_clients=1)
    doomed = pool.get_client(timeout=SHORT_TIMEOUT)

    crash_until_given_up(doomed)

    assert freed_in_window == ["ignored"]
    assert (pool._size, pool._free_count) == (0, 0)


def test_freeing_a_client_of_another_pool_is_a_bad_argument(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    mine = pools(embedded_server.url, max_clients=1)
    theirs = pools(embedded_server.url, max_clients=1)
    stranger = theirs.get_client(timeout=SHORT_TIMEOUT)
    with pytest.raises(BadArgument):
        mine.free_client(stranger)
    assert mine._free_count == 0


# -- lending -------------------------------------------------------------------------------


def test_the_client_context_manager_frees_the_client_on_exit_and_on_error(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=1)
    with pool.client(timeout=SHORT_TIMEOUT) as client:
        assert pool._free_count == 0
        assert outcome(client.request("/", timeout=LONG_TIMEOUT)).status == 200
    assert pool._free_count == 1

    with pytest.raises(ZeroDivisionError), pool.client(timeout=SHORT_TIMEOUT) as again:
        assert again is client
        _ = 1 / 0
    assert pool._free_count == 1
    assert pool.get_client(timeout=SHORT_TIMEOUT) is client


# -- stop ----------------------------------------------------------------------------------


def test_stop_with_busy_clients_resolves_every_request(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, max_clients=2)
    futures = [pool.request("/delay/0.1", timeout=LONG_TIMEOUT) for _ in range(20)]
    lent = pool.get_client  # a blocked get_client caller is released too
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            lent(timeout=LONG_TIMEOUT)
        except ClientStopped as exc:
            errors.append(exc)

    waiter = start_thread(blocked)
    assert wait_for(lambda: any(w.event is not None for w in pool._waiters))

    pool.stop(LONG_TIMEOUT)
    join_all([waiter])

    results = [outcome(f) for f in futures]
    assert all(isinstance(r, (Response, ClientStopped)) for r in results), results
    assert sum(isinstance(r, ClientStopped) for r in results) >= 10
    assert len(errors) == 1
    assert pool._size == 0
    assert isinstance(outcome(pool.request("/"), SHORT_TIMEOUT), ClientStopped)
    with pytest.raises(ClientStopped):
        pool.get_client(timeout=SHORT_TIMEOUT)


# -- one caller per client -----------------------------------------------------------------


class CountingServer:
    """A threaded keep-alive server that counts requests in progress, per connection and overall.

    A request is in progress from when its head is read until its response
    is written; any further request already buffered on the same connection
    counts as in progress too (it was written before the answer).
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.max_per_connection = 0
        self.max_overall = 0
        self.connections = 0
        self.served = 0
        self._in_progress = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._acceptor = start_thread(self._accept_loop)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.listener], [], [], 0.05)[0]:
                continue
            sock, _ = self.listener.accept()
            with self._lock:
                self.connections += 1
                self._socks.append(sock)
                self._threads.append(start_thread(self._serve, sock))

    def _serve(self, sock: socket.socket) -> None:
        buf = bytearray()
        with contextlib.suppress(OSError), sock:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = sock.recv(65_536)
                    if not data:
                        return
                    buf += data
                pending = buf.count(b"\r\n\r\n")  # GETs without bodies: one head each
                with self._lock:
                    self._in_progress += 1
                    self.max_overall = max(self.max_overall, self._in_progress)
                    self.max_per_connection = max(self.max_per_connection, pending)
                del buf[: buf.index(b"\r\n\r\n") + 4]
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                with self._lock:
                    self._in_progress -= 1
                    self.served += 1

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(LONG_TIMEOUT)
        with self._lock:
            socks, threads = list(self._socks), list(self._threads)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        join_all([self._acceptor, *threads])
        self.listener.close()


def test_pool_request_never_hands_one_client_to_two_callers_at_once(
    pools: Callable[..., Pool], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = CountingServer()
    submitted: dict[int, list[Any]] = {}
    doubled: list[Client] = []
    guard = threading.Lock()
    real_submit = Client._submit

    def checked_submit(self: Client, command: Any) -> None:
        with guard:
            futures = submitted.setdefault(id(self), [])
            if any(not f.done for f in futures):
                doubled.append(self)
            futures.append(command.future)
        real_submit(self, command)

    monkeypatch.setattr(Client, "_submit", checked_submit)
    try:
        pool = pools(server.url, max_clients=4)
        futures: list[Any] = []
        lock = threading.Lock()

        def burst() -> None:  # all at once: callers queue as waiters
            mine = [pool.request("/", timeout=LONG_TIMEOUT) for _ in range(100)]
            with lock:
                futures.extend(mine)

        def one_by_one() -> None:  # one at a time: callers often find a free client
            mine = []
            for _ in range(100):
                mine.append(pool.request("/", timeout=LONG_TIMEOUT))
                outcome(mine[-1])
            with lock:
                futures.extend(mine)

        join_all([start_thread(burst if i % 2 else one_by_one) for i in range(8)])
        results = [outcome(f) for f in futures]
    finally:
        server.close()

    assert [r.status for r in results] == [200] * 800
    assert doubled == []
    assert server.served == 800
    assert server.max_per_connection == 1
    assert server.max_overall <= 4
    assert server.connections <= 4
    assert pool._size <= 4


# -- leaks ---------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_stopped_pool_leaves_no_thread_or_socket_behind(embedded_server: EmbeddedServer) -> None:
    get_scheduler()  # the process's scheduler thread outlives pools: count from after it
    # ...and so does what its loop makes once, on first use (uvloop opens /dev/null).
    warm = Pool.start(embedded_server.url, max_clients=1)
    assert outcome(warm.request("/", timeout=LONG_TIMEOUT)).status == 200
    warm.stop(LONG_TIMEOUT)
    threads_before, fds_before = threading.active_count(), open_fds()

    pool = Pool.start(embedded_server.url, max_clients=8)
    futures = [pool.request("/", timeout=LONG_TIMEOUT) for _ in range(200)]
    assert [outcome(f).status for f in futures] == [200] * 200
    assert pool._size == 8
    # A threaded client has a thread of its own (the supervisor has none); the loop
    # engine's clients all run on the scheduler thread, counted before.
    own_threads = 0 if all(uses_loop_engine(c) for c in pool._supervisor.children()) else 8
    assert threading.active_count() >= threads_before + own_threads
    assert open_fds() >= fds_before + 8
    pool.stop(LONG_TIMEOUT)

    assert wait_for(lambda: threading.active_count() <= threads_before), (
        f"threads: {threading.active_count()} after, {threads_before} before: "
        f"{[t.name for t in threading.enumerate()]}"
    )
    assert wait_for(lambda: open_fds() <= fds_before), (
        f"file descriptors: {open_fds()} after, {fds_before} before"
    )


def test_pool_request_with_pipelining_shares_a_client_up_to_the_pipeline_depth(
    pools: Callable[..., Pool],
) -> None:
    server = CountingServer()
    try:
        pool = pools(server.url, max_clients=2, pipeline=4)
        futures = [pool.request("/", timeout=LONG_TIMEOUT) for _ in range(400)]
        results = [outcome(f) for f in futures]
    finally:
        server.close()
    assert [r.status for r in results] == [200] * 400
    assert server.served == 400
    assert server.connections <= 2
    assert 1 < server.max_per_connection <= 4  # several callers on one client, never more
