"""PURE request serialisation and validation of path, method, headers and body.

Everything here runs in the caller's thread, before any message is sent, so a
bad argument raises :class:`BadArgument` from the call itself and nothing
reaches the wire. What depends on the connection (``Host``, ``Cookie``, the
absolute-form target used through a proxy) is added by :func:`encode_head` in
the client actor.
"""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fusco_actor._exceptions import BadArgument

__all__ = [
    "IDEMPOTENT_METHODS",
    "PreparedRequest",
    "chunk_frames",
    "encode_head",
    "prepare_request",
]

IDEMPOTENT_METHODS: Final = frozenset({b"GET", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE"})
_BODY_METHODS: Final = frozenset({b"POST", b"PUT", b"PATCH"})
STREAM_READ_SIZE: Final = 65_536

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# http.client's rule for request targets: no control byte or space.
_BAD_PATH = re.compile(rb"[\x00-\x20\x7f]")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# RFC 9110 §5.5: CR, LF and NUL are never allowed in a field value (no injection).
_BAD_VALUE = re.compile(rb"[\x00\r\n]")

BytesLike = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """A validated request, ready to be written by the client actor.

    ``fields`` holds the caller's header lines (each ending in CRLF) plus any
    ``Content-Length``/``Transfer-Encoding`` this module added. ``body`` is the
    whole body as bytes, or a stream of chunks when ``streamed``.
    ``stream_length`` is the ``Content-Length`` a stream that is not chunked
    must produce exactly (None for a chunked stream or a fixed body).
    """

    method: bytes
    target: bytes
    fields: bytes
    body: bytes | memoryview
    stream: Iterable[Any] | None
    stream_length: int | None
    chunked: bool
    has_host: bool
    has_cookie: bool
    expect_continue: bool
    close: bool
    #: may be written ahead of earlier responses: idempotent, fixed body, no Expect, no close
    pipelinable: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Work out once what every write of this request asks."""
        object.__setattr__(
            self,
            "pipelinable",
            self.method in IDEMPOTENT_METHODS
            and self.stream is None
            and not self.expect_continue
            and not self.close,
        )

    @property
    def idempotent(self) -> bool:
        """Return whether RFC 9110 §9.2.2 calls the method idempotent."""
        return self.method in IDEMPOTENT_METHODS


def _to_bytes(value: str | BytesLike, what: str, encoding: str = "latin-1") -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode(encoding)
        except UnicodeEncodeError as exc:
            raise BadArgument(f"{what} {value!r} is not {encoding}-encodable") from exc
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise BadArgument(f"{what} must be str or bytes, not {type(value).__name__}")


def validate_method(method: str | bytes) -> bytes:
    """Return the upper-cased method token.

    Raises:
        BadArgument: not ``str``/``bytes`` or not an HTTP token.
    """
    raw = _to_bytes(method, "method", "ascii").upper()
    if _TOKEN.fullmatch(raw) is None:
        raise BadArgument(f"method {method!r} is not an HTTP token")
    return raw


def validate_path(path: str | bytes, method: bytes) -> bytes:
    """Return the request target: origin-form ``/...`` (or ``*`` for OPTIONS).

    Bytes above 0x7F (and non-ASCII characters of a ``str``, as UTF-8) are
    percent-encoded, as browsers and httpx do.

    Raises:
        BadArgument: not beginning with ``/``, or a control byte or space in it.
    """
    raw = _to_bytes(path, "path", "utf-8")
    if raw == b"*":
        if method != b"OPTIONS":
            raise BadArgument("path '*' is only allowed for OPTIONS")
        return raw
    if not raw.startswith(b"/"):
        raise BadArgument(f"path {path!r} must begin with '/'")
    if _BAD_PATH.search(raw):
        raise BadArgument(f"path {path!r} contains a control character or space")
    if _NON_ASCII.search(raw):
        raw = _NON_ASCII.sub(lambda m: b"%%%02X" % m.group()[0], raw)
    return raw


def validate_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """Return the headers as a list of ``(name, value)`` bytes pairs.

    Accepts a mapping or an iterable of pairs; names and values ``str``
    (latin-1) or ``bytes``.

    Raises:
        BadArgument: a name that is not a token, CR, LF or NUL in a value,
            or a shape that is not pairs.
    """
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        items: Iterable[Any] = headers.items()
    elif isinstance(headers, (str, bytes)):
        raise BadArgument("headers must be (name, value) pairs or a mapping")
    else:
        items = headers
    try:
        pairs = list(items)
    except TypeError as exc:
        raise BadArgument("headers must be (name, value) pairs or a mapping") from exc
    result: list[tuple[bytes, bytes]] = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise BadArgument(f"header {pair!r} is not a (name, value) pair")
        name = _to_bytes(pair[0], "header name")
        value = _to_bytes(pair[1], "header value")
        if _TOKEN.fullmatch(name) is None:
            raise BadArgument(f"header name {pair[0]!r} is not an HTTP token")
        if _BAD_VALUE.search(value):
            raise BadArgument(f"header {pair[0]!r} has CR, LF or NUL in its value")
        result.append((name, value))
    return result


def _flatten_iodata(body: list[Any] | tuple[Any, ...], out: list[bytes]) -> None:
    for item in body:
        if isinstance(item, (bytes, bytearray, memoryview)):
            out.append(bytes(item))
        elif isinstance(item, str):
            out.append(item.encode("utf-8"))
        elif isinstance(item, (list, tuple)):
            _flatten_iodata(item, out)
        else:
            raise BadArgument(f"iodata body holds a {type(item).__name__}")


def _file_length(body: Any) -> int | None:
    """Return the bytes left in a binary regular file or seekable stream; None = unknown."""
    if isinstance(body, io.TextIOBase):
        # read() gives str, re-encoded as UTF-8 after newline translation: size unknown.
        return None
    try:
        st = os.fstat(body.fileno())
        # A pipe, socket or device reports a size that says nothing of what read() gives.
        return max(0, st.st_size - body.tell()) if stat.S_ISREG(st.st_mode) else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if body.seekable():  # io.BytesIO and the like: no fileno, but a size
            pos: int = body.tell()
            end: int = body.seek(0, os.SEEK_END)
            body.seek(pos)
            return max(0, end - pos)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    return None


def _read_file(body: Any) -> Iterator[bytes]:
    while True:
        chunk = body.read(STREAM_READ_SIZE)
        if not chunk:
            return
        yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)


def _prepare_body(body: Any) -> tuple[bytes | memoryview, Iterable[Any] | None, int | None]:
    """Return ``(fixed_body, stream, known_length)``; stream is None for a fixed body."""
    if body is None:
        return b"", None, 0
    if isinstance(body, bytes):
        return body, None, len(body)
    if isinstance(body, bytearray):
        data = bytes(body)
        return data, None, len(data)
    if isinstance(body, memoryview):
        view = body.cast("B") if body.c_contiguous else memoryview(body.tobytes())
        return view, None, view.nbytes
    if isinstance(body, str):
        data = body.encode("utf-8")
        return data, None, len(data)
    if isinstance(body, (list, tuple)):
        parts: list[bytes] = []
        _flatten_iodata(body, parts)
        data = b"".join(parts)
        return data, None, len(data)
    if hasattr(body, "read"):
        return b"", _read_file(body), _file_length(body)
    if isinstance(body, Mapping) or not isinstance(body, Iterable):
        raise BadArgument(f"body of type {type(body).__name__} is not supported")
    return b"", body, None


def _has_token(value: bytes, token: bytes) -> bool:
    return any(part.strip().lower() == token for part in value.split(b","))


_SIMPLE_CACHE: dict[tuple[type, str | bytes, type, str | bytes], PreparedRequest] = {}
_SIMPLE_CACHE_SIZE: Final = 4096


def prepare_request(
    method: str | bytes, path: str | bytes, headers: Any, body: Any
) -> PreparedRequest:
    """Validate a request and encode the caller's part of its head.

    ``Content-Length`` is added for a body of known size (``0`` for an empty
    POST, PUT or PATCH), ``Transfer-Encoding: chunked`` for a stream of
    unknown size, unless the caller gave either header. Requests with no
    headers and no body (the common GET) are prepared once and cached: a
    ``PreparedRequest`` is immutable.

    Raises:
        BadArgument: a bad method, path, header or body; a caller's
            ``Content-Length`` that disagrees with a fixed body.
    """
    if (
        not headers
        and (body is None or (type(body) is bytes and not body))
        and type(method) in (str, bytes)
        and type(path) in (str, bytes)
    ):  # anything else is checked (and refused) by _prepare
        key = (type(method), method, type(path), path)
        cached = _SIMPLE_CACHE.get(key)
        if cached is None:
            cached = _prepare(method, path, (), b"")
            if len(_SIMPLE_CACHE) >= _SIMPLE_CACHE_SIZE:
                _SIMPLE_CACHE.clear()
            _SIMPLE_CACHE[key] = cached
        return cached
    return _prepare(method, path, headers, body)


def _prepare(method: str | bytes, path: str | bytes, headers: Any, body: Any) -> PreparedRequest:
    m = validate_method(method)
    target = validate_path(path, m)
    pairs = validate_headers(headers)
    fixed, stream, length = _prepare_body(body)
    has_host = has_cookie = expect = close = False
    caller_length: bytes | None = None
    chunked = False
    lines: list[bytes] = []
    for name, value in pairs:
        lname = name.lower()
        if lname == b"host":
            has_host = True
        elif lname == b"cookie":
            has_cookie = True
        elif lname == b"content-length":
            if caller_length is not None and caller_length != value.strip():
                raise BadArgument("conflicting Content-Length headers given")
            caller_length = value.strip()
        elif lname == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise BadArgument("only 'Transfer-Encoding: chunked' can be sent")
            chunked = True
        elif lname == b"expect":
            expect = expect or value.strip().lower() == b"100-continue"
        elif lname == b"connection":
            close = close or _has_token(value, b"close")
        lines.append(b"%s: %s\r\n" % (name, value))
    if chunked and caller_length is not None:
        raise BadArgument("both Content-Length and Transfer-Encoding given")
    if caller_length is not None:
        if not caller_length.isdigit():
            raise BadArgument(f"Content-Length {caller_length!r} is not a number")
        if stream is None and int(caller_length) != length:
            raise BadArgument(
                f"Content-Length {caller_length!r} disagrees with the body ({length} bytes)"
            )
    elif not chunked:
        if length is None:
            chunked = True
            lines.append(b"Transfer-Encoding: chunked\r\n")
        elif length or m in _BODY_METHODS or stream is not None:
            lines.append(b"Content-Length: %d\r\n" % length)
    if chunked and stream is None:
        stream = [fixed] if len(fixed) else []
        fixed = b""
    return PreparedRequest(
        method=m,
        target=target,
        fields=b"".join(lines),
        body=fixed,
        stream=stream,
        stream_length=None if chunked or stream is None else int(caller_length or length or 0),
        chunked=chunked,
        has_host=has_host,
        has_cookie=has_cookie,
        expect_continue=expect and (stream is not None or len(fixed) > 0),
        close=close,
    )


def encode_head(
    request: PreparedRequest,
    host_field: bytes,
    cookie: str | None,
    target: bytes | None = None,
    extra_fields: bytes = b"",
) -> bytes:
    """Return the whole request head: request line, headers and the blank line.

    ``host_field`` is the ``Host`` value used unless the caller gave one;
    ``cookie`` the ``Cookie`` value from the jar (dropped when the caller gave
    a ``Cookie`` header); ``target`` overrides the origin-form target (the
    absolute form used through a proxy); ``extra_fields`` are header lines
    the client adds (``Proxy-Authorization`` for a forward proxy).
    """
    parts = [request.method, b" ", target or request.target, b" HTTP/1.1\r\n"]
    if not request.has_host:
        parts += [b"Host: ", host_field, b"\r\n"]
    parts.append(request.fields)
    if extra_fields:
        parts.append(extra_fields)
    if cookie and not request.has_cookie:
        parts += [b"Cookie: ", cookie.encode("latin-1"), b"\r\n"]
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk_frames(chunk: Any) -> bytes:
    """Return one chunk framed for ``Transfer-Encoding: chunked`` (RFC 9112 §7.1).

    Raises:
        BadArgument: the stream yielded something that is not bytes or str.
    """
    if isinstance(chunk, str):
        chunk = chunk.encode("utf-8")
    elif not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise BadArgument(f"body stream yielded a {type(chunk).__name__}, not bytes")
    size = len(chunk) if not isinstance(chunk, memoryview) else chunk.nbytes
    if size == 0:
        return b""
    return b"%x\r\n%s\r\n" % (size, bytes(chunk))


LAST_CHUNK: Final = b"0\r\n\r\n"
