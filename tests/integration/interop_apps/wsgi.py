"""The interop routes as a WSGI app (gunicorn, waitress)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tests.integration.interop_apps.routes import route


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Serve the routes of ``routes.py``."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        body = environ["wsgi.input"].read()  # the server de-chunks it to its end
    else:
        body = environ["wsgi.input"].read(length) if length else b""
    port = environ.get("REMOTE_PORT")
    reply = route(environ["PATH_INFO"], body, int(port) if port else None)
    status = f"{reply.status} {reply.reason}"
    if reply.parts is not None:
        start_response(status, [("Content-Type", "text/plain")])
        return iter(reply.parts)  # no Content-Length: the server frames it
    if reply.status in (204, 304):
        start_response(status, [])
        return []
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(reply.body)))]
    start_response(status, headers)
    return [b"" if environ["REQUEST_METHOD"] == "HEAD" else reply.body]
