"""The user-facing side of CookieJar: iterate, get, set, clear; and its lock."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fusco_actor import BadArgument, Cookie, CookieJar

HOST = "example.com"
THREADS = 8
ROUNDS = 500  # per thread


def sent(jar: CookieJar, path: str = "/", host: str = HOST, secure: bool = False) -> str | None:
    return jar.header_value(host, path, secure, time.time())


def test_set_cookies_are_sent_to_the_jar_host_on_their_path() -> None:
    jar = CookieJar(HOST)
    jar.set("a", "1")
    jar.set("b", "2", path="/app")
    assert sent(jar, "/app/x") == "b=2; a=1"  # longer path first (RFC 6265 §5.4)
    assert sent(jar, "/other") == "a=1"
    assert sent(jar, "/", host="sub.example.com") is None  # host-only
    assert jar.get("a") == "1"
    assert jar.get("missing") is None
    assert jar.get("missing", "d") == "d"


def test_iteration_gives_immutable_snapshots_in_sending_order() -> None:
    jar = CookieJar(HOST)
    jar.set("a", "1", secure=True, max_age=60)
    jar.set("b", "2", path="/deep")
    cookies = list(jar)
    assert [c.name for c in cookies] == ["b", "a"]
    first = cookies[1]
    assert isinstance(first, Cookie)
    assert (first.domain, first.path, first.host_only, first.secure, first.http_only) == (
        HOST,
        "/",
        True,
        True,
        False,
    )
    assert first.expires is not None and 50 < first.expires - time.time() <= 60
    assert cookies[0].expires is None  # a session cookie
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.value = "x"  # type: ignore[misc]
    jar.clear()
    assert [c.name for c in cookies] == ["b", "a"]  # a snapshot: clearing leaves it alone


def test_set_replaces_the_cookie_of_same_name_domain_and_path() -> None:
    jar = CookieJar(HOST)
    jar.store(HOST, "/", False, ["a=from-server; Path=/"], time.time())
    jar.set("a", "seeded")
    assert [(c.name, c.value) for c in jar] == [("a", "seeded")]
    jar.set("a", "gone", max_age=0)  # Max-Age <= 0 removes it, as from a server
    assert len(jar) == 0


def test_a_domain_cookie_goes_to_subdomains_too() -> None:
    jar = CookieJar("www.example.com")
    jar.set("d", "1", domain=".example.com")
    assert sent(jar, host="www.example.com") == "d=1"
    assert sent(jar, host="api.example.com") == "d=1"
    assert [c.host_only for c in jar] == [False]


def test_a_jar_without_host_takes_cookies_with_a_domain_only() -> None:
    jar = CookieJar()
    with pytest.raises(BadArgument, match="no host"):
        jar.set("a", "1")
    jar.set("a", "1", domain=HOST)
    assert sent(jar) == "a=1"


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("", "1"), {}, "name"),
        (("a b", "1"), {}, "name"),
        (("a=b", "1"), {}, "name"),
        (("a;", "1"), {}, "name"),
        ((b"a", "1"), {}, "name"),
        (("a", "1;b=2"), {}, "value"),
        (("a", "x\r\nSet-Cookie: evil=1"), {}, "value"),
        (("a", "with space"), {}, "value"),
        (("a", '"unclosed'), {}, "value"),
        (("a", 1), {}, "value"),
        (("a", "1"), {"path": "relative"}, "path"),
        (("a", "1"), {"path": "/x;Domain=evil"}, "path"),
        (("a", "1"), {"path": "/x\n"}, "path"),
        (("a", "1"), {"domain": "other.org"}, "domain"),
        (("a", "1"), {"domain": "sub.example.com"}, "domain"),
        (("a", "1"), {"max_age": float("nan")}, "max_age"),
        (("a", "1"), {"max_age": "60"}, "max_age"),
        (("a", "1"), {"max_age": True}, "max_age"),
    ],
)
def test_set_rejects_what_a_server_could_not_send(
    args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    jar = CookieJar(HOST)
    with pytest.raises(BadArgument, match=match):
        jar.set(*args, **kwargs)
    assert len(jar) == 0


def test_quoted_values_and_every_cookie_octet_are_accepted() -> None:
    jar = CookieJar(HOST)
    octets = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
    jar.set("q", '"quoted"')
    jar.set("o", octets)
    assert jar.get("q") == '"quoted"'
    assert jar.get("o") == octets


def test_repr_names_the_host_and_the_count() -> None:
    jar = CookieJar(HOST)
    jar.set("a", "1")
    assert repr(jar) == "<CookieJar example.com: 1 cookie(s)>"


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, to expose unlocked races."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def test_the_jar_is_safe_to_share_between_threads(fast_switching: None) -> None:
    # Writers add and replace cookies while readers build headers and iterate: without
    # the lock a reader sees "dictionary changed size during iteration".
    jar = CookieJar(HOST)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(index: int) -> None:
        try:
            start.wait(timeout=10.0)
            for n in range(ROUNDS):
                now = time.time()
                if index % 2:
                    jar.store(HOST, "/", False, [f"t{index}-{n % 10}=v{n}; Path=/p{n % 3}"], now)
                    jar.set(f"s{index}", str(n))
                else:
                    jar.header_value(HOST, f"/p{n % 3}/x", False, now)
                    list(jar)
                    jar.get(f"s{index + 1}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    # Each writer kept one cookie per (name, path) it stored, and the one it seeded.
    stored = len({(n % 10, n % 3) for n in range(ROUNDS)})
    assert len(jar) == (THREADS // 2) * (stored + 1)
