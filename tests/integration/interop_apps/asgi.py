"""The interop routes as an ASGI app (uvicorn with h11 or httptools, hypercorn)."""

from __future__ import annotations

from typing import Any

from tests.integration.interop_apps.routes import route


async def _read_body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve the routes of ``routes.py``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    client = scope.get("client")
    reply = route(scope["path"], body, client[1] if client else None)
    start: dict[str, Any] = {"type": "http.response.start", "status": reply.status}
    if reply.parts is not None:
        start["headers"] = [(b"content-type", b"text/plain")]
        await send(start)
        for part in reply.parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if reply.status in (204, 304):
        start["headers"] = []
        await send(start)
        await send({"type": "http.response.body", "body": b""})
        return
    start["headers"] = [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(reply.body)).encode()),
    ]
    await send(start)
    head = scope["method"] == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else reply.body})
