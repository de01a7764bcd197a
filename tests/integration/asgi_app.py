"""A tiny ASGI app that uvicorn serves (over TLS or plain) for the integration tests.

Routes (any method):

- ``/ping``         -> ``pong``
- ``/echo``         -> JSON: method, path, query, headers, body (latin-1), the
  client's ``[host, port]`` as the server saw it, and the scheme. The client
  port tells the tests whether requests shared one connection.
- ``/chunked``      -> the request body (or ``N`` numbered parts given by
  ``?parts=N``) sent without ``Content-Length``, so uvicorn frames it
  ``Transfer-Encoding: chunked``.
- anything else     -> 404.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]


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


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Serve the routes listed in the module docstring."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    body = await _read_body(receive)
    path = scope["path"]
    if path == "/ping":
        await _respond(send, 200, b"pong", b"text/plain")
    elif path == "/echo":
        client = scope.get("client")
        report = {
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("latin-1"),
            "client": list(client) if client else None,
            "scheme": scope["scheme"],
        }
        await _respond(send, 200, json.dumps(report).encode(), b"application/json")
    elif path == "/chunked":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        count = int(query.get("parts", ["3"])[0])
        parts = [body] if body else [b"part-%d;" % i for i in range(count)]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        await _respond(send, 404, b"not found", b"text/plain")
