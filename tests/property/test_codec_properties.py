"""Hypothesis properties of the sans-I/O codec (parser, encoder, header validation).

1. A valid response split anywhere parses to the same events as when fed whole.
2. Any bytes either parse or raise ProtocolError, nothing else (h11's AFL invariant);
   Content-Length is accepted exactly when it is one decimal number, a chunk-size
   line exactly when a hand-written RFC 9112 §7.1 reader takes it, a field value
   exactly when it has no control byte but HTAB.
3. An encoded request survives a round trip through a minimal request parser.
4. validate_headers returns its input as bytes or raises BadArgument (h2).
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusco_actor._encoder import (
    LAST_CHUNK,
    chunk_frames,
    encode_head,
    prepare_request,
    validate_headers,
)
from fusco_actor._events import (
    BodyChunk,
    EndOfResponse,
    Informational,
    PeerClosed,
    ResponseHead,
)
from fusco_actor._exceptions import BadArgument, ProtocolError
from fusco_actor._headers import Headers
from fusco_actor._parser import ResponseParser
from tests.codec_helpers import drain, merge_chunks

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TCHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Parser-side and encoder-side framing names that generated headers must not collide with.
RESERVED = {"content-length", "transfer-encoding", "connection", "host", "cookie"}

tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)
field_names = tokens.filter(lambda n: n.lower() not in RESERVED)
# field-vchar / SP / HTAB / obs-text, trimmed as the parser trims (only SP and HTAB).
field_values = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\x7f", min_codepoint=0x20)
    | st.just("\t"),
    max_size=16,
).map(lambda v: v.strip(" \t"))
reasons = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\x7f", min_codepoint=0x20),
    max_size=16,
).map(lambda r: r.strip(" \t"))  # the parser trims SP and HTAB, not obs-text


# -- helpers -------------------------------------------------------------------


def parse_pieces(methods: list[bytes], pieces: list[bytes]) -> tuple[list[object], int]:
    parser = ResponseParser()
    for method in methods:
        parser.expect(method)
    events: list[object] = []
    for piece in pieces:
        parser.feed(piece)
        events += drain(parser)
    parser.feed_eof()
    events += drain(parser)
    return merge_chunks(events), parser.bytes_consumed


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- 1. valid responses split anywhere ----------------------------------------------


@dataclass
class WireResponse:
    method: bytes
    wire: bytes
    expected: list[object]
    until_close: bool


# Valid chunk extensions (RFC 9112 7.1.1): BWS around ";" and "=", token or quoted-string.
CHUNK_EXTS = [
    "",
    ";a=b",
    " ; x",
    ';q="a \\" b"',
    "\t;\tn\t=\tv;m",
    ';e="\xe9\t"',
    ';x=""',
    ";!#$%&'*+-.^_`|~",
]


@st.composite
def responses(draw: st.DrawFn) -> WireResponse:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"]))
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD"]))
    status = draw(st.sampled_from([200, 201, 204, 206, 304, 404, 500]) | st.integers(200, 599))
    reason = draw(reasons)
    headers = draw(st.lists(st.tuples(field_names, field_values), max_size=5))
    # Obs-fold continuation lines for some of them (RFC 9112 5.2), e.g. ["", "more"].
    folds = draw(st.lists(st.lists(field_values, max_size=2), max_size=len(headers)))
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive, Upgrade"]))
    # RFC 9112 6.1: Transfer-Encoding on an HTTP/1.0 response is faulty framing.
    framings = ["length", "chunked", "close"] if version == "HTTP/1.1" else ["length", "close"]
    framing = draw(st.sampled_from(framings))
    body = draw(st.binary(max_size=300))
    trailers = draw(st.lists(st.tuples(field_names, field_values), max_size=2))
    interim = draw(st.lists(st.sampled_from([100, 102, 103]), max_size=3))

    def line(text: str) -> bytes:
        return text.encode("latin-1") + eol

    wire = b""
    expected: list[object] = []
    for code in interim:
        wire += line(f"HTTP/1.1 {code} Interim") + eol
        expected.append(Informational(code, "Interim", Headers()))

    all_headers = list(headers)
    wire_values = [value.encode("latin-1") for _, value in headers]
    for i, extra in enumerate(folds):
        pieces = [headers[i][1], *extra]
        fold = eol + draw(st.sampled_from([b" ", b"\t", b"  "]))
        wire_values[i] = fold.join(piece.encode("latin-1") for piece in pieces)
        all_headers[i] = (headers[i][0], " ".join(piece for piece in pieces if piece))
    if connection is not None:
        all_headers.append(("Connection", connection))
    if framing == "length":
        all_headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        all_headers.append(("Transfer-Encoding", "chunked"))
    status_line = f"{version} {status} {reason}" if reason else f"{version} {status}"
    wire += line(status_line)
    for i, (name, value) in enumerate(all_headers):
        raw = wire_values[i] if i < len(wire_values) else value.encode("latin-1")
        wire += name.encode("latin-1") + b": " + raw + eol
    wire += eol

    tokens_ = [t.strip().lower() for t in (connection or "").split(",")]
    keep_alive = "close" not in tokens_ if version == "HTTP/1.1" else "keep-alive" in tokens_
    has_body = method != b"HEAD" and status not in (204, 304)
    got_trailers: list[tuple[str, str]] = []
    until_close = False
    if has_body:
        if framing == "length":
            wire += body
        elif framing == "chunked":
            cuts = draw(st.lists(st.integers(0, len(body)), max_size=6))
            # Chunk framing is CRLF only, whatever the head used (RFC 9112 7.1).
            for chunk in split_at(body, cuts):
                size = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(len(chunk))
                ext = draw(st.sampled_from(CHUNK_EXTS))
                wire += f"{size}{ext}\r\n".encode("latin-1") + chunk + b"\r\n"
            wire += b"0" + draw(st.sampled_from(CHUNK_EXTS)).encode("latin-1") + b"\r\n"
            for name, value in trailers:
                wire += f"{name}: {value}\r\n".encode("latin-1")
            wire += b"\r\n"
            got_trailers = [(n.lower(), v) for n, v in trailers]
        else:
            wire += body
            keep_alive = False
            until_close = True
    lowered = [(n.lower(), v) for n, v in all_headers]
    expected.append(ResponseHead(status, reason, version, Headers(lowered), keep_alive))
    if has_body and body:
        expected.append(BodyChunk(body))
    expected += [EndOfResponse(Headers(got_trailers)), PeerClosed()]
    return WireResponse(method, wire, expected, until_close)


@SETTINGS
@given(response=responses(), data=st.data())
def test_a_valid_response_split_anywhere_parses_like_it_does_whole(
    response: WireResponse, data: st.DataObject
) -> None:
    whole, consumed = parse_pieces([response.method], [response.wire])
    assert whole == response.expected
    assert consumed == len(response.wire)
    cuts = data.draw(st.lists(st.integers(0, len(response.wire)), max_size=30), label="cuts")
    split, consumed = parse_pieces([response.method], split_at(response.wire, cuts))
    assert split == response.expected
    assert consumed == len(response.wire)


@settings(SETTINGS, max_examples=100)  # two responses per example: half as many
@given(first=responses(), second=responses(), data=st.data())
def test_two_pipelined_responses_split_anywhere_parse_like_each_alone(
    first: WireResponse, second: WireResponse, data: st.DataObject
) -> None:
    if first.until_close:
        return  # a read-until-close body would swallow the second response
    first_events = first.expected[:-1]  # no PeerClosed between them
    wire = first.wire + second.wire
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30), label="cuts")
    events, consumed = parse_pieces([first.method, second.method], split_at(wire, cuts))
    assert events == merge_chunks(first_events + second.expected)
    assert consumed == len(wire)


# -- 2. any bytes parse or raise ProtocolError -----------------------------------------


FRAGMENTS = [
    b"HTTP/1.1 ",
    b"HTTP/1.0 ",
    b"HTTP/2.0 ",
    b"100 Continue",
    b"200 OK",
    b"204 ",
    b"304",
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b" ",
    b"\t",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Connection: close",
    b"0",
    b"5",
    b"ffffffffffffffff",
    b"\xb2",
    b"\x00",
    b";",
    b",",
    b"-",
    b"abc",
    b"hello",
    b"\r\r\n",
    b"\x01",
    b"\x7f",
    b'"',
    b"=",
    b"0\r\n\r\n",
    b"5\r\nhello\r\n",
]
http_ish = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join)
VALUE_FRAGMENTS = [
    b"0",
    b"5",
    b"10",
    b"-1",
    b"1" * 19,
    b"\xb2",
    b"\xb9",
    b"\xa0",
    b"chunked",
    b"gzip",
    b"close",
    b"keep-alive",
    b",",
    b" ",
    b"\t",
    b"\x00",
    b"\r",
]
fuzz_values = st.lists(st.sampled_from(VALUE_FRAGMENTS) | st.binary(max_size=2), max_size=3)


@st.composite
def plausible_heads(draw: st.DrawFn) -> bytes:
    """A well-formed-looking head whose framing fields hold fuzzed values, then junk."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    status = draw(
        st.sampled_from(
            [
                b"HTTP/1.1 200 OK",
                b"HTTP/1.0 200 OK",
                b"HTTP/1.1 100 Continue",
                b"HTTP/1.1 204 No Content",
                b"HTTP/1.1 304 Not Modified",
                b"HTTP/1.1 101 Switching Protocols",
            ]
        )
    )
    names = st.sampled_from(
        [b"Content-Length", b"Content-Length", b"Transfer-Encoding", b"Connection", b"X-A", b" "]
    )
    fields = draw(st.lists(st.tuples(names, fuzz_values.map(b"".join)), max_size=4))
    head = status + eol + b"".join(n + b": " + v + eol for n, v in fields) + eol
    return head + draw(http_ish | st.binary(max_size=40))


