"""ResponseParser: every case fed whole, byte by byte and with trailing bytes (h11 test_io.tr)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from fusco_actor._events import (
    NEED_DATA,
    BodyChunk,
    EndOfResponse,
    Informational,
    PeerClosed,
    ResponseHead,
)
from fusco_actor._exceptions import ProtocolError
from fusco_actor._headers import Headers
from fusco_actor._parser import DEFAULT_MAX_HEAD_SIZE, MAX_INFORMATIONAL, ResponseParser
from tests.codec_helpers import drain, merge_chunks

GET = b"GET"
HEAD = b"HEAD"

# The response that follows each case in the "trailing bytes" run, and its events.
TRAILING = b"HTTP/1.1 202 Accepted\r\nContent-Length: 3\r\n\r\nnex"
TRAILING_EVENTS = [
    ResponseHead(202, "Accepted", "HTTP/1.1", Headers([("content-length", "3")]), True),
    BodyChunk(b"nex"),
    EndOfResponse(Headers()),
]


# -- helpers -------------------------------------------------------------------


def head(
    status: int,
    reason: str = "OK",
    headers: list[tuple[str, str]] | None = None,
    *,
    version: str = "HTTP/1.1",
    keep_alive: bool = True,
) -> ResponseHead:
    return ResponseHead(status, reason, version, Headers(headers or []), keep_alive)


def body(data: bytes) -> BodyChunk:
    return BodyChunk(data)


def end(trailers: list[tuple[str, str]] | None = None) -> EndOfResponse:
    return EndOfResponse(Headers(trailers or []))


def run(
    methods: list[bytes],
    pieces: list[bytes],
    *,
    eof: bool,
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    max_body_size: int | None = None,
) -> tuple[list[object], ResponseParser]:
    parser = ResponseParser(max_head_size, max_body_size)
    for method in methods:
        parser.expect(method)
    events: list[object] = []
    for piece in pieces:
        parser.feed(piece)
        events += drain(parser)
    if eof:
        parser.feed_eof()
        events += drain(parser)
    return merge_chunks(events), parser


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def tr(
    methods: list[bytes],
    data: bytes,
    events: Sequence[object],
    *,
    eof: bool = False,
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    max_body_size: int | None = None,
    step: int = 1,
) -> None:
    """Assert that whole, sliced (``step`` bytes at a time) and trailed input agree."""
    expected = merge_chunks(events)

    def run_(
        methods: list[bytes], pieces: list[bytes], eof: bool
    ) -> tuple[list[object], ResponseParser]:
        return run(
            methods, pieces, eof=eof, max_head_size=max_head_size, max_body_size=max_body_size
        )

    whole, parser = run_(methods, [data], eof)
    assert whole == expected
    assert parser.bytes_consumed == len(data)
    assert parser.buffered == 0
    assert parser.pending == 0

    pieces = (
        bytewise(data) if step == 1 else [data[i : i + step] for i in range(0, len(data), step)]
    )
    sliced, parser = run_(methods, pieces, eof)
    assert sliced == expected
    assert parser.bytes_consumed == len(data)

    if not eof:  # a read-until-close body would swallow what follows
        trailed, parser = run_([*methods, GET], [data + TRAILING], False)
        assert trailed == expected + TRAILING_EVENTS
        assert parser.bytes_consumed == len(data) + len(TRAILING)


def tr_error(
    methods: list[bytes],
    data: bytes,
    *,
    eof: bool = False,
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    match: str | None = None,
    max_body_size: int | None = None,
) -> None:
    """Assert that the input raises ProtocolError fed whole, byte by byte and with more after it."""
    runs = [[data], bytewise(data)]
    if not eof:  # a valid response after the bad one must not rescue it
        runs.append([data + TRAILING])
    for pieces in runs:
        with pytest.raises(ProtocolError, match=match):
            run(methods, pieces, eof=eof, max_head_size=max_head_size, max_body_size=max_body_size)


# -- the table of valid responses ----------------------------------------------


@dataclass
class Case:
    id: str
    data: bytes
    expected: list[object]
    methods: list[bytes] = field(default_factory=lambda: [GET])
    eof: bool = False


CL5 = [("content-length", "5")]
CHUNKED = [("transfer-encoding", "chunked")]

SIMPLE_CASES = [
    Case(
        "content-length body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        [head(200, headers=CL5), body(b"hello"), end()],
    ),
    Case(
        "content-length zero",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        [head(200, headers=[("content-length", "0")]), end()],
    ),
    Case(
        "identical repeated content-length in one field",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
        [head(200, headers=[("content-length", "3, 3")]), body(b"abc"), end()],
    ),
    Case(
        "identical repeated content-length fields",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        [
            head(200, headers=[("content-length", "3"), ("content-length", "3")]),
            body(b"abc"),
            end(),
        ],
    ),
    Case(
        "chunked with extensions and trailers",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b'6 ; a=b;c="q;s"\r\n world\r\n'
        b"000A\r\n0123456789\r\n"
        b"0;last\r\nX-Trailer: yes\r\nX-Other:  two \r\n\r\n",
        [
            head(200, headers=CHUNKED),
            body(b"hello world0123456789"),
            end([("x-trailer", "yes"), ("x-other", "two")]),
        ],
    ),
    Case(
        "chunked without trailers, hex sizes in either case",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n",
        [head(200, headers=CHUNKED), body(b"0123456789abcdefghijk"), end()],
    ),
    Case(
        "chunked with a transfer-coding before chunked",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        [head(200, headers=[("transfer-encoding", "gzip, chunked")]), body(b"abc"), end()],
    ),
    Case(
        "bare-LF head, CRLF chunk framing",
        b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        [head(200, headers=CHUNKED), body(b"abc"), end([("x-t", "1")])],
    ),
    Case(
        "chunk extensions with BWS, quoted strings and quoted pairs (RFC 9112 7.1.1)",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3\t;\tn\t=\t"a \\" b";m ; k = v\r\nabc\r\n'
        b'2;e="\xe9\t"\r\nde\r\n'
        b"0 ; end\r\n\r\n",
        [head(200, headers=CHUNKED), body(b"abcde"), end()],
    ),
    Case(
        "chunk size of sixteen hex digits with leading zeros",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0000000000000003\r\nabc\r\n0000\r\n\r\n",
        [head(200, headers=CHUNKED), body(b"abc"), end()],
    ),
    Case(
        "trailer with obs-fold, HTAB and obs-text",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\tb\r\n c\xff\r\n\r\n",
        [head(200, headers=CHUNKED), end([("x-t", "a\tb c\xff")])],
    ),
    Case(
        "transfer-encoding in any case, empty list elements ignored",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, , CHUNKED,\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        [head(200, headers=[("transfer-encoding", "gzip, , CHUNKED,")]), body(b"abc"), end()],
    ),
    Case(
        "status codes up to 999 are accepted, as h11 does",
        b"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
        [head(999, "Odd", [("content-length", "0")]), end()],
    ),
    Case(
        "read until close, HTTP/1.0",
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it",
        [
            head(
                200, headers=[("content-type", "text/plain")], version="HTTP/1.0", keep_alive=False
            ),
            body(b"all of it"),
            end(),
            PeerClosed(),
        ],
        eof=True,
    ),
    Case(
        "read until close, HTTP/1.1 without a length",
        b"HTTP/1.1 200 OK\r\n\r\nall of it\r\n\r\nHTTP/1.1 200 OK\r\n",
        [
            head(200, keep_alive=False),
            body(b"all of it\r\n\r\nHTTP/1.1 200 OK\r\n"),
            end(),
            PeerClosed(),
        ],
        eof=True,
    ),
    Case(
        "read until close with an empty body",
        b"HTTP/1.1 200 OK\r\n\r\n",
        [head(200, keep_alive=False), end(), PeerClosed()],
        eof=True,
    ),
    Case(
        "read until close, HTTP/1.0 keep-alive without a length cannot be kept",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nxyz",
        [
            head(
                200,
                headers=[("connection", "keep-alive")],
                version="HTTP/1.0",
                keep_alive=False,
            ),
            body(b"xyz"),
            end(),
            PeerClosed(),
        ],
        eof=True,
    ),
    Case(
        "transfer-encoding not ending in chunked is read until close",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b",
        [
            head(200, headers=[("transfer-encoding", "gzip")], keep_alive=False),
            body(b"\x1f\x8b"),
            end(),
            PeerClosed(),
        ],
        eof=True,
    ),
    Case(
        "HEAD response with content-length has no body",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        [head(200, headers=CL5), end()],
        methods=[HEAD],
    ),
    Case(
        "HEAD response with chunked has no body",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        [head(200, headers=CHUNKED), end()],
        methods=[HEAD],
    ),
    Case(
        "204 has no body",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        [head(204, "No Content"), end()],
    ),
    Case(
        "304 has no body despite content-length",
        b'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: "x"\r\n\r\n',
        [head(304, "Not Modified", [*CL5, ("etag", '"x"')]), end()],
    ),
    Case(
        "CONNECT 200 has no body",
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        [head(200, "Connection established"), end()],
        methods=[b"CONNECT"],
    ),
    Case(
        "101 has no body and ends keep-alive",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        [head(101, "Switching Protocols", [("upgrade", "websocket")], keep_alive=False), end()],
    ),
    Case(
        "100 before the final response",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        [
            Informational(100, "Continue", Headers()),
            head(200, headers=CL5),
            body(b"hello"),
            end(),
        ],
    ),
    Case(
        "103 early hints before the final response",
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        [
            Informational(103, "Early Hints", Headers([("link", "</s.css>; rel=preload")])),
            head(200, headers=CL5),
            body(b"hello"),
            end(),
        ],
    ),
    Case(
        "several 1xx before the final response",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        [
            Informational(100, "Continue", Headers()),
            Informational(102, "Processing", Headers()),
            Informational(103, "Early Hints", Headers()),
            head(204, "No Content"),
            end(),
        ],
    ),
    Case(
        "Connection: close ends keep-alive on HTTP/1.1",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
        [
            head(200, headers=[("connection", "close"), *CL5], keep_alive=False),
            body(b"hello"),
            end(),
        ],
    ),
    Case(
        "Connection: close among other tokens, any case",
        b"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n",
        [
            head(
                200,
                headers=[("connection", "Upgrade, CLOSE"), ("content-length", "0")],
                keep_alive=False,
            ),
            end(),
        ],
    ),
    Case(
        "HTTP/1.0 with Connection: keep-alive and a length is kept",
        b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\nhello",
        [
            head(200, headers=[("connection", "Keep-Alive"), *CL5], version="HTTP/1.0"),
            body(b"hello"),
            end(),
        ],
    ),
    Case(
        "HTTP/1.0 with a length but no keep-alive is closed",
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        [head(200, headers=CL5, version="HTTP/1.0", keep_alive=False), body(b"hello"), end()],
    ),
    Case(
        "obs-fold lines are unfolded with one space (RFC 9112 5.2)",
        b"HTTP/1.1 200 OK\r\nX-Folded: first\r\n  second\r\n\tthird \r\n \r\n"
        b"X-Empty-Start:\r\n next\r\nContent-Length: 0\r\n\r\n",
        [
            head(
                200,
                headers=[
                    ("x-folded", "first second third"),
                    ("x-empty-start", "next"),
                    ("content-length", "0"),
                ],
            ),
            end(),
        ],
    ),
    Case(
        "repeated headers are kept in wire order",
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nVary: x\r\nset-cookie: b=2\r\n"
        b"SET-COOKIE: c=3\r\nContent-Length: 0\r\n\r\n",
        [
            head(
                200,
                headers=[
                    ("set-cookie", "a=1"),
                    ("vary", "x"),
                    ("set-cookie", "b=2"),
                    ("set-cookie", "c=3"),
                    ("content-length", "0"),
                ],
            ),
            end(),
        ],
    ),
    Case(
        "names lower-cased and values trimmed",
        b"HTTP/1.1 200 OK\r\nCONTENT-Type:   text/plain \t\r\nX-Empty:\r\nX-Inner:  a  b \r\n"
        b"X-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n",
        [
            head(
                200,
                headers=[
                    ("content-type", "text/plain"),
                    ("x-empty", ""),
                    ("x-inner", "a  b"),
                    ("x-latin", "caf\xe9"),
                    ("content-length", "0"),
                ],
            ),
            end(),
        ],
    ),
    Case(
        "bare-LF line endings accepted",
        b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nhi",
        [head(200, headers=[("content-length", "2"), ("x-a", "b")]), body(b"hi"), end()],
    ),
    Case(
        "mixed CRLF and LF line endings",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\n\r\nhi",
        [head(200, headers=[("content-length", "2")]), body(b"hi"), end()],
    ),
    Case(
        "empty reason phrase without the space",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        [head(200, "", [("content-length", "0")]), end()],
    ),
    Case(
        "empty reason phrase after the space",
        b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
        [head(200, "", [("content-length", "0")]), end()],
    ),
    Case(
        "reason phrase with spaces and obs-text",
        b"HTTP/1.1 404 Not \xa0 Found\r\nContent-Length: 0\r\n\r\n",
        [head(404, "Not \xa0 Found", [("content-length", "0")]), end()],
    ),
    Case(
        "pipelined responses answered from one feed",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        [
            head(200, headers=CL5),
            body(b"hello"),
            end(),
            head(201, "Created", CHUNKED),
            body(b"abc"),
            end(),
        ],
        methods=[GET, GET],
    ),
    Case(
        "pipelined HEAD then GET",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        [head(200, headers=CL5), end(), head(200, headers=CL5), body(b"hello"), end()],
        methods=[HEAD, GET],
    ),
    Case(
        "stray CRLF between pipelined responses is skipped",
        b"HTTP/1.1 204 No Content\r\n\r\n\r\n\nHTTP/1.1 204 No Content\r\n\r\n",
        [head(204, "No Content"), end(), head(204, "No Content"), end()],
        methods=[GET, GET],
    ),
]


@pytest.mark.parametrize("case", SIMPLE_CASES, ids=lambda c: c.id)
def test_valid_response_gives_the_same_events_however_it_is_fed(case: Case) -> None:
    tr(case.methods, case.data, case.expected, eof=case.eof)


def test_a_100_kib_head_passes_with_the_default_limit() -> None:
    value = "v" * (100 * 1024)
    data = b"HTTP/1.1 200 OK\r\nX-Big: " + value.encode() + b"\r\nContent-Length: 1\r\n\r\n!"
    expected = [
        head(200, headers=[("x-big", value), ("content-length", "1")]),
        body(b"!"),
        end(),
    ]
    tr([GET], data, expected, step=997)
    tr([GET], data, expected, step=1)


def test_a_head_of_exactly_max_head_size_passes() -> None:
    data = b"HTTP/1.1 204 No Content\r\nX: " + b"a" * 20 + b"\r\n\r\n"
    tr([GET], data, [head(204, "No Content", [("x", "a" * 20)]), end()], max_head_size=len(data))


def test_one_hundred_1xx_responses_are_accepted() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" * MAX_INFORMATIONAL + b"HTTP/1.1 204 No Content\r\n\r\n"
    expected = [Informational(100, "Continue", Headers())] * MAX_INFORMATIONAL
    tr([GET], data, [*expected, head(204, "No Content"), end()])


def test_the_1xx_count_starts_again_for_each_response() -> None:
    one = b"HTTP/1.1 100 Continue\r\n\r\n" * 60 + b"HTTP/1.1 204 No Content\r\n\r\n"
    events, _ = run([GET, GET], [one + one], eof=False)
    assert len(events) == 2 * 62


# -- errors --------------------------------------------------------------------


def resp(*lines: bytes, body: bytes = b"") -> bytes:
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


ERROR_CASES = [
    ("garbage status line", resp(b"garbage")),
    ("status line without a code", resp(b"HTTP/1.1 OK")),
    ("two-digit status code", resp(b"HTTP/1.1 20 OK")),
    ("ICY status line", resp(b"ICY 200 OK")),
    ("lower-case http", resp(b"http/1.1 200 OK")),
    ("tab instead of space in status line", resp(b"HTTP/1.1\t200 OK")),
    ("CR inside the status line", resp(b"HTTP/1.1 200 O\rK")),
    ("HTTP/2.0 version", resp(b"HTTP/2.0 200 OK")),
    ("HTTP/0.9 version", resp(b"HTTP/0.9 200 OK")),
    ("header line without colon", resp(b"HTTP/1.1 200 OK", b"X-No-Colon")),
    ("header line with empty name", resp(b"HTTP/1.1 200 OK", b": value")),
    ("whitespace before colon", resp(b"HTTP/1.1 200 OK", b"Content-Length : 5", body=b"hello")),
    ("tab before colon", resp(b"HTTP/1.1 200 OK", b"X-A\t: b")),
    ("header name that is not a token", resp(b"HTTP/1.1 200 OK", b"X(a): b")),
    ("NUL in a header value", resp(b"HTTP/1.1 200 OK", b"X-A: a\x00b")),
    ("bare CR in a header value", resp(b"HTTP/1.1 200 OK", b"X-A: a\rb")),
    ("obs-fold before any header", resp(b"HTTP/1.1 200 OK", b" folded")),
    (
        "content-length and transfer-encoding both",
        resp(
            b"HTTP/1.1 200 OK",
            b"Content-Length: 5",
            b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n",
        ),
    ),
    ("conflicting content-length in one field", resp(b"HTTP/1.1 200 OK", b"Content-Length: 5, 6")),
    (
        "conflicting content-length fields",
        resp(b"HTTP/1.1 200 OK", b"Content-Length: 5", b"Content-Length: 6"),
    ),
    ("negative content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: -1")),
    ("non-numeric content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: abc")),
    ("hex content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: 0x10")),
    ("plus-signed content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: +5")),
    ("empty content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length:")),
    ("content-length with a trailing comma", resp(b"HTTP/1.1 200 OK", b"Content-Length: 5,")),
    ("latin-1 superscript digit content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: \xb2")),
    ("huge content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: " + b"9" * 19)),
]

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

ERROR_CASES += [
    ("non-hex chunk size", CHUNKED_HEAD + b"zz\r\n"),
    ("negative chunk size", CHUNKED_HEAD + b"-1\r\n"),
    ("empty chunk size", CHUNKED_HEAD + b"\r\n"),
    ("0x-prefixed chunk size", CHUNKED_HEAD + b"0x5\r\nhello\r\n"),
    ("chunk size longer than 16 hex digits", CHUNKED_HEAD + b"1" * 17 + b"\r\n"),
    ("chunk size line too long", CHUNKED_HEAD + b"5;" + b"e" * 5000 + b"\r\n"),
    ("missing CRLF after chunk data", CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n"),
    ("bare CR after chunk data", CHUNKED_HEAD + b"5\r\nhello\rX0\r\n\r\n"),
    ("bad trailer line", CHUNKED_HEAD + b"0\r\nno colon here\r\n\r\n"),
]


# Each of these was accepted before issue 9 (regression tests: they fail on the old parser).
STRICT_CASES = [
    # A status code outside 100-999.
    ("status code 099", resp(b"HTTP/1.1 099 X")),
    ("status code 000", resp(b"HTTP/1.1 000 X")),
    ("status code 001 without a reason", resp(b"HTTP/1.1 001")),
    # A chunk-size line that is not exactly 1*HEXDIG [chunk-ext] CRLF (RFC 9112 7.1).
    ("chunk size line ending in a bare LF", CHUNKED_HEAD + b"5\nhello\r\n0\r\n\r\n"),
    ("last chunk line ending in a bare LF", CHUNKED_HEAD + b"0\n\r\n"),
    ("chunk size line ending in CR CR LF", CHUNKED_HEAD + b"5\r\r\nhello\r\n0\r\n\r\n"),
    ("space before the chunk size", CHUNKED_HEAD + b" 5\r\nhello\r\n0\r\n\r\n"),
    ("space after the chunk size", CHUNKED_HEAD + b"5 \r\nhello\r\n0\r\n\r\n"),
    ("tab after the chunk size", CHUNKED_HEAD + b"5\t\r\nhello\r\n0\r\n\r\n"),
    ("space after the last chunk size", CHUNKED_HEAD + b"0 \r\n\r\n"),
    ("space after a chunk extension", CHUNKED_HEAD + b"5;a=b \r\nhello\r\n0\r\n\r\n"),
    ("LF ending a chunk extension (Kestrel-like)", CHUNKED_HEAD + b"2;\nxx\r\n0\r\n\r\n"),
    ("LF in the middle of a chunk size", CHUNKED_HEAD + b"1\n0\r\n"),
    ("bare CR inside a chunk extension", CHUNKED_HEAD + b"5;a\rb\r\nhello\r\n0\r\n\r\n"),
    ("NUL inside a chunk extension", CHUNKED_HEAD + b"5;a=\x00\r\nhello\r\n0\r\n\r\n"),
    ("control byte in a chunk extension", CHUNKED_HEAD + b"5;a\x01=b\r\nhello\r\n0\r\n\r\n"),
    ("DEL in a quoted chunk extension", CHUNKED_HEAD + b'5;a="\x7f"\r\nhello\r\n0\r\n\r\n'),
    ("chunk extension without a name", CHUNKED_HEAD + b"5;\r\nhello\r\n0\r\n\r\n"),
    ("chunk extension without a value", CHUNKED_HEAD + b"5;a=\r\nhello\r\n0\r\n\r\n"),
    ("chunk extension value with a space", CHUNKED_HEAD + b"5;a=b c\r\nhello\r\n0\r\n\r\n"),
    ("unterminated quoted chunk extension", CHUNKED_HEAD + b'5;a="b\r\nhello\r\n0\r\n\r\n'),
    ("chunk extension ending in a backslash", CHUNKED_HEAD + b'5;a="b\\"\r\nhello\r\n0\r\n\r\n'),
    # The CRLF after chunk data, and the trailer section, are exactly CRLF.
    ("chunk data followed by a bare LF", CHUNKED_HEAD + b"5\r\nhello\n0\r\n\r\n"),
    ("empty trailer section ended by a bare LF", CHUNKED_HEAD + b"0\r\n\n"),
    ("trailer line ended by a bare LF", CHUNKED_HEAD + b"0\r\nX-T: 1\n\r\n"),
    ("trailer section ended by a bare LF", CHUNKED_HEAD + b"0\r\nX-T: 1\r\n\n"),
    # Control bytes other than HTAB in a field value (RFC 9110 5.5).
    *[
        (f"byte {byte:#04x} in a header value", resp(b"HTTP/1.1 200 OK", b"X-A: a%cb" % byte))
        for byte in (0x01, 0x08, 0x0B, 0x0C, 0x1B, 0x1F, 0x7F)
    ],
    ("control byte at the end of a header value", resp(b"HTTP/1.1 200 OK", b"X-A: ab\x1f")),
    ("control byte in a bare-LF head", b"HTTP/1.1 200 OK\nX-A: a\x01b\nContent-Length: 0\n\n"),
    ("control byte in an obs-fold line", resp(b"HTTP/1.1 200 OK", b"X-A: a", b" b\x7f")),
    ("control byte next to an obs-fold", resp(b"HTTP/1.1 200 OK", b"X-A: a\x02", b" b")),
    ("control byte in a trailer value", CHUNKED_HEAD + b"0\r\nX-T: a\x0bb\r\n\r\n"),
    # Transfer-Encoding on an HTTP/1.0 response (RFC 9112 6.1).
    ("HTTP/1.0 response with chunked", resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked")),
    ("HTTP/1.0 response with gzip", resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: gzip")),
    ("HTTP/1.0 204 with Transfer-Encoding", resp(b"HTTP/1.0 204 No", b"Transfer-Encoding: x")),
    # Transfer-Encoding lists that cannot be framed (RFC 9112 6.1, 7).
    ("chunked applied twice", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, chunked")),
    (
        "two chunked transfer-encoding fields",
        resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
    ),
    (
        "chunked before another coding",
        resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, gzip"),
    ),
    ("empty transfer-encoding", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding:")),
    ("transfer-encoding of commas", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: , ,")),
    # Content-Length forms: NBSP and NEL are obs-text, not white space.
    ("NBSP in a content-length list", resp(b"HTTP/1.1 200 OK", b"Content-Length: 5,\xa05")),
    ("NEL in a content-length list", resp(b"HTTP/1.1 200 OK", b"Content-Length: 5, 5\x85")),
]

# Checked while there: these were already errors, and stay so.
STRICT_CASES += [
    ("control byte in the reason phrase", resp(b"HTTP/1.1 200 O\x01K")),
    ("DEL in the reason phrase", resp(b"HTTP/1.1 200 OK\x7f")),
    ("NUL in the reason phrase", resp(b"HTTP/1.1 200 \x00")),
    ("LF inside a chunk extension", CHUNKED_HEAD + b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    ("junk after the chunk size", CHUNKED_HEAD + b"5x\r\nhello\r\n0\r\n\r\n"),
    ("space inside the chunk size", CHUNKED_HEAD + b"1 0\r\n"),
    ("content-length with a space inside", resp(b"HTTP/1.1 200 OK", b"Content-Length: 1 0")),
    ("content-length with a leading comma", resp(b"HTTP/1.1 200 OK", b"Content-Length: ,5")),
]


@pytest.mark.parametrize(("name", "data"), STRICT_CASES, ids=[c[0] for c in STRICT_CASES])
def test_framing_and_field_bytes_are_checked_as_strictly_as_h11(name: str, data: bytes) -> None:
    tr_error([GET], data)


BODILESS_STRICT_CASES = [
    (HEAD, resp(b"HTTP/1.1 200 OK", b"Content-Length: abc")),
    (HEAD, resp(b"HTTP/1.1 200 OK", b"Content-Length: 1, 2")),
    (HEAD, resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, gzip")),
    (GET, resp(b"HTTP/1.1 304 Not Modified", b"Content-Length: -1")),
    (GET, resp(b"HTTP/1.1 204 No Content", b"Transfer-Encoding:")),
    (HEAD, resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked")),
]


@pytest.mark.parametrize(
    ("method", "data"),
    BODILESS_STRICT_CASES,
    ids=[
        "HEAD bad CL",
        "HEAD two CL",
        "HEAD chunked first",
        "304 bad CL",
        "204 empty TE",
        "1.0 HEAD TE",
    ],
)
def test_framing_fields_of_a_bodiless_response_are_checked_too(method: bytes, data: bytes) -> None:
    # As h11 does: a framing field is validated whether or not it frames a body.
    tr_error([method], data)


@pytest.mark.parametrize(("name", "data"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_malformed_response_raises_protocol_error(name: str, data: bytes) -> None:
    tr_error([GET], data)


TRUNCATED_CASES = [
    ("EOF mid status line", b"HTTP/1.1 200"),
    ("EOF mid head", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
    ("EOF after a 1xx", b"HTTP/1.1 100 Continue\r\n\r\n"),
    ("EOF after a lone CR", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r"),
    ("truncated content-length body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
    ("content-length body missing entirely", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"),
    ("truncated chunked: no chunk at all", CHUNKED_HEAD),
    ("truncated chunked: mid size line", CHUNKED_HEAD + b"5"),
    ("truncated chunked: mid data", CHUNKED_HEAD + b"5\r\nhel"),
    ("truncated chunked: before data CRLF", CHUNKED_HEAD + b"5\r\nhello"),
    ("truncated chunked: between CR and LF", CHUNKED_HEAD + b"5\r\nhello\r"),
    ("truncated chunked: before last chunk", CHUNKED_HEAD + b"5\r\nhello\r\n"),
    ("truncated chunked: before trailers end", CHUNKED_HEAD + b"0\r\n"),
    ("truncated chunked: mid trailers", CHUNKED_HEAD + b"0\r\nX-T: 1\r\n"),
]


@pytest.mark.parametrize(("name", "data"), TRUNCATED_CASES, ids=[c[0] for c in TRUNCATED_CASES])
def test_eof_in_the_middle_of_a_response_raises_protocol_error(name: str, data: bytes) -> None:
    tr_error([GET], data, eof=True, match="closed")


LIMIT = 128
BIG = b"X-Big: " + b"b" * 200

OVER_LIMIT_CASES = [
    ("response head", resp(b"HTTP/1.1 200 OK", BIG, b"Content-Length: 0")),
    ("incomplete head already over the limit", b"HTTP/1.1 200 OK\r\n" + BIG),
    ("1xx head", resp(b"HTTP/1.1 103 Early Hints", BIG) + resp(b"HTTP/1.1 204 No Content")),
    ("trailers", CHUNKED_HEAD + b"0\r\n" + BIG + b"\r\n\r\n"),
    ("incomplete trailers", CHUNKED_HEAD + b"0\r\n" + BIG),
]


@pytest.mark.parametrize(("name", "data"), OVER_LIMIT_CASES, ids=[c[0] for c in OVER_LIMIT_CASES])
def test_a_block_over_max_head_size_raises_protocol_error(name: str, data: bytes) -> None:
    tr_error([GET], data, max_head_size=LIMIT, match="max_head_size")


def test_the_same_blocks_pass_with_the_default_limit() -> None:
    for _, data in OVER_LIMIT_CASES[:1] + OVER_LIMIT_CASES[2:4]:
        events, _ = run([GET], [data], eof=False)
        assert isinstance(events[-1], EndOfResponse)


def test_more_than_100_1xx_responses_raise_protocol_error() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_INFORMATIONAL + 1)
    tr_error([GET], data + b"HTTP/1.1 204 No Content\r\n\r\n", match="1xx")


def test_a_response_with_no_request_outstanding_raises_protocol_error() -> None:
    tr_error([], b"HTTP/1.1 204 No Content\r\n\r\n", match="no request outstanding")


def test_after_an_error_the_parser_raises_again_even_with_good_input() -> None:
    parser = ResponseParser()
    parser.expect(GET)
    parser.feed(b"HTTP/9.9 200 OK\r\n\r\n")
    with pytest.raises(ProtocolError) as first:
        parser.next_event()
    parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    parser.expect(GET)
    for _ in range(3):
        with pytest.raises(ProtocolError) as again:
            parser.next_event()
        assert again.value is first.value
    parser.feed_eof()
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_an_error_mid_body_is_raised_after_the_good_events() -> None:
    parser = ResponseParser()
    parser.expect(GET)
    parser.feed(CHUNKED_HEAD + b"3\r\nabc\r\nzz\r\n")
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.next_event() == BodyChunk(b"abc")
    with pytest.raises(ProtocolError):
        parser.next_event()
    with pytest.raises(ProtocolError):
        parser.next_event()


# -- EOF at a boundary and byte accounting -------------------------------------


def test_eof_with_nothing_buffered_gives_peer_closed() -> None:
    parser = ResponseParser()
    parser.expect(GET)
    assert parser.next_event() is NEED_DATA
    parser.feed_eof()
    assert parser.next_event() == PeerClosed()
    assert parser.next_event() == PeerClosed()
    assert parser.bytes_consumed == 0


def test_eof_after_a_complete_keep_alive_response_gives_peer_closed() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    events, parser = run([GET, GET], [data], eof=True)
    assert events == [head(200, headers=CL5), body(b"hello"), end(), PeerClosed()]
    assert parser.pending == 1  # the second request was never answered


def test_eof_after_stray_crlf_still_gives_peer_closed() -> None:
    events, _ = run([GET], [b"\r\n"], eof=True)
    assert events == [PeerClosed()]


def test_eof_with_nothing_expected_gives_peer_closed() -> None:
    events, _ = run([], [], eof=True)
    assert events == [PeerClosed()]


def test_bytes_consumed_counts_every_byte_of_each_response() -> None:
    first = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
    second = CHUNKED_HEAD + b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    parser = ResponseParser()
    parser.expect(GET)
    parser.expect(GET)
    parser.feed(first + second)
    while not isinstance(parser.next_event(), EndOfResponse):
        pass
    assert parser.bytes_consumed == len(first)
    while not isinstance(parser.next_event(), EndOfResponse):
        pass
    assert parser.bytes_consumed == len(first) + len(second)
    assert parser.next_event() is NEED_DATA


def test_a_long_pipeline_compacts_its_buffer_and_keeps_counting() -> None:
    one = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    count = 200  # well past the 64 KiB compaction threshold
    events, parser = run([GET] * count, [one * count], eof=False)
    assert len(events) == 3 * count
    assert all(e == body(b"x" * 1000) for e in events[1::3])
    assert parser.bytes_consumed == len(one) * count
    assert parser.buffered == 0


def test_in_response_tracks_whether_a_response_has_begun() -> None:
    parser = ResponseParser()
    parser.expect(GET)
    assert not parser.in_response
    parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert parser.in_response
    assert isinstance(parser.next_event(), Informational)
    assert parser.in_response
    parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert isinstance(parser.next_event(), ResponseHead)
    assert isinstance(parser.next_event(), EndOfResponse)
    assert not parser.in_response


def test_unsolicited_counts_bytes_that_no_expected_response_accounts_for() -> None:
    parser = ResponseParser()
    assert parser.unsolicited == 0
    parser.feed(b"\r\nHTTP/1.1 204")
    assert parser.unsolicited == 14  # even a stray CRLF is unasked for
    parser.expect(GET)
    assert parser.unsolicited == 0
    parser.feed(b" No Content\r\n\r\nextra")
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.unsolicited == 0  # the response is not over yet
    assert isinstance(parser.next_event(), EndOfResponse)
    assert parser.unsolicited == 5
    assert parser.next_event() is NEED_DATA  # not a whole head: no error yet


# -- max_body_size --------------------------------------------------------------

LIMIT_MATCH = r"response body larger than max_body_size \(10 bytes\)"
TEN = b"0123456789"

BODY_LIMIT_CASES = [
    ("content-length over the limit", resp(b"HTTP/1.1 200 OK", b"Content-Length: 11")),
    ("huge content-length", resp(b"HTTP/1.1 200 OK", b"Content-Length: " + b"9" * 18)),
    ("one chunk over the limit", CHUNKED_HEAD + b"b\r\n"),
    ("huge chunk size", CHUNKED_HEAD + b"ffffffffffffffff\r\n"),
    ("chunks adding up past the limit", CHUNKED_HEAD + b"6\r\n012345\r\n5\r\n"),
    ("read until close past the limit", resp(b"HTTP/1.1 200 OK", body=TEN + b"!")),
    (
        "unchunked transfer-encoding past the limit",
        resp(b"HTTP/1.1 200 OK", b"TE: x", body=TEN * 2),
    ),
]


@pytest.mark.parametrize(("name", "data"), BODY_LIMIT_CASES, ids=[c[0] for c in BODY_LIMIT_CASES])
def test_a_body_over_max_body_size_raises_protocol_error(name: str, data: bytes) -> None:
    tr_error([GET], data, max_body_size=10, match=LIMIT_MATCH)


def test_a_declared_length_over_max_body_size_fails_before_any_body_byte() -> None:
    for data in (resp(b"HTTP/1.1 200 OK", b"Content-Length: 11"), CHUNKED_HEAD + b"b\r\n"):
        parser = ResponseParser(max_body_size=10)
        parser.expect(GET)
        parser.feed(data)
        with pytest.raises(ProtocolError, match=LIMIT_MATCH):
            drain(parser)
        assert parser.buffered == 0  # nothing of the body had come


def test_chunks_past_max_body_size_fail_at_the_size_line_after_the_good_chunks() -> None:
    parser = ResponseParser(max_body_size=10)
    parser.expect(GET)
    parser.feed(CHUNKED_HEAD + b"6\r\n012345\r\n")
    assert [type(e) for e in drain(parser)] == [ResponseHead, BodyChunk]
    parser.feed(b"5\r\n")
    with pytest.raises(ProtocolError, match=LIMIT_MATCH):
        parser.next_event()


BODY_AT_LIMIT_CASES = [
    Case(
        "content-length at the limit",
        resp(b"HTTP/1.1 200 OK", b"Content-Length: 10", body=TEN),
        [head(200, headers=[("content-length", "10")]), body(TEN), end()],
    ),
    Case(
        "chunks adding up to the limit",
        CHUNKED_HEAD + b"6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n",
        [head(200, headers=CHUNKED), body(TEN), end()],
    ),
    Case(
        "read until close at the limit",
        resp(b"HTTP/1.1 200 OK", body=TEN),
        [head(200, keep_alive=False), body(TEN), end(), PeerClosed()],
        eof=True,
    ),
    Case(
        "HEAD response declaring more than the limit",
        resp(b"HTTP/1.1 200 OK", b"Content-Length: 1000"),
        [head(200, headers=[("content-length", "1000")]), end()],
        methods=[HEAD],
    ),
    Case(
        "304 declaring more than the limit",
        resp(b"HTTP/1.1 304 Not Modified", b"Content-Length: 1000"),
        [head(304, "Not Modified", [("content-length", "1000")]), end()],
    ),
    Case(
        "the limit holds per response",
        resp(b"HTTP/1.1 200 OK", b"Content-Length: 10", body=TEN) * 2,
        [head(200, headers=[("content-length", "10")]), body(TEN), end()] * 2,
        methods=[GET, GET],
    ),
]


@pytest.mark.parametrize("case", BODY_AT_LIMIT_CASES, ids=lambda c: c.id)
def test_a_body_of_max_body_size_passes(case: Case) -> None:
    tr(case.methods, case.data, case.expected, eof=case.eof, max_body_size=10)


def test_max_body_size_zero_allows_only_empty_bodies() -> None:
    empty = resp(b"HTTP/1.1 200 OK", b"Content-Length: 0")
    chunked = CHUNKED_HEAD + b"0\r\n\r\n"
    events, _ = run([GET, GET], [empty + chunked], eof=False, max_body_size=0)
    assert [type(e) for e in events] == [ResponseHead, EndOfResponse] * 2
    tr_error([GET], resp(b"HTTP/1.1 200 OK", b"Content-Length: 1"), max_body_size=0)
    tr_error([GET], CHUNKED_HEAD + b"1\r\n", max_body_size=0)


def test_a_body_read_past_the_parser_at_max_body_size_passes() -> None:
    parser = ResponseParser(max_body_size=10)
    parser.expect(GET)
    parser.expect(GET)
    one = resp(b"HTTP/1.1 200 OK", b"Content-Length: 10")
    parser.feed(one + b"0123")
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.body_remaining == 10
    target = bytearray(10)
    with memoryview(target) as view:
        assert parser.read_body_into(view) == 4
    parser.body_received(6)  # the owner read the rest from the socket itself
    target[4:] = b"456789"
    assert parser.next_event() == end()
    parser.feed(one + TEN)
    assert isinstance(parser.next_event(), ResponseHead)
    assert parser.take_whole_body() == TEN
    assert parser.bytes_consumed == 2 * (len(one) + 10)


def test_a_negative_max_body_size_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="max_body_size"):
        ResponseParser(max_body_size=-1)
