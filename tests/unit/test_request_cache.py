"""Work done once per request shape: make_request, Origin's heads, Response's constructor."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from fusco_actor._exceptions import BadArgument
from fusco_actor._headers import Headers
from fusco_actor._inbox import Call
from fusco_actor._options import parse_destination, parse_options
from fusco_actor._response import Response
from fusco_actor._wire import Origin
from fusco_actor.messages import Request, make_request

# -- make_request ----------------------------------------------------------------------


def test_a_repeated_request_is_built_once_and_equals_a_fresh_one() -> None:
    first = make_request("/same", "GET", [("Accept", "*/*")], b"", 5.0, None)
    again = make_request("/same", "GET", (("Accept", "*/*"),), b"", 5.0, None)
    assert again is first
    assert first == Request("/same", "GET", [("Accept", "*/*")], b"", 5.0, None)
    assert first.headers == (("Accept", "*/*"),)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (("/t", "GET", (), b"", 5.0, None), ("/t", "GET", (), b"", 5, None)),  # int timeout
        (("/t", "GET", (), b"", None, 1), ("/t", "GET", (), b"", None, 2)),
        (("/t", "GET", (), b"", None, None), (b"/t", "GET", (), b"", None, None)),
        (("/t", "GET", (), b"", None, None), ("/t", "GET", (), None, None, None)),
        (
            ("/t", "GET", (("A", "1"),), b"", None, None),
            ("/t", "GET", ((b"A", "1"),), b"", None, None),
        ),
    ],
)
def test_arguments_of_another_value_or_type_get_a_request_of_their_own(
    one: tuple[Any, ...], other: tuple[Any, ...]
) -> None:
    first, second = make_request(*one), make_request(*other)
    assert first is not second
    assert first == Request(*one)
    assert second == Request(*other)


@pytest.mark.parametrize(
    "args",
    [
        ("/t", "GET", (), b"", True, None),  # equal to 1, but no number of seconds
        ("/t", "GET", (), b"", None, True),  # equal to 1, but no count
        ("/t", "GET", [("X", "a\r\nb")], b"", None, None),
        ("no-slash", "GET", (), b"", None, None),
    ],
)
def test_bad_arguments_raise_every_time_even_after_a_good_twin(args: tuple[Any, ...]) -> None:
    make_request("/t", "GET", (), b"", 1, 1)
    for _ in range(2):
        with pytest.raises(BadArgument):
            make_request(*args)


def test_requests_with_a_body_or_unusual_headers_are_built_afresh() -> None:
    assert make_request("/t", "POST", (), b"x", None, None) is not make_request(
        "/t", "POST", (), b"x", None, None
    )
    mapping = {"Accept": "*/*"}
    built = make_request("/t", "GET", mapping, b"", None, None)
    assert built is not make_request("/t", "GET", mapping, b"", None, None)
    assert built.headers == (("Accept", "*/*"),)


def test_each_call_of_a_shared_request_has_its_own_future_and_deadline() -> None:
    request = make_request("/t", "GET", (), b"", 5.0, None)
    first, second = Call(request), Call(request)
    assert first.future is not second.future
    assert first.deadline is not None and second.deadline is not None
    assert second.deadline >= first.deadline


# -- Origin.head -------------------------------------------------------------------------


def origin(**options: Any) -> Origin:
    return Origin(parse_destination("http://example.com:8080"), parse_options(options))


def test_the_head_of_a_repeated_request_is_the_same_bytes() -> None:
    place = origin()
    call = Call(make_request("/h", "GET", (("X-A", "1"),), b"", None, None))
    head = place.head(call)
    assert head == b"GET /h HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\n\r\n"
    assert place.head(Call(call.request)) is head


def test_heads_with_cookies_are_built_each_time_from_the_jar() -> None:
    place = origin(use_cookies=True)
    assert place.jar is not None
    call = Call(make_request("/c", "GET", (), b"", None, None))
    assert b"Cookie" not in place.head(call)
    place.jar.store("example.com", "/c", False, ["k=v"], 0.0)
    assert b"Cookie: k=v\r\n" in place.head(call)


# -- Response ------------------------------------------------------------------------------


def test_response_is_a_frozen_dataclass_built_by_keyword_or_position() -> None:
    headers = Headers([("a", "1")])
    by_name = Response(
        status=200,
        reason="OK",
        version="HTTP/1.1",
        headers=headers,
        trailers=Headers(),
        body=b"x",
        size=40,
        elapsed=0.5,
    )
    assert by_name == Response(200, "OK", "HTTP/1.1", headers, Headers(), b"x", 40, 0.5)
    assert (by_name.status, by_name.body, by_name.size, by_name.elapsed) == (200, b"x", 40, 0.5)
    assert dataclasses.replace(by_name, status=404).status == 404
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_name.status = 500  # type: ignore[misc]


@pytest.mark.parametrize(
    "args",
    [
        (["/x"], "GET", [], None, 1.0, None),
        ("/x", ["GET"], [], None, 1.0, None),
        ("/x", "GET", [], None, [1.0], None),
        ("/x", "GET", [], None, 1.0, {}),
    ],
    ids=["path", "method", "timeout", "send_retry"],
)
def test_an_unhashable_argument_is_a_bad_argument_not_a_type_error(args: tuple[Any, ...]) -> None:
    with pytest.raises(BadArgument):
        make_request(*args)