methods_lists = st.lists(st.sampled_from([b"GET", b"HEAD", b"CONNECT", b"POST"]), max_size=3)


def feed_only_protocol_errors(methods: list[bytes], pieces: list[bytes]) -> None:
    """Feed, drain, close, drain: ProtocolError is the one exception allowed."""
    parser = ResponseParser(max_head_size=512)
    for method in methods:
        parser.expect(method)
    try:
        for piece in pieces:
            parser.feed(piece)
            drain(parser)
        parser.feed_eof()
        drain(parser)
    except ProtocolError:
        # Once broken, the parser stays broken.
        try:
            parser.next_event()
        except ProtocolError:
            return
        raise AssertionError("parser recovered after a ProtocolError") from None


@SETTINGS
@given(
    methods=methods_lists.filter(bool),
    blob=st.binary(max_size=600) | http_ish | plausible_heads(),
    data=st.data(),
)
def test_arbitrary_bytes_parse_or_raise_protocol_error(
    methods: list[bytes], blob: bytes, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(blob)), max_size=10), label="cuts")
    feed_only_protocol_errors(methods, split_at(blob, cuts))


mutations = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(min_value=0),
        st.binary(min_size=1, max_size=3) | st.sampled_from(FRAGMENTS),
    ),
    min_size=1,
    max_size=5,
)


