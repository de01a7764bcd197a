"""PURE checks of the chunked transfer coding's framing lines (RFC 9112 §7.1).

The response parser keeps the state; this module says whether one chunk-size
line or one trailer section is well formed. Chunk framing is strict where a
head is tolerant, because a disagreement between two parsers about where a
chunk ends is how a response is smuggled (Go's CVE-2025-22871 took a bare LF
as a line end, Kestrel's CVE-2025-55315 a LF inside a chunk extension):

* RFC 9112 §7.1: ``chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF``
  and ``last-chunk = 1*("0") [ chunk-ext ] CRLF``: each line ends in exactly
  CRLF. The leniency of §2.2 ("Although the line terminator for the
  start-line and fields is the sequence CRLF, a recipient MAY recognize a
  single LF as a line terminator") is about the start-line and fields, not
  chunk framing: here a bare LF, or CR CR LF, is a ``ProtocolError``.
* ``chunk-size = 1*HEXDIG``: no white space before or after the digits, and
  at most 16 of them (a 64-bit size).
* RFC 9112 §7.1.1: ``chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "="
  BWS chunk-ext-val ] )``, ``chunk-ext-name = token``, ``chunk-ext-val =
  token / quoted-string``: SP/HTAB is allowed around ";" and "=" and nowhere
  else, and no control byte but HTAB may appear, not even inside a quoted
  string (RFC 9110 §5.6.4 qdtext and quoted-pair).
* RFC 9112 §7.1.2: ``trailer-section = *( field-line CRLF )``, then the
  CRLF that ends the chunked body: a bare LF there is a ``ProtocolError``.

h11 (0.16) differs on three points, and this module follows the RFC: h11
accepts white space after the size or extensions (``"5 " CRLF``, "because
some servers on the wild use it") and any byte but LF in an extension
(``;.*``, so NUL and a bare CR pass), but rejects BWS before ";".
"""

from __future__ import annotations

import re
from typing import Final

from fusco_actor._exceptions import ProtocolError

__all__ = ["MAX_CHUNK_LINE", "check_trailer_section", "chunk_size"]

MAX_CHUNK_LINE: Final = 4096

_TOKEN: Final = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# RFC 9110 §5.6.4: DQUOTE *( qdtext / quoted-pair ) DQUOTE
_QUOTED: Final = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
_EXT_VAL: Final = rb"(?:" + _TOKEN + rb"|" + _QUOTED + rb")"
_EXT: Final = rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*" + _EXT_VAL + rb")?)*"
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})" + _EXT + rb"\r\n")


def chunk_size(line: bytes) -> int:
    """Return the size declared by a chunk-size line, given with its line end.

    Raises:
        ProtocolError: the line is not exactly ``chunk-size [ chunk-ext ] CRLF``.
    """
    match = _CHUNK_LINE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"invalid chunk size line {line[:64]!r}")
    return int(match.group(1), 16)


def check_trailer_section(block: bytes) -> None:
    """Check that every line of a trailer section (its blank line included) ends in CRLF.

    Raises:
        ProtocolError: a bare LF or a bare CR in the section.
    """
    crlf = block.count(b"\r\n")
    if crlf != block.count(b"\n") or crlf != block.count(b"\r"):
        raise ProtocolError("trailer section line not ended by CRLF")
