"""The immutable ``Response`` a request resolves to."""

from __future__ import annotations

from dataclasses import dataclass

from fusco_actor._headers import Headers

__all__ = ["Response"]


@dataclass(frozen=True, slots=True)
class Response:
    """A complete HTTP response.

    Attributes:
        status: the status code, e.g. 200.
        reason: the reason phrase ("" when the server sent none).
        version: ``"HTTP/1.1"`` or ``"HTTP/1.0"``.
        headers: the response headers, order and repeats kept.
        trailers: the trailer fields of a chunked body; empty otherwise.
        body: the body as it came (``Content-Encoding`` not decoded).
        size: bytes read from the wire for this exchange, 1xx and head included.
        elapsed: seconds from the start of sending to the end of the response.
    """

    status: int
    reason: str
    version: str
    headers: Headers
    trailers: Headers
    body: bytes
    size: int
    elapsed: float

    def __repr__(self) -> str:
        """Show the status line and body size, not the whole body."""
        return f"<Response [{self.status} {self.reason}] {len(self.body)} bytes>"