def mutate(wire: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    buf = bytearray(wire)
    for op, where, what in edits:
        pos = where % (len(buf) + 1)
        if op == "insert":
            buf[pos:pos] = what
        elif op == "delete":
            del buf[pos : pos + len(what)]
        else:
            buf[pos : pos + len(what)] = what
    return bytes(buf)


@SETTINGS
@given(response=responses(), edits=mutations, data=st.data())
def test_mutated_valid_responses_parse_or_raise_protocol_error(
    response: WireResponse, edits: list[tuple[str, int, bytes]], data: st.DataObject
) -> None:
    blob = mutate(response.wire, edits)
    cuts = data.draw(st.lists(st.integers(0, len(blob)), max_size=10), label="cuts")
    methods = [response.method, *data.draw(methods_lists, label="more methods")]
    feed_only_protocol_errors(methods, split_at(blob, cuts))


# NBSP and NEL are obs-text, not OWS: str.strip() would wrongly drop them.
cl_values = st.text(alphabet="0123456789\xb2\xb9\xa0\x85 \t,+-x", max_size=8)


@SETTINGS
@given(values=st.lists(cl_values, min_size=1, max_size=3), body=st.binary(max_size=30))
def test_content_length_is_accepted_only_as_one_decimal_number(
    values: list[str], body: bytes
) -> None:
    # RFC 9110 8.6: Content-Length = 1*DIGIT; RFC 9112 6.3: identical repeats are one value.
    fields = b"".join(b"Content-Length: " + v.encode("latin-1") + b"\r\n" for v in values)
    wire = b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n" + body
    parts = {part.strip(" \t") for value in values for part in value.strip(" \t").split(",")}
    number = parts.pop() if len(parts) == 1 else ""
    valid = re.fullmatch("[0-9]{1,18}", number) is not None
    parser = ResponseParser()
    parser.expect(b"GET")
    parser.feed(wire)
    if not valid or int(number) > len(body):
        try:
            drain(parser)
            parser.feed_eof()  # a valid but unmet length fails only at EOF
            drain(parser)
        except ProtocolError:
            return
        raise AssertionError(f"accepted Content-Length {values!r} with {len(body)} bytes")
    events = [parser.next_event()]
    while not isinstance(events[-1], EndOfResponse):
        events.append(parser.next_event())
    length = int(number)
    assert isinstance(events[0], ResponseHead)
    assert merge_chunks(events[1:]) == [
        *([BodyChunk(body[:length])] if length else []),
        EndOfResponse(Headers()),
    ]
    assert parser.buffered == len(body) - length


# -- 2b. chunk-size lines and field values against hand-written oracles ----------------

HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")
TCHAR_BYTES = frozenset(TCHARS.encode())
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def oracle_chunk_size(line: bytes) -> int | None:
    """RFC 9112 7.1 read by hand: the size of ``chunk-size [ chunk-ext ] CRLF``, or None."""
    if not line.endswith(b"\r\n"):
        return None
    text, i = line[:-2], 0
    while i < len(text) and text[i] in HEXDIGITS:
        i += 1
    if not 1 <= i <= 16:
        return None
    size = int(text[:i], 16)

    def skip(j: int, allowed: frozenset[int]) -> int:
        while j < len(text) and text[j] in allowed:
            j += 1
        return j

    bws = frozenset(b" \t")
    while i < len(text):  # *( BWS ";" BWS name [ BWS "=" BWS value ] )
        i = skip(i, bws)
        if text[i : i + 1] != b";":
            return None
        start = i = skip(i + 1, bws)
        i = skip(i, TCHAR_BYTES)
        if i == start:
            return None
        j = skip(i, bws)
        if text[j : j + 1] != b"=":
            continue
        start = i = skip(j + 1, bws)
        if text[i : i + 1] != b'"':
            i = skip(i, TCHAR_BYTES)
            if i == start:
                return None
            continue
        i += 1  # quoted-string: qdtext / quoted-pair up to the closing DQUOTE
        while True:
            if i >= len(text):
                return None
            c = text[i]
            if c == 0x22:
                i += 1
                break
            if c == 0x5C:  # quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                i += 1
                if i >= len(text):
                    return None
                c = text[i]
            if c == 0x7F or (c < 0x20 and c != 0x09):  # the rest is qdtext or VCHAR
                return None
            i += 1
    return size


CHUNK_LINE_FRAGMENTS = [
    *(bytes([c]) for c in b'05aF;=" \t\\\r,x\x00\x01\x7f\xff'),
    b"1" * 16,
    b"name",
    b'"q d"',
    b'"\\"',
]
no_lf = st.binary(max_size=2).map(lambda b: b.replace(b"\n", b""))
chunk_sizes = st.sampled_from(
    [b"", b"0", b"1", b"a", b"F", b"10", b"0000", b"1" * 16, b"1" * 17, b" 1", b"-1", b"0x1"]
)
line_ends = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r\r\n", b" \r\n"])
bws = st.sampled_from([b"", b"", b" ", b"\t", b" \t "])
# Mostly good pieces of chunk-ext, sometimes a fragment or two random bytes instead.
ext_names = st.sampled_from([b"a", b"name", b"!#$%&'*+-.^_`|~"]) | st.sampled_from(
    CHUNK_LINE_FRAGMENTS
)
quoted = st.lists(
    st.sampled_from([b"a", b" ", b"\t", b"\xe9", b'\\"', b"\\\\", b"\\a", b";", b"="])
    | st.sampled_from(CHUNK_LINE_FRAGMENTS)
    | no_lf,
    max_size=4,
).map(lambda parts: b'"' + b"".join(parts) + b'"')
ext_values = st.sampled_from([b"v", b"12", b"x-y"]) | quoted | no_lf
extensions = st.lists(
    st.tuples(bws, bws, ext_names, st.none() | st.tuples(bws, bws, ext_values)).map(
        lambda p: p[0] + b";" + p[1] + p[2] + (p[3][0] + b"=" + p[3][1] + p[3][2] if p[3] else b"")
    ),
    max_size=3,
).map(b"".join)
random_tails = st.lists(st.sampled_from(CHUNK_LINE_FRAGMENTS) | no_lf, max_size=8).map(b"".join)
chunk_lines = st.tuples(chunk_sizes, extensions | random_tails, line_ends).map(b"".join)


def parse_strictly(pieces: list[bytes]) -> list[object]:
    """Feed, drain, close, drain; return the merged events (ProtocolError propagates)."""
    events, _ = parse_pieces([b"GET"], pieces)
    return events


@SETTINGS
@given(line=chunk_lines, data=st.data())
def test_a_chunk_size_line_is_accepted_exactly_as_the_rfc_grammar_says(
    line: bytes, data: st.DataObject
) -> None:
    size = oracle_chunk_size(line)
    # For a bad line, the body a lenient reader would expect: only the line can fail.
    lenient = re.match(rb"[ \t]*([0-9A-Fa-f]{1,16})", line)
    body_size = size if size is not None else int(lenient.group(1), 16) if lenient else 2
    payload = b"x" * body_size if body_size <= 300 else b""
    # A "0" line is the last chunk: only the empty trailer section follows it.
    wire = CHUNKED_HEAD + line + (payload + b"\r\n0\r\n\r\n" if body_size else b"\r\n")
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6), label="cuts")
    for pieces in ([wire], split_at(wire, cuts)):
        if size is None:
            try:
                parse_strictly(pieces)
            except ProtocolError:
                continue
            raise AssertionError(f"accepted chunk-size line {line!r}")
        parser = ResponseParser()
        parser.expect(b"GET")
        events: list[object] = []
        for piece in pieces:
            parser.feed(piece)
            events += drain(parser)
        if size > 300:  # the line was taken; the body is still to come
            assert [type(e) for e in events][:1] == [ResponseHead]
            continue
        assert merge_chunks(events)[1:] == [
            *([BodyChunk(payload)] if size else []),
            EndOfResponse(Headers()),
        ]


