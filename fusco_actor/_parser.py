"""PURE HTTP/1.1 response parser: bytes in, events out. Never imports socket.

Theory of operation
-------------------
The connection owner tells the parser, in order, which request method each
response answers (:meth:`ResponseParser.expect`), feeds it whatever bytes the
socket produced (:meth:`feed`, any slicing), and pulls events with
:meth:`next_event` until it returns ``NEED_DATA``. A close of the connection is
reported with :meth:`feed_eof`. Because the parser keeps a FIFO of expected
methods and never looks at how the bytes were sliced, it serves one request
at a time and a pipeline of many alike.

Per response the states are::

    HEAD --1xx--> HEAD (at most MAX_INFORMATIONAL times)
    HEAD --final--> BODY_LENGTH | BODY_CHUNKED | BODY_UNTIL_CLOSE | DONE
    BODY_CHUNKED: CHUNK_SIZE -> CHUNK_DATA -> CHUNK_END -> ... -> TRAILERS -> DONE

Every malformed, over-limit or truncated input raises :class:`ProtocolError`
and leaves the parser broken: it raises the same error again on every call.

Strictness (after h11, RFC 9110 and RFC 9112):

* Head line ends are tolerant, as in h11: "a recipient MAY recognize a
  single LF as a line terminator" (9112 §2.2); a bare CR is not ("A
  recipient of such a bare CR MUST consider that element to be invalid"),
  nor a control byte but HTAB in a field value or reason phrase (9110 §5.5).
* Chunk framing is strict: each chunk-size line, chunk-data end and trailer
  line ends in exactly CRLF, per the grammar (:mod:`fusco_actor._chunked`).
* "All valid status codes are within the range of 100 to 599, inclusive"
  (9110 §15); h11 takes 100-999 and so does this, so ``0xx`` is an error.
* "A server or client that receives an HTTP/1.0 message containing a
  Transfer-Encoding header field MUST treat the message as if the framing
  is faulty" (9112 §6.1): an error (h11 does not check). Transfer-Encoding
  with Content-Length "ought to be handled as an error" (§6.3 rule 3) and
  is when there is a body; a final coding other than chunked is read until
  close (rule 4; h11 rejects it). Both are checked on bodiless responses.
* ``max_body_size`` holds against a length when the peer declares it (at
  the head, at each chunk-size line) and against the running total of a
  read-until-close body. No buffer is ever sized from a declared number.

Heads are found with one ``bytes.find``/regex scan over the buffer and split
with ``bytes.split``; the buffer is a ``bytearray`` consumed by an offset and
compacted only when that offset grows large, so no loop ever runs per byte.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Final

from fusco_actor._chunked import MAX_CHUNK_LINE, check_trailer_section, chunk_size
from fusco_actor._events import (
    NEED_DATA,
    BodyChunk,
    EndOfResponse,
    Event,
    Informational,
    PeerClosed,
    ResponseHead,
    _NeedData,
)
from fusco_actor._exceptions import ProtocolError
from fusco_actor._fields import (
    BY_LENGTH,
    CHUNKED,
    NO_BODY,
    UNTIL_CLOSE,
    body_framing,
    parse_fields,
    parse_head_block,
    split_lines,
)
from fusco_actor._headers import Headers

__all__ = ["DEFAULT_MAX_HEAD_SIZE", "MAX_CHUNK_LINE", "ResponseParser"]

DEFAULT_MAX_HEAD_SIZE: Final = 262_144
MAX_INFORMATIONAL: Final = 100

# RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line terminator".
_HEAD_END = re.compile(rb"\n\r?\n")
# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_COMPACT_AT: Final = 65_536

_NO_TRAILERS: Final = Headers()

# Parser states: the first state of each body framing is that framing's number.
_EMPTY, _LENGTH, _CHUNK_SIZE_ST, _UNTIL_CLOSE = NO_BODY, BY_LENGTH, CHUNKED, UNTIL_CLOSE
_HEAD, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _BROKEN = range(4, 9)


_VERSIONS: Final = {b"0": "HTTP/1.0", b"1": "HTTP/1.1"}
# Status lines already checked, with what they parse to (bounded: the first few seen).
_STATUS_CACHE: dict[bytes, tuple[int, str, str]] = {}
_STATUS_CACHE_SIZE: Final = 256


def _status_line(status_line: bytes) -> tuple[int, str, str]:
    """Check a status line; return its code, reason and version (cached once checked).

    Raises:
        ProtocolError: not ``HTTP/1.x NNN [reason]``, or a code under 100.
    """
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise ProtocolError(f"invalid status line {status_line[:80]!r}")
    major, minor, code = match.group(1), match.group(2), int(match.group(3))
    if major != b"1":
        raise ProtocolError(f"unsupported HTTP version {status_line[:16]!r}")
    if code < 100:
        raise ProtocolError(f"invalid status code {status_line[:16]!r}")
    raw_reason = match.group(4)
    reason = raw_reason.decode("latin-1").strip(" \t") if raw_reason else ""
    version = _VERSIONS.get(minor) or f"HTTP/1.{minor.decode()}"
    parsed = (code, reason, version)
    if len(_STATUS_CACHE) < _STATUS_CACHE_SIZE:
        _STATUS_CACHE[status_line] = parsed
    return parsed


class ResponseParser:
    r"""Incremental HTTP/1.1 response parser for one connection.

    Args:
        max_head_size: bytes a head (status line and headers, and likewise
            trailers and each 1xx head) may take before it is a
            ``ProtocolError``; default 262144.
        max_body_size: bytes a response body may have before it is a
            ``ProtocolError``; ``None`` (the default) for no limit.

    Raises:
        ValueError: ``max_body_size`` is negative.

    Example:
        >>> p = ResponseParser()
        >>> p.expect(b"GET")
        >>> p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        >>> [type(e).__name__ for e in iter(p.next_event, NEED_DATA)]
        ['ResponseHead', 'BodyChunk', 'EndOfResponse']
    """

    def __init__(
        self, max_head_size: int = DEFAULT_MAX_HEAD_SIZE, max_body_size: int | None = None
    ) -> None:
        """Create a parser with nothing expected and an empty buffer."""
        if max_body_size is not None and max_body_size < 0:
            raise ValueError(f"max_body_size must be None or >= 0, not {max_body_size}")
        self.max_head_size = max_head_size
        self.max_body_size = max_body_size
        self._body_size = 0  # body bytes declared or received so far, against max_body_size
        self.bytes_consumed = 0  # bytes turned into events so far, for Response.size
        self._buf = bytearray()
        self._pos = 0
        self._scan_from = 0
        self._expected: deque[bytes] = deque()
        self._state = _HEAD
        self._remaining = 0
        self._informational = 0
        self._eof = False
        self._error: ProtocolError | None = None

    # -- input ---------------------------------------------------------------

    def expect(self, method: bytes) -> None:
        """Queue the method of the next request written on the connection."""
        self._expected.append(method)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the peer."""
        if data:
            self._buf += data

    def feed_eof(self) -> None:
        """Record that the peer closed its sending side."""
        self._eof = True

    @property
    def pending(self) -> int:
        """Return how many responses are expected and not yet complete."""
        return len(self._expected)

    @property
    def buffered(self) -> int:
        """Return how many received bytes have not been turned into events."""
        return len(self._buf) - self._pos

    @property
    def unsolicited(self) -> int:
        """Return how many buffered bytes no expected response accounts for (0 while one is).

        Checked before reusing an idle connection: any such byte, even a CRLF, is unasked for.
        """
        return 0 if self._expected else self.buffered

    @property
    def in_response(self) -> bool:
        """Return whether some byte of the current response has been consumed or buffered."""
        return self._state != _HEAD or self._informational > 0 or self.buffered > 0

    # -- a Content-Length body read past the parser ----------------------------
    #
    # A large body need not pass through the parser's buffer: the connection
    # owner may read it straight into a buffer of its own (one copy, not four),
    # then tell the parser how many body bytes it took.

    @property
    def body_remaining(self) -> int | None:
        """Return the bytes left of a Content-Length body being read, else None."""
        return self._remaining if self._state == _LENGTH and self._error is None else None

    def read_body_into(self, view: memoryview) -> int:
        """Move buffered body bytes into ``view``; return how many (at most ``body_remaining``)."""
        n = min(len(view), len(self._buf) - self._pos, self._remaining)
        if n:
            view[:n] = self._buf[self._pos : self._pos + n]
            self._remaining -= n
            self.bytes_consumed += n
            self._pos += n
            if self._pos == len(self._buf):
                self._buf.clear()
                self._pos = self._scan_from = 0
        return n

    def take_whole_body(self) -> bytes | None:
        """Return the whole body and end the response, if it is all buffered; else None.

        A shortcut past ``BodyChunk``/``EndOfResponse`` for the common small
        response: a bodiless one, or a Content-Length body already received.
        """
        if self._error is not None:
            return None
        if self._state == _EMPTY:
            self._end()
            return b""
        if self._state == _LENGTH and self._remaining <= len(self._buf) - self._pos:
            data = self._consume(self._remaining) if self._remaining else b""
            self._remaining = 0
            self._end()
            return data
        return None

    def body_received(self, n: int) -> None:
        """Count ``n`` body bytes that the owner read from the socket itself."""
        if n > self._remaining:
            raise ValueError("more body bytes than the response has")
        self._remaining -= n
        self.bytes_consumed += n

    # -- output --------------------------------------------------------------

    def next_event(self) -> Event | _NeedData:
        """Return the next event, or ``NEED_DATA``.

        Raises:
            ProtocolError: the response is malformed, over a limit, or was
                cut short by the peer closing.
        """
        if self._error is not None:
            raise self._error
        try:
            if self._state == _HEAD:  # _step's first case, one call less per response
                return self._read_head()
            return self._step()
        except ProtocolError as exc:
            self._state = _BROKEN
            self._error = exc
            raise

    def _step(self) -> Event | _NeedData:
        state = self._state
        if state == _HEAD:
            return self._read_head()
        if state == _LENGTH:
            return self._read_length()
        if state == _UNTIL_CLOSE:
            return self._read_until_close()
        if state == _EMPTY:
            return self._end()
        return self._read_chunked()

    def _consume(self, n: int) -> bytes:
        start = self._pos
        buf = self._buf
        end = start + n
        self.bytes_consumed += n
        if end == len(buf):  # the common case: everything buffered is used
            data = bytes(buf) if start == 0 else bytes(buf[start:])
            buf.clear()
            self._pos = self._scan_from = 0
            return data
        data = bytes(buf[start:end])
        self._pos = end
        if end >= _COMPACT_AT and end * 2 >= len(buf):
            del buf[:end]
            self._scan_from = max(0, self._scan_from - end)
            self._pos = 0
        return data

    def _find_block_end(self, what: str) -> int:
        """Return the offset just past the blank line ending a head block, or -1."""
        buf, pos = self._buf, self._pos
        match = _HEAD_END.search(buf, max(pos, self._scan_from))
        if match is None:
            if len(buf) - pos > self.max_head_size:
                raise ProtocolError(
                    f"{what} larger than max_head_size ({self.max_head_size} bytes)"
                )
            self._scan_from = max(pos, len(buf) - 2)
            return -1
        end = match.end()
        if end - pos > self.max_head_size:
            raise ProtocolError(f"{what} larger than max_head_size ({self.max_head_size} bytes)")
        self._scan_from = 0
        return end

    def _read_head(self) -> Event | _NeedData:
        buf = self._buf
        # Tolerate stray CRLFs between responses (robustness, RFC 9112 §2.2).
        while self._pos < len(buf) and buf[self._pos] in (10, 13):
            if buf[self._pos] == 10:
                self._consume(1)
            elif buf[self._pos : self._pos + 2] == b"\r\n":
                self._consume(2)
            else:
                break
        end = self._find_block_end("response head")
        if end < 0:
            if self._eof:
                if self.buffered == 0 and self._informational == 0:
                    return PeerClosed()
                raise ProtocolError("connection closed in the middle of a response head")
            return NEED_DATA
        if not self._expected:
            raise ProtocolError("response received with no request outstanding")
        block = self._consume(end - self._pos)
        status_line, headers = parse_head_block(block)
        known = _STATUS_CACHE.get(status_line)
        if known is not None:  # a status line already checked: "HTTP/1.1 200 OK", say
            code, reason, version = known
        else:
            code, reason, version = _status_line(status_line)
        if 100 <= code < 200 and code != 101:
            self._informational += 1
            if self._informational > MAX_INFORMATIONAL:
                raise ProtocolError(f"more than {MAX_INFORMATIONAL} 1xx responses")
            return Informational(code, reason, headers)
        return self._start_body(code, reason, version, headers)

    def _start_body(self, code: int, reason: str, version: str, headers: Headers) -> ResponseHead:
        framing, length, keep_alive = body_framing(self._expected[0], code, version, headers)
        self._informational = 0
        self._body_size = 0
        if framing == BY_LENGTH:
            self._count_body(length)
            self._remaining = length
        self._state = framing  # the first state of each framing has its number
        return ResponseHead(code, reason, version, headers, keep_alive)

    def _count_body(self, n: int) -> None:
        """Add ``n`` body bytes, declared or received, to the running total.

        A Content-Length body is counted once, as declared, so the owner's
        ``read_body_into``/``body_received``/``take_whole_body`` need no check.

        Raises:
            ProtocolError: the total passed ``max_body_size``.
        """
        self._body_size += n
        limit = self.max_body_size
        if limit is not None and self._body_size > limit:
            raise ProtocolError(f"response body larger than max_body_size ({limit} bytes)")

    def _end(self, trailers: Headers = _NO_TRAILERS) -> EndOfResponse:
        self._state = _HEAD
        self._expected.popleft()
        return EndOfResponse(trailers)

    def _read_length(self) -> Event | _NeedData:
        if self._remaining == 0:
            return self._end()
        avail = len(self._buf) - self._pos
        if avail == 0:
            if self._eof:
                raise ProtocolError(
                    f"connection closed with {self._remaining} bytes of the body missing"
                )
            return NEED_DATA
        n = min(avail, self._remaining)
        self._remaining -= n
        return BodyChunk(self._consume(n))

    def _read_until_close(self) -> Event | _NeedData:
        if self.buffered:
            self._count_body(self.buffered)
            return BodyChunk(self._consume(self.buffered))
        if self._eof:
            return self._end()
        return NEED_DATA

    def _read_chunked(self) -> Event | _NeedData:
        state = self._state
        buf = self._buf
        if state == _CHUNK_SIZE_ST:
            nl = buf.find(b"\n", self._pos, self._pos + MAX_CHUNK_LINE)
            if nl < 0:
                if self.buffered >= MAX_CHUNK_LINE:
                    raise ProtocolError("chunk size line too long")
                return self._need_chunk_data()
            size = chunk_size(self._consume(nl + 1 - self._pos))
            if size == 0:
                self._state = _TRAILERS
                return self._read_trailers()
            self._count_body(size)  # as declared, before any of its bytes
            self._remaining = size
            self._state = _CHUNK_DATA
            return self._read_chunked()
        if state == _CHUNK_DATA:
            avail = self.buffered
            if avail == 0:
                return self._need_chunk_data()
            n = min(avail, self._remaining)
            self._remaining -= n
            if self._remaining == 0:
                self._state = _CHUNK_END
            return BodyChunk(self._consume(n))
        if state == _CHUNK_END:
            crlf = buf[self._pos : self._pos + 2]
            if crlf != b"\r\n":
                if b"\r\n".startswith(crlf):  # b"" or b"\r": wait for the rest
                    return self._need_chunk_data()
                raise ProtocolError("chunk data not followed by CRLF")
            self._consume(2)
            self._state = _CHUNK_SIZE_ST
            return self._read_chunked()
        return self._read_trailers()

    def _read_trailers(self) -> Event | _NeedData:
        first = self._buf[self._pos : self._pos + 2]
        if first == b"\r\n":  # no trailer fields: the usual case
            self._consume(2)
            return self._end()
        if first[:1] == b"\n":
            raise ProtocolError("trailer section line not ended by CRLF")
        end = self._find_block_end("trailer section")
        if end < 0:
            return self._need_chunk_data()
        block = self._consume(end - self._pos)
        check_trailer_section(block)
        return self._end(parse_fields([line for line in split_lines(block) if line]))

    def _need_chunk_data(self) -> _NeedData:
        if self._eof:
            raise ProtocolError("connection closed in the middle of a chunked body")
        return NEED_DATA
