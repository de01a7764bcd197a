"""PURE parsing of field lines (RFC 9110 §5, RFC 9112 §5) and the body framing they set.

Used by the response parser for heads and trailers. The usual shape of a head
(CRLF only, no obs-fold, no control byte) takes one ``findall``; anything else
goes through per-line checks.

RFC 9110 §5.5: "field-value = *field-content ... field-vchar = VCHAR /
obs-text", with SP and HTAB between; so every control byte but HTAB (NUL,
0x01-0x08, 0x0A-0x1F, DEL) is rejected in a value, and obs-text (0x80-0xFF)
is kept, decoded as latin-1. h11 lets most of them through (0x01-0x08,
0x0E-0x1F and DEL; its issue #57); this module follows the RFC.

:func:`body_framing` applies RFC 9112 §6.3 to Connection, Content-Length and
Transfer-Encoding.
"""

from __future__ import annotations

import re
from typing import Final

from fusco_actor._exceptions import ProtocolError
from fusco_actor._headers import Headers

__all__ = [
    "BY_LENGTH",
    "CHUNKED",
    "NO_BODY",
    "UNTIL_CLOSE",
    "body_framing",
    "content_length",
    "framing_fields",
    "has_token",
    "is_chunked",
    "parse_fields",
    "parse_head_block",
    "split_lines",
]

# RFC 9110 §5.1: field-name = token
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-vchar / obs-text / SP / HTAB; every other control byte is invalid.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# The control bytes other than HTAB, CR and LF (whose counts are checked apart):
# deleting them with bytes.translate is one C pass, three times cheaper than a
# regex character-class search over a usual head.
_CONTROLS: Final = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
# RFC 9112 §5.2: obs-fold, a line that continues the previous field's value.
_OBS_FOLD = re.compile(rb"\n[\t ]")
# One field line of the usual shape: name, colon, value (leading SP/HTAB dropped), CRLF.
_FIELD_LINE = re.compile(rb"([^:\r\n]*):[ \t]*([^\r\n]*)\r\n")
_WS: Final = (b" ", b"\t")

_NAME_CACHE: dict[bytes, str] = {}


def _lower_name(raw: bytes) -> str:
    """Return the lower-case ``str`` of a header name, cached for common names."""
    name = _NAME_CACHE.get(raw)
    if name is None:
        if _TOKEN.fullmatch(raw) is None:
            raise ProtocolError(f"invalid header name {raw[:64]!r}")
        name = raw.decode("ascii").lower()
        if len(_NAME_CACHE) < 1024:
            _NAME_CACHE[raw] = name
    return name


def parse_fields(lines: list[bytes]) -> Headers:
    """Parse header (or trailer) lines, already split and without CR/LF.

    Obs-fold continuation lines are unfolded into the previous value with one
    space, as RFC 9112 §5.2 asks of a user agent.

    Raises:
        ProtocolError: a line without a colon, a name that is not a token,
            white space before the colon, a bad byte in a value.
    """
    pairs: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: replace each obs-fold with one or more SP.
            if not pairs:
                raise ProtocolError("obs-fold line before any header")
            name, value = pairs[-1]
            extra = line.strip(b" \t")
            if _BAD_VALUE.search(extra):
                raise ProtocolError(f"invalid byte in header {name!r}")
            if extra:  # a blank continuation must not leave a trailing space
                more = extra.decode("latin-1")
                pairs[-1] = (name, f"{value} {more}" if value else more)
            continue
        colon = line.find(b":")
        if colon <= 0:
            raise ProtocolError(f"malformed header line {line[:64]!r}")
        # RFC 9112 §5.1: no whitespace is allowed between field name and colon.
        name = _lower_name(line[:colon])
        raw_value = line[colon + 1 :].strip(b" \t")
        if _BAD_VALUE.search(raw_value):
            raise ProtocolError(f"invalid byte in header {name!r}")
        pairs.append((name, raw_value.decode("latin-1")))
    return Headers(pairs)


_FRAMING: Final = {"connection": 0, "transfer-encoding": 1, "content-length": 2}


def framing_fields(headers: Headers) -> tuple[str | None, str | None, str | None]:
    """Return the Connection, Transfer-Encoding and Content-Length values in one pass.

    Repeats are joined with ", " (RFC 9110 §5.3), as ``Headers.__getitem__`` does.
    """
    found: list[str | None] = [None, None, None]
    for name, value in headers:
        slot = _FRAMING.get(name)
        if slot is not None:
            old = found[slot]
            found[slot] = value if old is None else f"{old}, {value}"
    return found[0], found[1], found[2]


def content_length(value: str) -> int:
    """Return the length a Content-Length field value declares.

    RFC 9110 §8.6: ``Content-Length = 1*DIGIT``; RFC 9112 §6.3 rule 5: a list
    of identical values (``5, 5``, or the field repeated) is that one value.
    Only SP and HTAB are white space here: ``str.strip()`` would also drop
    latin-1 NBSP (0xA0) and NEL (0x85), which are obs-text, not OWS.

    Raises:
        ProtocolError: not one decimal number of at most 18 digits, or a list
            of different ones.
    """
    number = value
    if "," in value:
        values = {v.strip(" \t") for v in value.split(",")}
        if len(values) != 1:
            raise ProtocolError(f"conflicting Content-Length values {value[:64]!r}")
        number = values.pop()
    # str.isdigit() also accepts latin-1 '\xb2' etc., which int() rejects.
    if not (number.isascii() and number.isdigit()) or len(number) > 18:
        raise ProtocolError(f"invalid Content-Length {value[:64]!r}")
    return int(number)


