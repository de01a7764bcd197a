"""Helpers shared by the actor, fault and integration tests: bounded waits, outcomes, threads.

The last part looks into a client's connection under either engine (the
threaded ``ClientActor`` or the loop's ``LoopClientActor``), so that the tests
that read a socket option or the TLS session hold for both.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import pykka
import pytest

import fusco_actor
from fusco_actor import FuscoError
from fusco_actor._loop_client import LoopClientActor
from fusco_actor._scheduler import get_scheduler
from tests.conftest import LONG_TIMEOUT

T = TypeVar("T")


def wait_for(condition: Callable[[], bool], timeout: float = LONG_TIMEOUT) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (no event exists for it)."""
    limit = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= limit:
            return False
        time.sleep(0.005)
    return True


def outcome(future: Any, timeout: float = LONG_TIMEOUT) -> Any:
    """Return the future's response or its FuscoError; a hang fails the test."""
    try:
        return future.get(timeout=timeout)
    except pykka.Timeout:
        pytest.fail(f"a future was left unresolved for {timeout} s")
    except FuscoError as exc:
        return exc


def start_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start ``target(*args)`` on a daemon thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join_all(threads: list[threading.Thread]) -> None:
    """Join every thread within LONG_TIMEOUT each, or fail: a hung thread is a bug."""
    for thread in threads:
        thread.join(LONG_TIMEOUT)
        assert not thread.is_alive(), "a thread hung"


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: no such process, or a zombie awaiting its reaper."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except FileNotFoundError:
        return True
    return stat.rpartition(b")")[2].split()[0] == b"Z"


def wait_gone(pid: int, timeout: float = LONG_TIMEOUT) -> bool:
    """Poll until process ``pid`` is gone or ``timeout`` seconds passed; return whether it is."""
    return wait_for(lambda: process_gone(pid), timeout)


@contextlib.contextmanager
def descriptors_above(n: int) -> Iterator[None]:
    """Hold open files until new descriptors are numbered above ``n``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"the open-file hard limit ({hard}) is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd > n:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- a client's connection, under either engine ------------------------------------------


class SocketLike(Protocol):
    """What both engines' sockets offer: a ``socket.socket`` (threaded) or the loop's wrapper.

    The loop's transports hand out a wrapper (asyncio's ``TransportSocket``,
    uvloop's ``PseudoSocket``) that reads options and addresses but cannot
    send, receive or close.
    """

    @property
    def family(self) -> int:
        """The address family."""

    def fileno(self) -> int:
        """The descriptor."""

    def getsockopt(self, level: int, option: int) -> int:
        """Read an integer socket option."""

    def getpeername(self) -> Any:
        """The peer's address."""


def uses_loop_engine(client: fusco_actor.Client) -> bool:
    """Return whether ``client`` runs on the loop engine (``FUSCO_ACTOR_ENGINE=loop``)."""
    return isinstance(client._actor, LoopClientActor)


def client_connection(client: fusco_actor.Client) -> Any:
    """Return the client's open connection (threaded ``Connection`` or ``LoopConnection``).

    Both have ``address``, ``tunnelled`` and ``requests_done``; use the helpers
    below for the socket and the TLS session.
    """
    conn = client._actor.connection
    assert conn is not None, "the client holds no connection"
    return conn


def on_scheduler(function: Callable[[], T]) -> T:
    """Return ``function()`` run on the scheduler thread (the loop's objects live there)."""
    result: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            result.set_result(function())
        except Exception as exc:
            result.set_exception(exc)

    get_scheduler().call_soon(run)
    return result.result(timeout=LONG_TIMEOUT)


def client_socket(client: fusco_actor.Client) -> SocketLike:
    """Return the socket of the client's open connection (the proxy's, through one)."""
    conn = client_connection(client)
    if not uses_loop_engine(client):
        sock: SocketLike = conn.sock
        return sock
    sock = conn.get_extra_info("socket")
    assert sock is not None, "the loop connection has no socket"
    return sock


def client_tls(client: fusco_actor.Client) -> ssl.SSLObject | ssl.SSLSocket:
    """Return the TLS object of the client's open connection: ``version()``, ``getpeercert()``.

    Threaded: the ``ssl.SSLSocket``; loop: the transport's ``ssl.SSLObject``
    (read it with :func:`on_scheduler` for what changes while the loop reads).
    """
    conn = client_connection(client)
    tls: ssl.SSLObject | ssl.SSLSocket | None
    if uses_loop_engine(client):
        tls = conn.get_extra_info("ssl_object")
    else:
        tls = conn.sock if isinstance(conn.sock, ssl.SSLSocket) else None
    assert tls is not None, "the client's connection is not TLS"
    return tls


def session_ticket_arrived(client: fusco_actor.Client, timeout: float) -> bool:
    """Wait (bounded) for a TLS 1.3 session ticket on the client's idle connection.

    Threaded: the idle socket turns readable (nobody reads it until the next
    request). Loop: the loop reads all the time, so the ticket shows in the
    session the SSL object holds.
    """
    if not uses_loop_engine(client):
        readable, _, _ = select.select([client_connection(client).sock], [], [], timeout)
        return bool(readable)
    tls = client_tls(client)

    def has_ticket() -> bool:
        session = tls.session
        return session is not None and session.has_ticket

    return wait_for(lambda: on_scheduler(has_ticket), timeout)


def idle_connection_closed_by_peer(client: fusco_actor.Client, timeout: float) -> bool:
    """Wait (bounded) until the server closes the client's idle connection; return whether.

    Threaded: the socket reads its end of stream (a peek, no byte taken); a
    byte instead fails the test. Loop: the actor hears the close and drops the
    connection. A client that already closed it (the server said close) is done.
    """
    conn = client._actor.connection
    if conn is None:
        return True
    if uses_loop_engine(client):
        return wait_for(lambda: client._actor.connection is not conn or conn.is_closed, timeout)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            readable, _, _ = select.select([conn.sock], [], [], left)
            if readable and conn.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return True
        except (OSError, ValueError):  # reset, or the socket was closed meanwhile
            return True
        assert not readable, "the server sent bytes on an idle connection"
    return False


def idle_connection_readable(client: fusco_actor.Client, timeout: float) -> bool:
    """Wait (bounded) until bytes or a close reach the client's idle connection; return whether.

    Threaded: the socket turns readable (nobody reads it until the next
    request). Loop: the loop reads at once, so the bytes wait in the actor's
    parser, or the actor has already dropped the connection for them.
    """
    conn = client._actor.connection
    if conn is None:
        return True
    if not uses_loop_engine(client):
        readable, _, _ = select.select([conn.sock], [], [], timeout)
        return bool(readable)
    actor = client._actor

    def news() -> bool:
        parser = actor._parser
        dropped = actor.connection is not conn or conn.is_closed
        return bool(dropped or (parser is not None and parser.buffered))

    return wait_for(lambda: on_scheduler(news), timeout)
