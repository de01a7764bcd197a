"""Headers: ordered, repeats kept, case-insensitive lookup."""

from __future__ import annotations

import pytest

from fusco_actor._headers import Headers

PAIRS = [
    ("content-type", "text/plain"),
    ("set-cookie", "a=1"),
    ("x-empty", ""),
    ("set-cookie", "b=2; Path=/"),
    ("vary", "accept"),
]


@pytest.fixture
def headers() -> Headers:
    return Headers(PAIRS)


def test_iteration_yields_pairs_in_wire_order_with_repeats(headers: Headers) -> None:
    assert list(headers) == PAIRS


def test_getitem_is_case_insensitive(headers: Headers) -> None:
    assert headers["Content-Type"] == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert headers["content-type"] == "text/plain"


def test_getitem_joins_repeated_values_with_comma_space(headers: Headers) -> None:
    assert headers["Set-Cookie"] == "a=1, b=2; Path=/"


def test_getitem_returns_an_empty_value_as_is(headers: Headers) -> None:
    assert headers["X-Empty"] == ""


def test_getitem_of_a_missing_name_raises_key_error(headers: Headers) -> None:
    with pytest.raises(KeyError, match="X-Missing"):
        headers["X-Missing"]


def test_get_returns_the_joined_value_or_the_default(headers: Headers) -> None:
    assert headers.get("SET-COOKIE") == "a=1, b=2; Path=/"
    assert headers.get("x-missing") is None
    assert headers.get("x-missing", "fallback") == "fallback"
    assert headers.get("x-empty", "fallback") == ""


def test_get_all_returns_each_value_in_order(headers: Headers) -> None:
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2; Path=/"]
    assert headers.get_all("vary") == ["accept"]
    assert headers.get_all("x-missing") == []


def test_in_is_case_insensitive_and_false_for_non_strings(headers: Headers) -> None:
    assert "Set-Cookie" in headers
    assert "x-empty" in headers
    assert "x-missing" not in headers
    assert b"vary" not in headers
    assert 1 not in headers


def test_len_counts_pairs_including_repeats(headers: Headers) -> None:
    assert len(headers) == 5
    assert len(Headers()) == 0


def test_empty_headers_are_falsy_and_iterate_nothing() -> None:
    assert not Headers()
    assert list(Headers()) == []


def test_equality_with_headers_and_lists_of_pairs(headers: Headers) -> None:
    assert headers == Headers(list(PAIRS))
    assert headers == PAIRS
    assert headers == [list(p) for p in PAIRS]
    assert headers != Headers(PAIRS[::-1])
    assert headers != "content-type"


def test_headers_are_hashable_and_equal_ones_hash_alike(headers: Headers) -> None:
    assert hash(headers) == hash(Headers(tuple(PAIRS)))
    assert {headers: 1}[Headers(PAIRS)] == 1


def test_headers_do_not_change_when_the_source_list_does() -> None:
    pairs = [("a", "1")]
    headers = Headers(pairs)
    pairs.append(("b", "2"))
    assert list(headers) == [("a", "1")]


def test_repr_shows_the_pairs(headers: Headers) -> None:
    assert repr(Headers([("a", "1")])) == "Headers([('a', '1')])"
