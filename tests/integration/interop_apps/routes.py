"""The routes every interop app serves, whatever the framework.

- ``/ping``          -> ``pong`` (with ``Content-Length``)
- ``/port``          -> the client's port as the server saw it
- ``/upload``        -> ``LENGTH SHA256-HEX`` of the request body
- ``/chunked``       -> ``PARTS`` written one by one without ``Content-Length``
  (``Transfer-Encoding: chunked`` under HTTP/1.1, read-until-close under 1.0)
- ``/status/204``, ``/status/304`` -> that status with no body
- ``/echo-path/N``   -> ``N``
- anything else      -> 404 ``not found``

A ``HEAD`` gets the headers its ``GET`` would get and no body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PARTS = [b"part-%d;" % i for i in range(10)]
REASONS = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found"}


def digest(data: bytes) -> bytes:
    """Return what ``/upload`` answers for ``data``: its length and SHA-256."""
    return b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())


@dataclass(frozen=True)
class Reply:
    """What a route answers: a status and a body, or ``parts`` to stream unframed."""

    status: int
    body: bytes = b""
    parts: tuple[bytes, ...] | None = None

    @property
    def reason(self) -> str:
        """Return the reason phrase of the status."""
        return REASONS[self.status]


def route(path: str, body: bytes, client_port: int | None) -> Reply:
    """Return the reply to a request for ``path`` carrying ``body``."""
    if path == "/ping":
        return Reply(200, b"pong")
    if path == "/port":
        return Reply(200, str(client_port).encode())
    if path == "/upload":
        return Reply(200, digest(body))
    if path in ("/chunked", "/careless-head"):
        return Reply(200, parts=tuple(PARTS))
    if path in ("/status/204", "/status/304"):
        return Reply(int(path.rsplit("/", 1)[1]))
    if path.startswith("/echo-path/"):
        return Reply(200, path.rsplit("/", 1)[1].encode())
    return Reply(404, b"not found")
