"""The immutable ``Response`` a request resolves to."""

from __future__ import annotations

from dataclasses import dataclass

from fusco_actor._headers import Headers

__all__ = ["Response"]


@dataclass(frozen=True, slots=True, init=False)
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

    def __init__(
        self,
        status: int,
        reason: str,
        version: str,
        headers: Headers,
        trailers: Headers,
        body: bytes,
        size: int,
        elapsed: float,
    ) -> None:
        """Set every field once (one per response: the slots are written directly)."""
        _set_status(self, status)
        _set_reason(self, reason)
        _set_version(self, version)
        _set_headers(self, headers)
        _set_trailers(self, trailers)
        _set_body(self, body)
        _set_size(self, size)
        _set_elapsed(self, elapsed)

    def __repr__(self) -> str:
        """Show the status line and body size, not the whole body."""
        return f"<Response [{self.status} {self.reason}] {len(self.body)} bytes>"


# The frozen dataclass's generated __init__ goes through object.__setattr__ for
# each field; the slot descriptors' own setters cost a third less per response.
_slot = vars(Response)
_set_status = _slot["status"].__set__
_set_reason = _slot["reason"].__set__
_set_version = _slot["version"].__set__
_set_headers = _slot["headers"].__set__
_set_trailers = _slot["trailers"].__set__
_set_body = _slot["body"].__set__
_set_size = _slot["size"].__set__
_set_elapsed = _slot["elapsed"].__set__
