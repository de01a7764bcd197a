"""Pool: supervised clients to one destination, handed out to one caller at a time (fusco_cp).

Theory of operation
-------------------
The pool keeps every live client in ``_clients``, the idle ones in ``_free``
(last freed first, so warm connections are reused) and a FIFO of waiters. A
waiter is a blocked ``get_client`` caller or a request sent with
:meth:`Pool.request`; a freed client goes to the oldest waiter still waiting.
Clients start lazily, up to ``max_clients``. They run under the pool's own
:class:`Supervisor`: a crashed one is restarted behind the same handle; one
that stops for good is dropped, so the count stays true, and a waiter may get
a new client in its place. With ``use_cookies`` every client shares the pool's
one :class:`~fusco_actor.CookieJar` (``Pool.cookies``): one session per pool.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from fusco_actor._exceptions import BadArgument, BadOption, ClientStopped, PoolTimeout
from fusco_actor._future import ReplyFuture
from fusco_actor._handle import AsyncRequests, Client
from fusco_actor._inbox import Call
from fusco_actor._options import (
    ClientOptions,
    DestinationLike,
    Unpack,
    parse_destination,
    parse_options,
)
from fusco_actor._supervisor import Supervisor
from fusco_actor.messages import check_timeout, make_request

if TYPE_CHECKING:
    from fusco_actor._cookies import CookieJar
    from fusco_actor._response import Response

__all__ = ["Pool"]

DEFAULT_MAX_CLIENTS = 16


class _Waiter:
    """A blocked ``get_client`` caller (``call`` is None) or a queued request."""

    __slots__ = ("call", "client", "event")

    def __init__(self, call: Call | None) -> None:
        self.call = call
        self.client: Client | None = None
        self.event = threading.Event() if call is None else None

    @property
    def abandoned(self) -> bool:
        return self.call is not None and self.call.future.done


class Pool(AsyncRequests):
    """At most ``max_clients`` supervised clients to one destination.

    Example:
        >>> pool = fusco_actor.Pool.start("http://127.0.0.1:8080", max_clients=16)  # doctest: +SKIP
        >>> pool.request("/x", "GET", timeout=5.0).get().status  # doctest: +SKIP
        200
    """

    def __init__(
        self,
        destination: DestinationLike,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        **options: Unpack[ClientOptions],
    ) -> None:
        """Check the arguments and start the pool's supervisor; use :meth:`start`.

        Raises:
            BadArgument: a bad destination.
            BadOption: ``max_clients < 1`` or a bad client option.
        """
        if isinstance(max_clients, bool) or not isinstance(max_clients, int) or max_clients < 1:
            raise BadOption(f"max_clients: {max_clients!r} is not an int >= 1")
        self._destination = parse_destination(destination)
        # One jar for every client (use_cookies): one session per pool.
        self._options = parse_options(options).with_own_jar(self._destination.host)
        self._pipeline = self._options.pipeline
        self._load: dict[int, int] = {}  # pool requests outstanding per client
        self._max_clients = max_clients
        self._lock = threading.RLock()
        self._clients: dict[int, Client] = {}
        self._free: list[Client] = []
        self._waiters: deque[_Waiter] = deque()
        self._outbox: list[tuple[Call, Client]] = []  # assigned under the lock, sent after it
        self._callbacks: dict[int, partial[None]] = {}  # per client: its release callback
        self._stopped = False
        self._supervisor = Supervisor.start(on_child_gone=self._client_gone)

    @classmethod
    def start(
        cls,
        destination: DestinationLike,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        **options: Unpack[ClientOptions],
    ) -> Pool:
        """Start a pool; clients are started lazily on demand.

        Args:
            destination: as for :func:`fusco_actor.start`.
            max_clients: the most clients (connections) at once, >= 1.
            **options: client options, the keys of :class:`~fusco_actor.ClientOptions`,
                as for :func:`fusco_actor.start`; with ``use_cookies=True`` the
                clients share one jar (:attr:`cookies`).

        Raises:
            BadArgument: a bad destination.
            BadOption: ``max_clients < 1`` or a bad client option.
        """
        return cls(destination, max_clients, **options)

    @property
    def cookies(self) -> CookieJar | None:
        """Return the jar every client of the pool shares with ``use_cookies=True``, else None.

        A cookie a response sets on one client goes out with the next request
        on any client of the pool; seed it (``set``), read it (iterate, ``get``)
        or empty it (``clear``) from any thread. Restarted clients keep it.
        """
        return self._options.cookie_jar

    @property
    def _size(self) -> int:
        """Return how many clients are alive (free and busy)."""
        return len(self._clients)

    @property
    def _free_count(self) -> int:
        """Return how many clients are idle."""
        return len(self._free)

    # -- handing out clients -------------------------------------------------------

    def _take(self, waiter: _Waiter) -> Client | None:
        """Return a client for ``waiter`` now, or queue it (pool lock held)."""
        if self._stopped:
            raise ClientStopped("the pool has stopped")
        if not self._waiters:
            if self._free:
                return self._free.pop()
            if len(self._clients) < self._max_clients:
                client = self._supervisor._start_child(self._destination, self._options)
                self._clients[id(client)] = client
                return client
            if waiter.call is not None and self._pipeline > 1:
                # With pipelining a busy client takes more requests, up to `pipeline`.
                shared = [(n, k) for k, n in self._load.items() if n < self._pipeline]
                if shared:
                    return self._clients[min(shared)[1]]
        self._waiters.append(waiter)
        return None

    def get_client(self, timeout: float | None = None) -> Client:
        """Return a free client, or a new one while below ``max_clients``; wait FIFO otherwise.

        Args:
            timeout: seconds to wait for a client; None = no limit.

        Raises:
            PoolTimeout: no client became free in time.
            ClientStopped: the pool has stopped.
        """
        seconds = check_timeout(timeout)
        waiter = _Waiter(None)
        with self._lock:
            client = self._take(waiter)
        if client is not None:
            return client
        assert waiter.event is not None
        waiter.event.wait(seconds)
        with self._lock:
            if waiter.client is None:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if self._stopped:
                    raise ClientStopped("the pool has stopped")
                raise PoolTimeout(f"no pool client became free within {seconds} seconds")
            return waiter.client

    def free_client(self, client: Client) -> None:
        """Give a client back; the oldest waiter gets it.

        Raises:
            BadArgument: ``client`` does not belong to this pool.
        """
        with self._lock:
            if id(client) not in self._clients:
                # Dropped: stopped for good, or being given up right now (the
                # supervisor drops a child before it marks it stopped).
                if client._is_stopped or client._supervisor is self._supervisor:
                    return
                raise BadArgument("the client does not belong to this pool")
            if client._is_stopped:
                self._clients.pop(id(client), None)
                self._replace_for_waiters()
            else:
                self._hand_over(client)
        self._send_outbox()

    def _hand_over(self, client: Client) -> None:
        """Give ``client`` to the oldest live waiter, or put it back (pool lock held)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.abandoned:
                continue
            self._assign(waiter, client)
            return
        self._free.append(client)

    def _assign(self, waiter: _Waiter, client: Client) -> None:
        waiter.client = client
        if waiter.event is not None:
            waiter.event.set()
            return
        assert waiter.call is not None
        self._dispatch(waiter.call, client)

    def _dispatch(self, call: Call, client: Client) -> None:
        """Count ``call`` on ``client`` now; it is sent by :meth:`_send_outbox` (pool lock held)."""
        key = id(client)
        self._load[key] = self._load.get(key, 0) + 1
        self._outbox.append((call, client))

    def _send_outbox(self) -> None:
        """Send the requests assigned under the lock, with the lock released.

        Sending may resolve a future at once (a stopped client), and its
        done-callbacks must never run under a lock of ours.
        """
        while True:
            with self._lock:
                if not self._outbox:
                    return
                batch, self._outbox = self._outbox, []
            for call, client in batch:
                call.future.add_done_callback(self._done_callback(client))
                client._submit(call)

    def _done_callback(self, client: Client) -> Callable[[object], None]:
        """Return the done-callback that releases ``client``, made once per client."""
        callback = self._callbacks.get(id(client))
        if callback is None or callback.args[0] is not client:
            callback = self._callbacks[id(client)] = partial(self._on_done, client)
        return callback

    def _on_done(self, client: Client, _: object) -> None:
        self._release(client)

    def _release(self, client: Client) -> None:
        """Count a pool request of ``client`` as done; free the client at zero (any thread)."""
        unusual = False
        with self._lock:
            key = id(client)
            load = self._load.get(key, 1) - 1
            if load > 0:
                self._load[key] = load
                while self._waiters and self._waiters[0].call is not None:
                    waiter = self._waiters.popleft()  # a pipelined slot freed
                    if not waiter.abandoned:
                        self._assign(waiter, client)
                        break
            else:
                self._load.pop(key, None)
                if key in self._clients and not client._is_stopped:
                    self._hand_over(client)  # free_client's usual case, under the same lock
                else:
                    unusual = True
        if unusual:
            self.free_client(client)  # stopped, or dropped from the pool
        elif self._outbox:  # a waiter got the client: what was assigned goes out now
            self._send_outbox()

    def _client_gone(self, client: Client) -> None:
        """Drop a client stopped for good; start another for a waiter (supervisor thread)."""
        with self._lock:
            if self._clients.pop(id(client), None) is None:
                return
            self._load.pop(id(client), None)
            self._callbacks.pop(id(client), None)
            with contextlib.suppress(ValueError):
                self._free.remove(client)
            self._replace_for_waiters()
        self._send_outbox()

    def _replace_for_waiters(self) -> None:
        while self._waiters and self._waiters[0].abandoned:
            self._waiters.popleft()
        if self._waiters and not self._stopped and len(self._clients) < self._max_clients:
            client = self._supervisor._start_child(self._destination, self._options)
            self._clients[id(client)] = client
            self._assign(self._waiters.popleft(), client)

    @contextlib.contextmanager
    def client(self, timeout: float | None = None) -> Iterator[Client]:
        """Lend a client for a ``with`` block; it is freed on exit.

        Raises:
            PoolTimeout: no client became free in time.
        """
        client = self.get_client(timeout)
        try:
            yield client
        finally:
            self.free_client(client)

    # -- requests ----------------------------------------------------------------

    def request(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
        send_retry: int | None = None,
    ) -> ReplyFuture[Response]:
        """Send a request on a free client; return its future at once.

        The request waits, FIFO, for a client when all are busy; that wait
        counts toward ``timeout`` (seconds, whole exchange; None = no limit).

        Raises:
            BadArgument: a bad argument (nothing is sent).
        """
        call = Call(make_request(path, method, headers, body, timeout, send_retry))
        client = None
        try:
            with self._lock:
                free = self._free
                if free and not self._waiters and not self._stopped:
                    # The usual case: an idle client, nobody queued before us.
                    client = free.pop()
                    key = id(client)
                    self._load[key] = self._load.get(key, 0) + 1
                else:
                    taken = self._take(_Waiter(call))
                    if taken is not None:
                        self._dispatch(call, taken)
        except ClientStopped as exc:
            call.future.try_fail(exc)
            return call.future
        if client is None:
            self._send_outbox()
        else:
            call.future.add_done_callback(self._done_callback(client))
            client._submit(call)
        return call.future

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop every client; waiting callers and queued requests fail with ``ClientStopped``."""
        with self._lock:
            self._stopped = True
            waiters, self._waiters = list(self._waiters), deque()
        for waiter in waiters:
            if waiter.event is not None:
                waiter.event.set()
            elif waiter.call is not None:
                waiter.call.future.try_fail(ClientStopped("the pool has stopped"))
        self._supervisor.stop(timeout)
        with self._lock:
            self._clients.clear()
            self._free.clear()

    def __enter__(self) -> Pool:
        """Return the pool; it is stopped on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the pool."""
        self.stop()

    def __repr__(self) -> str:
        """Show the destination and the counts."""
        return (
            f"<Pool {self._destination.origin} clients={self._size}/{self._max_clients} "
            f"free={self._free_count} waiting={len(self._waiters)}>"
        )
