"""One session per pool: with ``use_cookies`` a pool's clients share one cookie jar.

The embedded server's ``/set-cookie?name=value`` sets cookies (``Path=/``) and
``/cookies`` answers with the ``Cookie`` header it received, so each body
below is what went out on the wire.
"""

from __future__ import annotations

from collections.abc import Callable

import fusco_actor
from fusco_actor import Client, CookieJar, Pool, Supervisor
from fusco_actor._server import EmbeddedServer
from fusco_actor.testing import inject_crash
from tests.conftest import LONG_TIMEOUT, SHORT_TIMEOUT
from tests.helpers import outcome

CLIENTS = 4
REQUESTS = 40


def sent_cookies(client: Client | Pool) -> bytes:
    """Return the Cookie header the server received for one request (b"" for none)."""
    response = outcome(client.request("/cookies", "GET", timeout=LONG_TIMEOUT))
    assert isinstance(response, fusco_actor.Response), response
    assert response.status == 200
    return response.body


def login(client: Client | Pool, query: str = "session=s1") -> None:
    response = outcome(client.request(f"/set-cookie?{query}", "GET", timeout=LONG_TIMEOUT))
    assert isinstance(response, fusco_actor.Response), response
    assert response.status == 200


def jar_of(owner: Client | Pool) -> CookieJar:
    jar = owner.cookies
    assert jar is not None
    return jar


def test_a_cookie_set_on_one_pool_client_goes_out_on_every_client_of_the_pool(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, CLIENTS, use_cookies=True)
    clients = [pool.get_client(timeout=SHORT_TIMEOUT) for _ in range(CLIENTS)]
    assert len({id(c) for c in clients}) == CLIENTS  # four clients, four connections
    login(clients[0])
    futures = [
        (index, clients[index].request("/cookies", "GET", timeout=LONG_TIMEOUT))
        for n in range(REQUESTS)
        for index in [n % CLIENTS]
    ]
    bodies = [(index, outcome(future).body) for index, future in futures]
    assert bodies == [(n % CLIENTS, b"session=s1") for n in range(REQUESTS)]
    for client in clients:
        assert client.cookies is pool.cookies
        pool.free_client(client)
    # Through the pool's own dispatch too, spread over its free clients.
    pool_futures = [pool.request("/cookies", "GET", timeout=LONG_TIMEOUT) for _ in range(REQUESTS)]
    assert [outcome(f).body for f in pool_futures] == [b"session=s1"] * REQUESTS
    assert [(c.name, c.value, c.path) for c in jar_of(pool)] == [("session", "s1", "/")]


def test_the_pool_jar_can_be_seeded_read_and_cleared(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, 2, use_cookies=True)
    jar = jar_of(pool)
    jar.set("token", "t0")  # before any client started
    assert sent_cookies(pool) == b"token=t0"
    login(pool, "session=s2")
    assert jar.get("session") == "s2"
    assert sorted(sent_cookies(pool).split(b"; ")) == [b"session=s2", b"token=t0"]
    jar.set("token", "t1", path="/cookies")  # another path: a second cookie of that name
    assert len(jar) == 3
    assert sent_cookies(pool).split(b"; ")[0] == b"token=t1"  # the longer path goes first
    jar.clear()
    assert len(jar) == 0
    assert sent_cookies(pool) == b""


def test_a_pool_without_use_cookies_has_no_jar_and_sends_no_cookie(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, 2)
    assert pool.cookies is None
    login(pool)
    assert sent_cookies(pool) == b""


def test_a_restarted_pool_client_keeps_the_pool_jar(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    pool = pools(embedded_server.url, 2, use_cookies=True)
    login(pool)
    with pool.client(timeout=SHORT_TIMEOUT) as client:
        first = client.actor_ref
        inject_crash(client)  # crashes before it sends the next request
        assert sent_cookies(client) == b"session=s1"  # sent again on the new incarnation
        assert client.actor_ref is not first
        assert client.cookies is pool.cookies
    assert pool._supervisor.restarts(client) == 1
    assert sent_cookies(pool) == b"session=s1"


def test_a_supervised_client_keeps_its_cookies_across_a_restart(
    embedded_server: EmbeddedServer,
) -> None:
    supervisor = Supervisor.start()
    try:
        client = supervisor.start_client(embedded_server.url, use_cookies=True)
        login(client)
        jar = client.cookies
        inject_crash(client)
        assert sent_cookies(client) == b"session=s1"
        assert supervisor.restarts(client) == 1
        assert client.cookies is jar
    finally:
        supervisor.stop(LONG_TIMEOUT)


def test_a_plain_client_exposes_its_own_jar(embedded_server: EmbeddedServer) -> None:
    with fusco_actor.start(embedded_server.url, use_cookies=True) as client:
        jar = jar_of(client)
        jar.set("seeded", "1")
        assert sent_cookies(client) == b"seeded=1"
        jar.clear()
        login(client)
        assert [c.name for c in jar] == ["session"]
        assert sent_cookies(client) == b"session=s1"
    with fusco_actor.start(embedded_server.url) as plain:
        assert plain.cookies is None


def test_clients_of_two_pools_do_not_share_a_jar(
    embedded_server: EmbeddedServer, pools: Callable[..., Pool]
) -> None:
    one = pools(embedded_server.url, 2, use_cookies=True)
    other = pools(embedded_server.url, 2, use_cookies=True)
    login(one)
    assert sent_cookies(one) == b"session=s1"
    assert sent_cookies(other) == b""
    assert one.cookies is not other.cookies
