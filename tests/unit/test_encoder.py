"""Request encoding and validation: prepare_request, encode_head, chunks, messages.Request."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fusco_actor._encoder import (
    LAST_CHUNK,
    PreparedRequest,
    chunk_frames,
    encode_head,
    prepare_request,
    validate_headers,
    validate_method,
    validate_path,
)
from fusco_actor._exceptions import BadArgument
from fusco_actor.messages import Request

HOST = b"example.com"


def wire(prepared: PreparedRequest, host: bytes = HOST, cookie: str | None = None) -> bytes:
    """Serialise a prepared request the way the client actor writes it."""
    out = encode_head(prepared, host, cookie)
    if prepared.stream is None:
        return out + bytes(prepared.body)
    for chunk in prepared.stream:
        out += chunk_frames(chunk) if prepared.chunked else bytes(chunk)
    if prepared.chunked:
        out += LAST_CHUNK
    return out


def request(method: Any = "GET", path: Any = "/", headers: Any = (), body: Any = b"") -> bytes:
    return wire(prepare_request(method, path, headers, body))


def gen(*chunks: Any) -> Iterator[Any]:
    yield from chunks


# -- request line and Host -------------------------------------------------------


def test_request_line_host_and_blank_line() -> None:
    assert request("GET", "/path?q=1") == b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"


def test_host_field_is_used_as_given_so_the_caller_decides_about_the_port() -> None:
    prepared = prepare_request("GET", "/", [], b"")
    assert encode_head(prepared, b"example.com", None) == (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    )
    assert encode_head(prepared, b"example.com:8080", None) == (
        b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"
    )
    assert encode_head(prepared, b"[::1]:8443", None) == (
        b"GET / HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"
    )


@pytest.mark.parametrize("name", ["Host", "host", "HOST"])
def test_callers_host_header_is_kept_and_none_is_added(name: str) -> None:
    prepared = prepare_request("GET", "/", [(name, "other.example")], b"")
    assert prepared.has_host
    assert encode_head(prepared, HOST, None) == (
        b"GET / HTTP/1.1\r\n" + name.encode() + b": other.example\r\n\r\n"
    )


def test_caller_headers_keep_their_order_and_case_after_host() -> None:
    head = request(headers=[("Accept", "*/*"), ("x-Trace", "1"), ("Accept", "text/html")])
    assert head == (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n"
        b"Accept: */*\r\nx-Trace: 1\r\nAccept: text/html\r\n\r\n"
    )


def test_target_override_and_extra_fields_for_a_forward_proxy() -> None:
    prepared = prepare_request("GET", "/x", [("Accept", "*/*")], b"")
    head = encode_head(
        prepared,
        HOST,
        None,
        target=b"http://example.com/x",
        extra_fields=b"Proxy-Authorization: Basic dTpw\r\n",
    )
    assert head == (
        b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
        b"Proxy-Authorization: Basic dTpw\r\n\r\n"
    )


# -- bodies and framing ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "data"),
    [
        (b"hello", b"hello"),
        (bytearray(b"hello"), b"hello"),
        (memoryview(b"hello"), b"hello"),
        ("h\xe9llo", "h\xe9llo".encode()),
        ([b"he", "l", [bytearray(b"l"), [memoryview(b"o")]]], b"hello"),
        ((b"he", (b"ll", []), b"o"), b"hello"),
        (memoryview(b"hxexlxlxo")[::2], b"hello"),
        (memoryview(bytearray(range(8))).cast("I"), bytes(range(8))),
    ],
    ids=[
        "bytes",
        "bytearray",
        "memoryview",
        "str-utf8",
        "nested-iodata",
        "tuple-iodata",
        "strided-memoryview",
        "int-memoryview",
    ],
)
def test_content_length_is_added_for_a_body_of_known_size(body: Any, data: bytes) -> None:
    prepared = prepare_request("POST", "/", [], body)
    assert not prepared.chunked
    assert prepared.stream is None
    assert bytes(prepared.body) == data
    assert wire(prepared) == (
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n" % len(data) + data
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("body", [b"", None, "", []])
def test_an_empty_body_on_post_put_patch_sends_content_length_zero(method: str, body: Any) -> None:
    assert request(method, "/", [], body) == (
        method.encode() + b" / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n"
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE", "OPTIONS"])
def test_an_empty_body_on_other_methods_sends_no_content_length(method: str) -> None:
    assert request(method, "/", [], b"") == (
        method.encode() + b" / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    )


def test_a_body_on_get_still_gets_a_content_length() -> None:
    assert b"Content-Length: 2\r\n" in request("GET", "/", [], b"hi")


def test_a_generator_body_is_sent_chunked() -> None:
    prepared = prepare_request("POST", "/up", [], gen(b"hello", b"", " w\xf6rld"))
    assert prepared.chunked
    assert prepared.body == b""
    assert wire(prepared) == (
        b"POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7\r\n w\xc3\xb6rld\r\n0\r\n\r\n"
    )


def test_an_empty_generator_on_get_is_sent_as_the_last_chunk_only() -> None:
    assert request("GET", "/", [], gen()) == (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )


def test_chunk_frames_wire_format() -> None:
    assert chunk_frames(b"hello") == b"5\r\nhello\r\n"
    assert chunk_frames(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert chunk_frames(bytearray(b"ab")) == b"2\r\nab\r\n"
    assert chunk_frames(memoryview(bytearray(range(4))).cast("H")) == b"4\r\n\x00\x01\x02\x03\r\n"
    assert chunk_frames("\xe9") == b"2\r\n\xc3\xa9\r\n"
    # An empty chunk must not be framed: "0\r\n" would end the body early.
    assert chunk_frames(b"") == b""
    assert chunk_frames("") == b""
    assert LAST_CHUNK == b"0\r\n\r\n"


@pytest.mark.parametrize("chunk", [1, None, [b"a"], {"a": 1}])
def test_chunk_frames_rejects_what_is_not_bytes_or_str(chunk: Any) -> None:
    with pytest.raises(BadArgument):
        chunk_frames(chunk)


def test_callers_transfer_encoding_chunked_frames_a_fixed_body() -> None:
    prepared = prepare_request("POST", "/", [("Transfer-Encoding", "Chunked")], b"abc")
    assert prepared.chunked
    assert wire(prepared) == (
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )


def test_a_transfer_coding_other_than_chunked_is_rejected() -> None:
    with pytest.raises(BadArgument, match="chunked"):
        prepare_request("POST", "/", [("Transfer-Encoding", "gzip, chunked")], b"abc")


def test_content_length_and_transfer_encoding_together_are_rejected() -> None:
    with pytest.raises(BadArgument):
        prepare_request(
            "POST", "/", [("Content-Length", "3"), ("Transfer-Encoding", "chunked")], b"abc"
        )


def test_callers_content_length_is_kept_and_not_repeated() -> None:
    assert request("POST", "/", [("content-length", " 3 ")], b"abc") == (
        b"POST / HTTP/1.1\r\nHost: example.com\r\ncontent-length:  3 \r\n\r\nabc"
    )


def test_callers_content_length_with_a_stream_sends_the_stream_unframed() -> None:
    prepared = prepare_request("PUT", "/", [("Content-Length", "6")], gen(b"abc", b"def"))
    assert not prepared.chunked
    assert wire(prepared) == (
        b"PUT / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\r\nabcdef"
    )


@pytest.mark.parametrize(
    "headers",
    [
        [("Content-Length", "4")],
        [("Content-Length", "2")],
        [("Content-Length", "abc")],
        [("Content-Length", "-3")],
        [("Content-Length", "")],
        [("Content-Length", "3"), ("Content-Length", "4")],
    ],
    ids=["too-big", "too-small", "non-numeric", "negative", "empty", "conflicting-repeats"],
)
def test_a_callers_content_length_that_disagrees_is_rejected(headers: list[Any]) -> None:
    with pytest.raises(BadArgument, match="Content-Length"):
        prepare_request("POST", "/", headers, b"abc")


def test_identical_repeated_content_length_is_accepted() -> None:
    prepared = prepare_request("POST", "/", [("Content-Length", "3")] * 2, b"abc")
    assert prepared.fields == b"Content-Length: 3\r\nContent-Length: 3\r\n"


@pytest.mark.parametrize("body", [123, 1.5, {"a": b"b"}, object(), [b"a", 1], [b"a", None]])
def test_an_unsupported_body_is_rejected(body: Any) -> None:
    with pytest.raises(BadArgument):
        prepare_request("POST", "/", [], body)


# -- file objects ------------------------------------------------------------------


def test_a_bytesio_body_gets_content_length_from_its_size() -> None:
    prepared = prepare_request("POST", "/", [], io.BytesIO(b"file data"))
    assert not prepared.chunked
    assert wire(prepared) == (
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9\r\n\r\nfile data"
    )


def test_a_bytesio_body_counts_from_its_current_position() -> None:
    body = io.BytesIO(b"skip:data")
    body.seek(5)
    assert request("PUT", "/", [], body).endswith(b"Content-Length: 4\r\n\r\ndata")


def test_a_real_file_body_gets_content_length_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "upload.bin"
    data = bytes(range(256)) * 300  # more than one read of STREAM_READ_SIZE
    path.write_bytes(data)
    with path.open("rb") as body:
        prepared = prepare_request("PUT", "/f", [], body)
        assert prepared.fields == b"Content-Length: %d\r\n" % len(data)
        assert not prepared.chunked
        assert wire(prepared).endswith(b"\r\n\r\n" + data)


def test_a_text_mode_file_is_sent_chunked_since_its_encoded_size_is_unknown(
    tmp_path: Path,
) -> None:
    path = tmp_path / "upload.txt"
    path.write_bytes(b"a\r\nb\r\n\xe9")
    with path.open("r", encoding="latin-1") as body:
        prepared = prepare_request("POST", "/", [], body)
        assert prepared.chunked
        assert wire(prepared).endswith(b"\r\n\r\n6\r\na\nb\n\xc3\xa9\r\n0\r\n\r\n")


def test_a_pipe_is_sent_chunked_since_its_size_is_unknown() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"piped")
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as body:
        prepared = prepare_request("POST", "/", [], body)
        assert prepared.chunked
        assert wire(prepared).endswith(b"\r\n\r\n5\r\npiped\r\n0\r\n\r\n")


# -- methods -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "expected"),
    [("get", b"GET"), (b"post", b"POST"), ("Patch", b"PATCH"), ("M-SEARCH", b"M-SEARCH")],
)
def test_method_is_upper_cased(method: str | bytes, expected: bytes) -> None:
    assert validate_method(method) == expected
    assert request(method, "/", [], b"x").startswith(expected + b" / HTTP/1.1\r\n")


@pytest.mark.parametrize(
    "method",
    ["", "GET ", " GET", "G T", "GE(T", "GET\r\nX: y", "G\x00T", "G\xc9T", "G/T", 7, None],
)
def test_a_method_that_is_not_a_token_is_rejected(method: Any) -> None:
    with pytest.raises(BadArgument):
        validate_method(method)
    with pytest.raises(BadArgument):
        prepare_request(method, "/", [], b"")


# -- paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", b"/"),
        ("/a/b?c=d&e=%20#frag", b"/a/b?c=d&e=%20#frag"),
        (b"/bytes", b"/bytes"),
        ("/caf\xe9", b"/caf%C3%A9"),
        ("/\u20ac?q=\u00fc", b"/%E2%82%AC?q=%C3%BC"),
        (b"/\xff\x80", b"/%FF%80"),
    ],
)
def test_valid_paths_and_non_ascii_percent_encoded(path: str | bytes, expected: bytes) -> None:
    assert validate_path(path, b"GET") == expected
    assert request("GET", path).startswith(b"GET " + expected + b" HTTP/1.1\r\n")


def test_asterisk_is_only_allowed_for_options() -> None:
    assert validate_path("*", b"OPTIONS") == b"*"
    assert request("options", "*").startswith(b"OPTIONS * HTTP/1.1\r\n")
    with pytest.raises(BadArgument, match="OPTIONS"):
        validate_path("*", b"GET")


@pytest.mark.parametrize(
    "path",
    [
        "",
        "x",
        "http://example.com/",
        "*/x",
        "/a b",
        "/a\tb",
        "/a\x00",
        "/a\x1f",
        "/a\x7f",
        "/a\r\nHost: evil",
        "/a\n",
        b"/a b",
        7,
        None,
    ],
)
def test_a_bad_path_is_rejected(path: Any) -> None:
    with pytest.raises(BadArgument):
        validate_path(path, b"GET")
    with pytest.raises(BadArgument):
        prepare_request("GET", path, [], b"")


# -- headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "a\r\nX-Evil: 1",
        "a\nX-Evil: 1",
        "a\rb",
        "a\x00b",
        b"a\r\nX-Evil: 1",
        b"\n",
        "\r",
    ],
)
def test_header_injection_through_a_value_is_rejected(value: str | bytes) -> None:
    with pytest.raises(BadArgument, match="CR, LF or NUL"):
        prepare_request("GET", "/", [("X-Ok", value)], b"")


@pytest.mark.parametrize(
    "name",
    ["", "Bad Name", "Bad:Name", "X\r\nEvil", "X\n", "N\xe1me", "(x)", b"a b", "x\x00"],
)
def test_a_header_name_that_is_not_a_token_is_rejected(name: str | bytes) -> None:
    with pytest.raises(BadArgument):
        prepare_request("GET", "/", [(name, "v")], b"")


def test_a_non_latin1_str_value_is_rejected() -> None:
    with pytest.raises(BadArgument, match="latin-1"):
        prepare_request("GET", "/", [("X-Euro", "\u20ac")], b"")


def test_a_non_latin1_str_name_is_rejected() -> None:
    with pytest.raises(BadArgument):
        prepare_request("GET", "/", [("X-\u20ac", "v")], b"")


def test_latin1_values_are_encoded_as_latin1() -> None:
    assert validate_headers([("X-Name", "caf\xe9")]) == [(b"X-Name", b"caf\xe9")]


def test_a_mapping_of_headers_keeps_insertion_order() -> None:
    headers = {"Accept": "*/*", "X-B": b"2", b"X-C": "3"}
    assert request(headers=headers) == (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nX-B: 2\r\nX-C: 3\r\n\r\n"
    )


@pytest.mark.parametrize(
    "headers",
    [
        [("A", "1"), ("B", "2")],
        (("A", "1"), ("B", "2")),
        [["A", "1"], ["B", "2"]],
        [(b"A", b"1"), (bytearray(b"B"), memoryview(b"2"))],
        gen(("A", "1"), ("B", "2")),
    ],
    ids=["list", "tuple", "lists", "bytes-like", "generator"],
)
def test_pair_lists_in_any_shape(headers: Any) -> None:
    assert validate_headers(headers) == [(b"A", b"1"), (b"B", b"2")]


def test_no_headers_at_all() -> None:
    assert validate_headers(None) == []
    assert validate_headers([]) == []
    assert validate_headers({}) == []


@pytest.mark.parametrize(
    "headers",
    ["Accept: */*", b"Accept: */*", 5, ["ab"], [("a",)], [("a", "b", "c")], [("a", 1)], [(1, "a")]],
)
def test_headers_that_are_not_pairs_are_rejected(headers: Any) -> None:
    with pytest.raises(BadArgument):
        validate_headers(headers)


def test_header_values_keep_their_inner_and_outer_white_space() -> None:
    assert validate_headers([("X", " a  b\t")]) == [(b"X", b" a  b\t")]


# -- Cookie, Expect, Connection, idempotency ------------------------------------------


def test_the_jars_cookie_is_added_after_the_callers_headers() -> None:
    prepared = prepare_request("GET", "/", [("Accept", "*/*")], b"")
    assert encode_head(prepared, HOST, "a=1; b=2") == (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nCookie: a=1; b=2\r\n\r\n"
    )


@pytest.mark.parametrize("cookie", [None, ""])
def test_no_cookie_field_without_a_cookie(cookie: str | None) -> None:
    prepared = prepare_request("GET", "/", [], b"")
    assert b"Cookie" not in encode_head(prepared, HOST, cookie)


@pytest.mark.parametrize("name", ["Cookie", "cookie", "COOKIE"])
def test_a_callers_cookie_header_replaces_the_jars(name: str) -> None:
    prepared = prepare_request("GET", "/", [(name, "mine=1")], b"")
    assert prepared.has_cookie
    head = encode_head(prepared, HOST, "jar=1")
    assert b"jar=1" not in head
    assert head.count(b"mine=1") == 1


@pytest.mark.parametrize(
    ("headers", "body", "flag"),
    [
        ([("Expect", "100-continue")], b"data", True),
        ([("expect", " 100-Continue ")], b"data", True),
        ([("Expect", "100-continue")], gen(b"data"), True),
        ([("Expect", "100-continue")], b"", False),
        ([("Expect", "something-else")], b"data", False),
        ([("Expect", "100-continue"), ("Expect", "other")], b"data", True),
        ([], b"data", False),
    ],
)
def test_expect_continue_flag(headers: Any, body: Any, flag: bool) -> None:
    assert prepare_request("POST", "/", headers, body).expect_continue is flag


@pytest.mark.parametrize(
    ("headers", "flag"),
    [
        ([("Connection", "close")], True),
        ([("connection", "Keep-Alive, CLOSE")], True),
        ([("Connection", "keep-alive")], False),
        ([("Connection", "closed")], False),
        ([("Connection", "close"), ("Connection", "upgrade")], True),
        ([], False),
    ],
)
def test_connection_close_flag(headers: Any, flag: bool) -> None:
    assert prepare_request("GET", "/", headers, b"").close is flag


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        ("GET", True),
        ("HEAD", True),
        ("PUT", True),
        ("DELETE", True),
        ("OPTIONS", True),
        ("TRACE", True),
        ("POST", False),
        ("PATCH", False),
        ("CONNECT", False),
        ("delete", True),
    ],
)
def test_idempotent_property(method: str, idempotent: bool) -> None:
    assert prepare_request(method, "/", [], b"").idempotent is idempotent


def test_prepared_request_is_immutable() -> None:
    prepared = prepare_request("GET", "/", [], b"")
    with pytest.raises(AttributeError):
        prepared.method = b"POST"  # type: ignore[misc]


# -- messages.Request ------------------------------------------------------------------


def test_request_message_validates_and_prepares_on_construction() -> None:
    msg = Request("/x", "post", {"Accept": "*/*"}, b"hi", 5, 2)
    assert msg.timeout == 5.0
    assert isinstance(msg.timeout, float)
    assert msg.send_retry == 2
    assert msg.headers == (("Accept", "*/*"),)
    assert msg.prepared.method == b"POST"
    assert msg.prepared.fields == b"Accept: */*\r\nContent-Length: 2\r\n"


def test_request_message_defaults() -> None:
    msg = Request("/")
    assert msg.method == "GET"
    assert msg.timeout is None
    assert msg.send_retry is None
    assert wire(msg.prepared) == b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"


def test_request_message_turns_header_iterables_into_tuples() -> None:
    assert Request("/", headers=gen(("A", "1"))).headers == (("A", "1"),)
    assert Request("/", headers=None).headers == ()


def test_request_message_is_frozen() -> None:
    msg = Request("/")
    with pytest.raises(AttributeError):
        msg.path = "/other"  # type: ignore[misc]


@pytest.mark.parametrize("timeout", [-1, -0.001, "5", True, [1], complex(1, 0)])
def test_request_message_rejects_a_bad_timeout(timeout: Any) -> None:
    with pytest.raises(BadArgument, match="timeout"):
        Request("/", timeout=timeout)


@pytest.mark.parametrize("send_retry", [-1, 1.5, True, "1", [1]])
def test_request_message_rejects_a_bad_send_retry(send_retry: Any) -> None:
    with pytest.raises(BadArgument, match="send_retry"):
        Request("/", send_retry=send_retry)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "no-slash"},
        {"path": "/", "method": "BAD METHOD"},
        {"path": "/", "headers": [("X", "a\r\nb")]},
        {"path": "/", "headers": 5},
        {"path": "/", "body": 42},
    ],
)
def test_request_message_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(BadArgument):
        Request(**kwargs)


def test_bad_argument_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):
        Request("bad")
