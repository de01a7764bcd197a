"""PURE checks of the chunked transfer coding's framing lines (RFC 9112 §7.1).

The response parser keeps the state; this module says whether one chunk-size
line or one trailer section is well formed. Chunk framing is strict where a
head is tolerant, because a disagreement between two parsers about where a
chunk ends is how a response is smuggled (Go's CVE-2025-22871 took a bare LF
as a line end, Kestrel's CVE-2025-55315 a LF inside a chunk extension):

* RFC 9112 §7.1: ``chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF``
  and ``last-chunk = 1*("0") [ chunk-ext ] CRLF``: each line ends in exactly
  CRLF. The "recipient MAY recognize a single LF" of §2.2 is not taken up
  here: a bare LF, or CR CR LF, ends nothing and is a ``ProtocolError``.
* ``chunk-size = 1*HEXDIG``: no white space before or after the digits, and
  at most 16 of them (a 64-bit size).
* RFC 9112 §7.1.1: ``chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "="
  BWS chunk-ext-val ] )``, ``chunk-ext-name = token``, ``chunk-ext-val =
  token / quoted-string``: SP/HTAB is allowed around ";" and "=" and nowhere
  else, and no control byte (NUL, a bare CR or LF, ...) may appear, not even
  inside a quoted string (RFC 9110 §5.6.4 qdtext and quoted-pair). h11 is
  more lenient on both counts (``;.*`` and trailing OWS); this follows the
  RFC grammar.
* RFC 9112 §7.1.2: ``trailer-section = *( field-line CRLF )``, ended by a
  CRLF: a trailer line or the final empty line ending in a bare LF is a
  ``ProtocolError``.
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
