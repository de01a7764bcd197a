"""Frozen, slotted events produced by the sans-I/O response parser.

The names avoid the public API's ``ConnectionClosed`` and ``messages.Request``:
``PeerClosed`` is the parser's word for a close at a response boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Informational:
    """A 1xx interim response head (RFC 9110 §15.2), skipped by the client."""

    status: int
    reason: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """The head of a final response.

    ``keep_alive`` is False when the framing (read until close) or the
    ``Connection`` header means the connection cannot carry another exchange.
    """

    status: int
    reason: str
    version: str
    headers: Headers
    keep_alive: bool


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """A slice of the response body, as it arrived (no decoding)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfResponse:
    """The response is complete; ``trailers`` of a chunked body, else empty."""

    trailers: Headers


@dataclass(frozen=True, slots=True)
class PeerClosed:
    """The peer closed the connection before any byte of the next response."""


Event = Informational | ResponseHead | BodyChunk | EndOfResponse | PeerClosed
