"""The handles show users what API.md names (and ``cookies``), nothing of their machinery.

The supervisor-facing hooks of ``Client`` (``_on_exit``, ``_restart``,
``_give_up``, ...), the pool's counters and its supervisor, and the
supervisor's report entry points are underscored: out of ``dir()``, out of
completion, and a type error from outside (tests/static/test_type_checkers.py).
"""

from __future__ import annotations

import typing

import pytest

import fusco_actor
from fusco_actor import Client, Pool, Supervisor
from fusco_actor._cookies import CookieJar
from fusco_actor._options import (
    _CONNECT_OPTION_KEYS,
    OPTION_NAMES,
    CheckedOptions,
    ClientOptions,
    ConnectOptions,
    parse_options,
)
from fusco_actor._server import EmbeddedServer
from tests.conftest import LONG_TIMEOUT

# API.md §1 ("The same, as methods of the handle") and §5; ``cookies`` is the one
# addition (issue 12: the jar of a client or a pool started with use_cookies=True).
CLIENT_NAMES = {"actor_ref", "arequest", "connect", "cookies", "disconnect", "request", "stream"}
POOL_NAMES = {
    "arequest",
    "client",
    "cookies",
    "free_client",
    "get_client",
    "request",
    "start",
    "stop",
}
SUPERVISOR_NAMES = {"children", "restarts", "start", "start_client", "stop"}
JAR_NAMES = {"clear", "get", "header_value", "set", "store"}


def public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def test_client_shows_only_the_documented_names() -> None:
    assert [n for n in dir(Client) if not n.startswith("_")] == sorted(CLIENT_NAMES)
    assert callable(Client.__enter__) and callable(Client.__exit__)


def test_pool_and_supervisor_show_only_the_documented_names() -> None:
    assert public(Pool) == POOL_NAMES
    assert public(Supervisor) == SUPERVISOR_NAMES
    assert callable(Pool.__enter__) and callable(Pool.__exit__)


def test_cookie_jar_shows_its_documented_methods() -> None:
    assert public(CookieJar) == JAR_NAMES


def test_instances_add_no_public_attribute(embedded_server: EmbeddedServer) -> None:
    # Instance attributes (not only the class's) stay out of sight too.
    supervisor = Supervisor.start()
    pool = Pool.start(embedded_server.url, max_clients=2, use_cookies=True)
    try:
        with fusco_actor.start(embedded_server.url) as client:
            assert public(client) == CLIENT_NAMES
        child = supervisor.start_client(embedded_server.url)
        assert public(child) == CLIENT_NAMES
        with pool.client(timeout=LONG_TIMEOUT) as lent:
            assert public(lent) == CLIENT_NAMES
        assert public(pool) == POOL_NAMES
        assert public(supervisor) == SUPERVISOR_NAMES
    finally:
        pool.stop(LONG_TIMEOUT)
        supervisor.stop(LONG_TIMEOUT)


def test_the_module_exports_what_it_lists() -> None:
    assert sorted(fusco_actor.__all__) == sorted(set(fusco_actor.__all__))
    for name in fusco_actor.__all__:
        assert hasattr(fusco_actor, name), name
    api = {"start", "start_link", "connect", "request", "disconnect", "Client", "Supervisor"}
    assert api | {"Pool", "Response", "Headers", "StreamingResponse", "FuscoError"} <= set(
        fusco_actor.__all__
    )


# -- the TypedDict and the runtime checks are one list ------------------------------------

# For every option: a value of its declared type, and one a type checker rejects.
GOOD_AND_BAD: dict[str, tuple[object, object]] = {
    "connect_timeout": (2.0, "2"),
    "connect_options": ({"tcp_nodelay": False}, [("tcp_nodelay", False)]),
    "ssl_context": (None, "verify"),
    "send_retry": (2, "2"),
    "proxy": ("http://127.0.0.1:3128", 3128),
    "proxy_ssl_context": (None, True),
    "use_cookies": (True, "yes"),
    "on_connect": (print, "print"),
    "max_head_size": (16_384, 16_384.0),
    "max_body_size": (None, "1M"),
    "pipeline": (4, 4.0),
}


def test_the_runtime_option_names_are_the_typeddict_keys() -> None:
    assert set(OPTION_NAMES) == set(ClientOptions.__annotations__) == set(GOOD_AND_BAD)
    assert ClientOptions.__required_keys__ == frozenset()  # total=False: all optional
    connect_fields = {"source_address", "family", "sockopts", "tcp_nodelay"}
    assert set(_CONNECT_OPTION_KEYS) == set(ConnectOptions.__annotations__) == connect_fields
    # Each option (connect_options spread into its keys) lands in a checked field.
    fields = set(CheckedOptions.__dataclass_fields__)
    assert (set(OPTION_NAMES) - {"connect_options"}) | connect_fields <= fields


def test_the_annotations_resolve_at_run_time() -> None:
    hints = typing.get_type_hints(ClientOptions)
    assert set(hints) == set(OPTION_NAMES)
    assert set(typing.get_type_hints(ConnectOptions)) == set(_CONNECT_OPTION_KEYS)


@pytest.mark.parametrize("name", sorted(GOOD_AND_BAD))
def test_each_option_accepts_its_declared_type_and_rejects_another(name: str) -> None:
    good, bad = GOOD_AND_BAD[name]
    parse_options({name: good})
    with pytest.raises(fusco_actor.BadOption, match=name):
        parse_options({name: bad})


def test_an_unknown_option_is_a_bad_option_naming_it() -> None:
    with pytest.raises(fusco_actor.BadOption, match="conect_timeout"):
        parse_options({"conect_timeout": 2.0})
