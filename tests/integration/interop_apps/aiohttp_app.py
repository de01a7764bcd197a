"""The interop routes under aiohttp.web: ``python -m ...aiohttp_app PORT IDLE_SECONDS``."""

from __future__ import annotations

import sys

from aiohttp import web

from tests.integration.interop_apps.routes import route


async def handle(request: web.Request) -> web.StreamResponse:
    """Serve the routes of ``routes.py``."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    reply = route(request.path, await request.read(), peer[1] if peer else None)
    if reply.parts is not None:
        stream = web.StreamResponse(status=reply.status)
        stream.enable_chunked_encoding()
        await stream.prepare(request)
        # aiohttp writes what a handler writes even for HEAD (unframed): write nothing,
        # except on /careless-head, which shows what a careless handler does.
        careless = request.method != "HEAD" or request.path == "/careless-head"
        for part in reply.parts if careless else ():
            await stream.write(part)
        await stream.write_eof()
        return stream
    if reply.status in (204, 304):
        return web.Response(status=reply.status)
    return web.Response(status=reply.status, body=reply.body, content_type="text/plain")


def main(port: int, idle: float) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(
        app, host="127.0.0.1", port=port, keepalive_timeout=idle, print=None, access_log=None
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]))