value_bytes = st.binary(max_size=6).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@SETTINGS
@given(
    value=value_bytes,
    where=st.sampled_from(["CRLF head", "LF head", "obs-fold", "trailer"]),
    data=st.data(),
)
def test_a_field_value_is_accepted_exactly_when_it_has_no_control_byte_but_htab(
    value: bytes, where: str, data: st.DataObject
) -> None:
    # RFC 9110 5.5: field-vchar = VCHAR / obs-text, with SP and HTAB between.
    valid = all(b == 0x09 or 0x20 <= b != 0x7F for b in value)
    field = b"X-V: a" + value + b"b"
    if where == "CRLF head":
        wire = b"HTTP/1.1 200 OK\r\n" + field + b"\r\nContent-Length: 0\r\n\r\n"
    elif where == "LF head":
        wire = b"HTTP/1.1 200 OK\n" + field + b"\nContent-Length: 0\n\n"
    elif where == "obs-fold":
        wire = b"HTTP/1.1 200 OK\r\nX-V: a\r\n " + value + b"b\r\nContent-Length: 0\r\n\r\n"
    else:
        wire = CHUNKED_HEAD + b"0\r\n" + field + b"\r\n\r\n"
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6), label="cuts")
    for pieces in ([wire], split_at(wire, cuts)):
        try:
            events = parse_strictly(pieces)
        except ProtocolError:
            assert not valid, f"rejected the value {value!r}"
            continue
        assert valid, f"accepted the value {value!r}"
        last, first = events[-2], events[0]
        assert isinstance(last, EndOfResponse)
        assert isinstance(first, ResponseHead)
        got = last.trailers if where == "trailer" else first.headers
        text = value.decode("latin-1")
        folded = text.lstrip(" \t")  # an obs-fold joins with one SP (RFC 9112 5.2)
        assert got["x-v"] == (f"a {folded}b" if where == "obs-fold" else f"a{text}b")