def is_chunked(value: str) -> bool:
    """Return whether a Transfer-Encoding value ends in chunked; else the body is read to close.

    RFC 9112 §6.3 rule 4: "If a Transfer-Encoding header field is present in a
    response and the chunked transfer coding is not the final encoding, the
    message body length is determined by reading the connection until it is
    closed by the server." Empty list elements are ignored (RFC 9110 §5.6.1).

    Raises:
        ProtocolError: no coding at all, or chunked other than last or more
            than once (RFC 9112 §7: "A sender MUST NOT apply the chunked
            transfer coding more than once to a message body").
    """
    codings = [c for c in (c.strip(" \t").lower() for c in value.split(",")) if c]
    if not codings:
        raise ProtocolError("empty Transfer-Encoding")
    if "chunked" in codings[:-1]:
        raise ProtocolError(f"chunked is not only the final transfer coding in {value[:64]!r}")
    return codings[-1] == "chunked"


# How the body of a final response is framed (RFC 9112 §6.3).
NO_BODY, BY_LENGTH, CHUNKED, UNTIL_CLOSE = range(4)


def body_framing(method: bytes, code: int, version: str, headers: Headers) -> tuple[int, int, bool]:
    """Return a final response's body framing, its Content-Length (else 0), and keep-alive.

    Raises:
        ProtocolError: a bad Content-Length or Transfer-Encoding (checked on
            bodiless responses too, as h11 does), Transfer-Encoding on
            HTTP/1.0 (RFC 9112 §6.1), or both fields on a response with a body.
    """
    connection, te, cl = framing_fields(headers)
    if version != "HTTP/1.0":  # RFC 9110 §2.5: a later 1.x minor behaves as 1.1
        keep_alive = not has_token(connection, "close")
    else:
        keep_alive = has_token(connection, "keep-alive")
        if te is not None:
            raise ProtocolError("HTTP/1.0 response with Transfer-Encoding")
    chunked = te is not None and is_chunked(te)
    length = content_length(cl) if cl is not None else None
    # RFC 9112 §6.3 rules 1-2: no body for HEAD, 1xx, 204, 304, CONNECT 2xx.
    if (
        method == b"HEAD"
        or code < 200
        or code in (204, 304)
        or (method == b"CONNECT" and code < 300)
    ):
        return NO_BODY, 0, keep_alive and code != 101
    if te is not None:
        # RFC 9112 §6.3 rule 3: both present is a request-smuggling vector.
        if length is not None:
            raise ProtocolError("response has both Transfer-Encoding and Content-Length")
        # Rule 4: a final coding other than chunked is read until close.
        return (CHUNKED, 0, keep_alive) if chunked else (UNTIL_CLOSE, 0, False)
    if length is not None:
        return BY_LENGTH, length, keep_alive
    return UNTIL_CLOSE, 0, False  # rule 8: read until the server closes


def parse_head_block(block: bytes) -> tuple[bytes, Headers]:
    """Split a head block (ending in a blank line) into its first line and its fields.

    The fast path takes the usual shape — CRLF line ends only, no obs-fold, no
    control byte — with one ``findall`` for all field lines; anything else
    goes through the general, per-line checks of :func:`parse_fields`.

    Raises:
        ProtocolError: a malformed field line or a bad byte in a value (the
            first line is returned unchecked, for the caller to check).
    """
    crlf = block.count(b"\r\n")
    if (
        crlf == block.count(b"\n")
        and crlf == block.count(b"\r")
        and _OBS_FOLD.search(block) is None
        and len(block.translate(None, _CONTROLS)) == len(block)
    ):
        first_end = block.find(b"\r\n")
        found = _FIELD_LINE.findall(block, first_end + 2)
        if len(found) != crlf - 2:  # a skipped line has no colon
            raise ProtocolError("malformed header line")
        cache = _NAME_CACHE
        pairs = [
            (
                cache.get(n) or _lower_name(n),
                (v.rstrip(b" \t") if v[-1:] in _WS else v).decode("latin-1"),
            )
            for n, v in found
        ]
        return block[:first_end], Headers(pairs)
    lines = split_lines(block)
    return lines[0], parse_fields([line for line in lines[1:] if line])


def split_lines(block: bytes) -> list[bytes]:
    """Split a head block on LF, dropping one trailing CR per line."""
    lines = block.split(b"\n")
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def has_token(value: str | None, token: str) -> bool:
    """Return whether a comma-separated header value lists ``token`` (any case)."""
    if not value:
        return False
    if "," not in value:
        return value.strip().lower() == token
    return any(part.strip().lower() == token for part in value.split(","))
