"""The interop routes under tornado: ``python -m ...tornado_app PORT IDLE_SECONDS``."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import tornado.httpserver
import tornado.web

from tests.integration.interop_apps.routes import route


class Handler(tornado.web.RequestHandler):
    """Every path, every method this test uses."""

    async def _serve(self) -> None:
        context: Any = self.request.connection.context  # type: ignore[union-attr]
        address = getattr(context, "address", None)
        port = address[1] if isinstance(address, tuple) else None
        reply = route(self.request.path, self.request.body, port)
        self.set_status(reply.status)
        if reply.parts is not None:
            for part in reply.parts:
                self.write(part)
                await self.flush()  # headers go out without Content-Length: chunked
        elif reply.status not in (204, 304):
            self.set_header("Content-Type", "text/plain")
            if self.request.method == "HEAD":
                self.set_header("Content-Length", str(len(reply.body)))
            else:
                self.write(reply.body)
        await self.finish()

    async def get(self) -> None:
        """Serve a GET."""
        await self._serve()

    async def head(self) -> None:
        """Serve a HEAD."""
        await self._serve()

    async def post(self) -> None:
        """Serve a POST."""
        await self._serve()


async def main(port: int, idle: float) -> None:
    """Listen on 127.0.0.1:``port`` until killed."""
    app = tornado.web.Application([(r"/.*", Handler)])
    server = tornado.httpserver.HTTPServer(app, idle_connection_timeout=idle)
    server.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