@SETTINGS
@given(
    code=st.integers(0, 999),
    reason=st.binary(max_size=6).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
def test_a_status_line_is_accepted_exactly_for_codes_100_to_999_and_clean_reasons(
    code: int, reason: bytes
) -> None:
    # RFC 9112 4: status-code = 3DIGIT (h11: 100-999); reason-phrase has no control but HTAB.
    wire = b"HTTP/1.1 %03d %s\r\nContent-Length: 0\r\n\r\n" % (code, reason)
    interim = 100 <= code < 200 and code != 101
    if interim:
        wire += b"HTTP/1.1 204 No Content\r\n\r\n"
    valid = code >= 100 and all(b == 0x09 or 0x20 <= b != 0x7F for b in reason)
    try:
        events = parse_strictly([wire])
    except ProtocolError:
        assert not valid, wire
        return
    assert valid, wire
    first = events[0]
    assert isinstance(first, Informational if interim else ResponseHead)
    assert (first.status, first.reason) == (code, reason.decode("latin-1").strip(" \t"))


# -- 1b. valid responses split at every offset ---------------------------------------


@settings(SETTINGS, max_examples=40)  # len(wire) + 1 parses per example
@given(response=responses())
def test_a_valid_response_split_at_every_offset_parses_like_it_does_whole(
    response: WireResponse,
) -> None:
    wire = response.wire
    for i in range(len(wire) + 1):
        events, consumed = parse_pieces([response.method], [wire[:i], wire[i:]])
        assert events == response.expected, i
        assert consumed == len(wire)


# -- 3. encode / parse round trip ----------------------------------------------------


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, sep, data = data.partition(b"\r\n")
        assert sep, "chunk size line without CRLF"
        assert re.fullmatch(rb"[0-9a-f]+", size_line), size_line
        size = int(size_line, 16)
        if size == 0:
            assert data == b"\r\n", "no trailers are sent, then nothing more"
            return out
        assert size > 0
        out += data[:size]
        assert data[size : size + 2] == b"\r\n"
        data = data[size + 2 :]


def parse_request(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    """A strict, minimal HTTP/1.1 request parser (the test's own, not the library's)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, "no blank line ends the head"
    lines = head.split(b"\r\n")
    for line in lines:
        assert b"\r" not in line
        assert b"\n" not in line
        assert b"\x00" not in line
    method, target, version = lines[0].split(b" ")
    assert version == b"HTTP/1.1"
    assert TOKEN.fullmatch(method)
    assert all(0x21 <= b < 0x7F for b in target), target
    fields: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        assert colon
        assert TOKEN.fullmatch(name), name
        fields.append((name, value.strip(b" \t")))
    framing = {
        n.lower(): v for n, v in fields if n.lower() in (b"content-length", b"transfer-encoding")
    }
    assert len(framing) <= 1, "never both Content-Length and Transfer-Encoding"
    if b"transfer-encoding" in framing:
        assert framing[b"transfer-encoding"].lower() == b"chunked"
        body = dechunk(rest)
    elif b"content-length" in framing:
        assert int(framing[b"content-length"]) == len(rest)
        body = rest
    else:
        assert rest == b""
        body = b""
    return method, target, fields, body


def percent_encode(path: str) -> bytes:
    return b"".join(
        ch.encode() if ord(ch) < 0x80 else b"".join(b"%%%02X" % b for b in ch.encode())
        for ch in path
    )


path_chars = st.characters(codec="utf-8", min_codepoint=0x21, exclude_characters="\x7f")
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.text(max_size=50),
    st.recursive(
        st.binary(max_size=20) | st.text(max_size=10),
        lambda leaf: st.lists(leaf, max_size=4),
        max_leaves=8,
    ),
    st.builds(lambda chunks: ("stream", chunks), st.lists(st.binary(max_size=40), max_size=5)),
)


def body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return b"".join(body_bytes(part) for part in body)


def maybe_bytes(text: str, as_bytes: bool) -> str | bytes:
    return text.encode("latin-1") if as_bytes else text


@SETTINGS
@given(
    method=tokens,
    path=st.text(alphabet=path_chars, max_size=30).map(lambda p: "/" + p),
    pairs=st.lists(st.tuples(field_names, field_values, st.booleans()), max_size=6),
    as_mapping=st.booleans(),
    body=bodies,
    caller_host=st.none() | st.just("caller.example"),
    jar_cookie=st.none() | st.just("k=v; k2=v2"),
    caller_cookie=st.booleans(),
)
def test_an_encoded_request_round_trips_through_a_request_parser(
    method: str,
    path: str,
    pairs: list[tuple[str, str, bool]],
    as_mapping: bool,
    body: Any,
    caller_host: str | None,
    jar_cookie: str | None,
    caller_cookie: bool,
) -> None:
    given_pairs: list[tuple[str | bytes, str | bytes]] = [
        (maybe_bytes(n, b), maybe_bytes(v, b)) for n, v, b in pairs
    ]
    if caller_host is not None:
        given_pairs.insert(0, ("Host", caller_host))
    if caller_cookie:
        given_pairs.append(("Cookie", "mine=1"))
    headers: Any = dict(given_pairs) if as_mapping else given_pairs
    expected_pairs = [
        (
            n if isinstance(n, bytes) else n.encode("latin-1"),
            v if isinstance(v, bytes) else v.encode("latin-1"),
        )
        for n, v in (headers.items() if as_mapping else headers)
    ]

    streamed = isinstance(body, tuple)
    payload = iter(body[1]) if streamed else body
    expected_body = body_bytes(body[1] if streamed else body)

    prepared = prepare_request(method, path, headers, payload)
    wire = encode_head(prepared, b"origin.example:8080", jar_cookie)
    if prepared.stream is None:
        wire += bytes(prepared.body)
    else:
        for chunk in prepared.stream:
            wire += chunk_frames(chunk)
        wire += LAST_CHUNK

    got_method, got_target, got_fields, got_body = parse_request(wire)
    assert got_method == method.encode().upper()
    assert got_target == percent_encode(path)
    assert got_body == expected_body

    want: list[tuple[bytes, bytes]] = []
    if caller_host is None:
        want.append((b"Host", b"origin.example:8080"))
    want += expected_pairs
    if streamed:
        want.append((b"Transfer-Encoding", b"chunked"))
    elif expected_body or got_method in (b"POST", b"PUT", b"PATCH"):
        want.append((b"Content-Length", str(len(expected_body)).encode()))
    if jar_cookie and not caller_cookie:
        want.append((b"Cookie", jar_cookie.encode()))
    assert got_fields == want
    assert prepared.idempotent == (
        got_method in (b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE")
    )


# -- 4. header validation returns its input or raises BadArgument ------------------------


def acceptable(name: str | bytes, value: str | bytes) -> tuple[bytes, bytes] | None:
    """The oracle: the pair as bytes when it is valid, else None."""
    try:
        raw_name = name if isinstance(name, bytes) else name.encode("latin-1")
        raw_value = value if isinstance(value, bytes) else value.encode("latin-1")
    except UnicodeEncodeError:
        return None
    if not TOKEN.fullmatch(raw_name) or re.search(rb"[\r\n\x00]", raw_value):
        return None
    return raw_name, raw_value


any_text = st.text(max_size=12) | tokens | st.binary(max_size=12)
any_value = (
    st.text(max_size=12)
    | field_values
    | st.binary(max_size=12)
    | st.sampled_from(["a\r\nb", "\n", "x\x00", "caf\xe9", "\u20ac"])
)


@SETTINGS
@given(pairs=st.lists(st.tuples(any_text, any_value), max_size=4))
def test_validate_headers_returns_its_input_as_bytes_or_raises_bad_argument(
    pairs: list[tuple[str | bytes, str | bytes]],
) -> None:
    oracle = [acceptable(n, v) for n, v in pairs]
    try:
        result = validate_headers(pairs)
    except BadArgument:
        assert None in oracle, "rejected although every pair is valid"
        return
    assert None not in oracle, "accepted an invalid pair"
    assert result == oracle


@SETTINGS
@given(name=any_text, value=any_value)
def test_prepare_request_puts_only_valid_headers_on_the_wire(
    name: str | bytes, value: str | bytes
) -> None:
    pair = acceptable(name, value)
    try:
        prepared = prepare_request("GET", "/", [(name, value)], b"")
    except BadArgument:
        if pair is None:
            return
        lname = pair[0].lower()
        # Framing headers have their own rules; anything else must be accepted.
        assert lname in (b"content-length", b"transfer-encoding"), pair
        return
    assert pair is not None
    assert prepared.fields.startswith(pair[0] + b": " + pair[1] + b"\r\n")
