# /// script
# requires-python = ">=3.10"
# dependencies = ["fusco_actor", "trustme>=1.1"]
# [tool.uv.sources]
# fusco_actor = { path = "..", editable = true }
# ///
"""HTTPS through an authenticating HTTP CONNECT proxy, everything on loopback.

Run it from a clone with no arguments::

    uv run examples/https_via_proxy.py           # or, after make:
    .venv/bin/python examples/https_via_proxy.py

It makes a throw-away certificate authority with trustme, then starts, in
threads on 127.0.0.1 and free ports:

- an HTTPS origin (``http.server`` with a trustme certificate), and
- a minimal forward proxy that requires ``Proxy-Authorization: Basic`` and
  opens CONNECT tunnels to loopback addresses only,

and then uses fusco_actor: two keep-alive requests through one tunnel, and a
request with wrong proxy credentials, which fails with ``ProxyError`` 407.
With a real proxy, only ``proxy=`` and ``ssl_context=`` change.
"""

from __future__ import annotations

import base64
import contextlib
import json
import selectors
import socket
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fusco_actor

try:
    import trustme
except ImportError:  # pragma: no cover - depends on the environment
    trustme = None  # type: ignore[assignment]

USER, PASSWORD = "alice", "s3cret:with@odd chars"
PROXY_USERINFO = "alice:s3cret%3Awith%40odd%20chars"  # the same, percent-encoded for a URL
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class OriginHandler(BaseHTTPRequestHandler):
    """The HTTPS origin: answers every GET with what it saw, as JSON."""

    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "client_port": self.client_address[1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class TLSOrigin(ThreadingHTTPServer):
    """ThreadingHTTPServer that does each TLS handshake in the connection's own thread."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.context = context

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with contextlib.suppress(ssl.SSLError, OSError):
            tls = self.context.wrap_socket(request, server_side=True)
            super().finish_request(tls, client_address)


class ProxyHandler(socketserver.BaseRequestHandler):
    """A tiny CONNECT-only forward proxy with Basic authentication."""

    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10.0)
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65_536)
            if not more:
                return
            data += more
        head, _, early = data.partition(b"\r\n\r\n")
        request_line, *fields = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
        if headers.get("proxy-authorization") != self.expected:
            sock.sendall(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="example"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        if method != "CONNECT" or host not in LOOPBACK:
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10.0)
        except OSError:
            sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        with upstream:
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                upstream.sendall(early)
            self.pipe(sock, upstream)

    @staticmethod
    def pipe(a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until one side closes or 30 s pass idle."""
        with selectors.DefaultSelector() as selector:
            selector.register(a, selectors.EVENT_READ, b)
            selector.register(b, selectors.EVENT_READ, a)
            while True:
                events = selector.select(timeout=30.0)
                if not events:
                    return
                for key, _ in events:
                    data = key.fileobj.recv(65_536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)


class Proxy(socketserver.ThreadingTCPServer):
    """The proxy's listening server (threads end with the program)."""

    daemon_threads = True


def serve_in_thread(server: socketserver.BaseServer) -> None:
    """Run ``server.serve_forever`` in a daemon thread."""
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> int:
    """Start the origin and the proxy, then make requests through the proxy."""
    if trustme is None:
        print("This example needs trustme for its throw-away certificates:")
        print("    pip install trustme && python examples/https_via_proxy.py")
        return 1
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()  # verifying, SNI, hostname checks
    ca.configure_trust(client_context)  # ...and trusting our throw-away CA

    origin, proxy = TLSOrigin(server_context), Proxy(("127.0.0.1", 0), ProxyHandler)
    serve_in_thread(origin)
    serve_in_thread(proxy)
    origin_url = f"https://127.0.0.1:{origin.server_address[1]}"
    proxy_port = proxy.server_address[1]
    print(f"origin {origin_url}, proxy http://127.0.0.1:{proxy_port} (user {USER!r})")

    def on_connect(info: fusco_actor.ConnectInfo) -> None:
        state = "connected" if info.ok else f"failed: {info.error!r}"
        print(f"  on_connect: {state} in {info.connect_time * 1000:.1f} ms via {info.address}")

    try:
        with fusco_actor.start(
            origin_url,
            proxy=f"http://{PROXY_USERINFO}@127.0.0.1:{proxy_port}",
            ssl_context=client_context,
            connect_timeout=5.0,
            on_connect=on_connect,
        ) as client:
            for path in ("/hello", "/again"):
                resp = fusco_actor.request(client, path, "GET", [], b"", 5.0)
                print(f"GET {path} -> {resp.status} {resp.body.decode()}")
            print("  (same client_port: both requests went through one tunnel)")

        with fusco_actor.start(
            origin_url,
            proxy=f"http://alice:wrong@127.0.0.1:{proxy_port}",
            ssl_context=client_context,
        ) as client:
            try:
                fusco_actor.request(client, "/hello", "GET", [], b"", 5.0)
            except fusco_actor.ProxyError as exc:
                print(f"wrong credentials -> ProxyError status={exc.status} reason={exc.reason!r}")
    finally:
        for server in (origin, proxy):
            server.shutdown()
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
