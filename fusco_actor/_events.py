"""Immutable events produced by the sans-I/O response parser.

They are NamedTuples: immutable, and the cheapest objects CPython builds
(one is made per response head, so that matters on the hot path).

The names avoid the public API's ``ConnectionClosed`` and ``messages.Request``:
``PeerClosed`` is the parser's word for a close at a response boundary.
"""

from __future__ import annotations

from typing import NamedTuple

from fusco_actor._headers import Headers

__all__ = [
    "NEED_DATA",
    "BodyChunk",
    "EndOfResponse",
    "Informational",
    "PeerClosed",
    "ResponseHead",
]


class _NeedData:
    """Sentinel: the parser needs more bytes before it can produce an event."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


class Informational(NamedTuple):
    """A 1xx interim response head (RFC 9110 §15.2), skipped by the client."""

    status: int
    reason: str
    headers: Headers


class ResponseHead(NamedTuple):
    """The head of a final response.

    ``keep_alive`` is False when the framing (read until close) or the
    ``Connection`` header means the connection cannot carry another exchange.
    """

    status: int
    reason: str
    version: str
    headers: Headers
    keep_alive: bool


class BodyChunk(NamedTuple):
    """A slice of the response body, as it arrived (no decoding)."""

    data: bytes


class EndOfResponse(NamedTuple):
    """The response is complete; ``trailers`` of a chunked body, else empty."""

    trailers: Headers


class PeerClosed(NamedTuple):
    """The peer closed the connection before any byte of the next response."""


Event = Informational | ResponseHead | BodyChunk | EndOfResponse | PeerClosed
