"""The interop routes under Python's ``http.server`` speaking HTTP/1.0: ``python -m ... PORT``.

``protocol_version = "HTTP/1.0"`` (the module's default): one request per
connection, no chunked framing (``/chunked`` is read until the close) and no
``100 Continue``.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.integration.interop_apps.routes import route


class Handler(BaseHTTPRequestHandler):
    """Every path, every method this test uses."""

    protocol_version = "HTTP/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = route(self.path, body, self.client_address[1])
        self.send_response(reply.status)
        if reply.parts is not None:
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for part in reply.parts if self.command != "HEAD" else ():
                self.wfile.write(part)
            return
        if reply.status not in (204, 304):
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD" and reply.status not in (204, 304):
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test log quiet."""


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
