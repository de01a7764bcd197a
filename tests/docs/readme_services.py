"""What the README's snippets talk to, on loopback: an HTTPS origin and an authenticating proxy.

The README's TLS and proxy snippets name ``https://localhost:8443``, a
private CA in ``internal-ca.pem``, a client certificate in ``client.crt`` and
``client.key``, and a proxy at ``http://alice:p%40ss@127.0.0.1:3128``. The
test writes those files (a throw-away trustme CA) into the snippets' working
directory and starts these two servers on free ports; the snippets' ports
are replaced by theirs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import selectors
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme

PROXY_USER, PROXY_PASSWORD = "alice", "p@ss"  # the README's alice:p%40ss
IDLE_TIMEOUT = 10.0  # seconds a tunnel or a TLS connection may stay idle
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class _OriginHandler(BaseHTTPRequestHandler):
    """Answers every request with JSON: the path and the client certificate's subject, if any."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        subject = cert["subject"] if cert else None  # ((("commonName", "..."),),)
        body = json.dumps({"path": self.path, "client_cert": subject}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class TLSOrigin(ThreadingHTTPServer):
    """An HTTPS origin on 127.0.0.1 that asks for (but does not require) a client certificate."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _OriginHandler)
        self.context = context

    def finish_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        request.settimeout(IDLE_TIMEOUT)
        with (
            contextlib.suppress(ssl.SSLError, OSError),
            self.context.wrap_socket(request, server_side=True) as tls,
        ):
            super().finish_request(tls, client_address)


class _ProxyHandler(socketserver.BaseRequestHandler):
    """CONNECT to loopback only, with Basic authentication; 407 without the right credentials."""

    expected = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(IDLE_TIMEOUT)
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
                b'Proxy-Authenticate: Basic realm="readme"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        host, _, port = target.rpartition(":")
        if method != "CONNECT" or host.strip("[]") not in LOOPBACK:
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection((host.strip("[]"), int(port)), IDLE_TIMEOUT) as upstream:
            sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                upstream.sendall(early)
            _pipe(sock, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until one side closes or IDLE_TIMEOUT passes with no byte."""
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        while events := selector.select(IDLE_TIMEOUT):
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65_536)
                if not data:
                    return
                key.data.sendall(data)


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True


@dataclass(frozen=True)
class ReadmeServices:
    """The addresses the README names, mapped to the servers' real ones, and the files' folder."""

    substitutions: dict[str, str]
    workdir: Path

    def apply(self, text: str) -> str:
        """Replace each address the README names by the real one."""
        for named, real in self.substitutions.items():
            text = text.replace(named, real)
        return text


@contextlib.contextmanager
def readme_services(embedded_address: str, workdir: Path) -> Iterator[ReadmeServices]:
    """Start the HTTPS origin and the proxy, write the certificate files, yield, stop them."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_OPTIONAL  # a client certificate is checked if sent
    ca.cert_pem.write_to_path(str(workdir / "internal-ca.pem"))
    client_cert = ca.issue_cert("client.example.test")
    client_cert.cert_chain_pems[0].write_to_path(str(workdir / "client.crt"))
    client_cert.private_key_pem.write_to_path(str(workdir / "client.key"))
    origin, proxy = TLSOrigin(server_context), _Proxy(("127.0.0.1", 0), _ProxyHandler)
    threads = [
        threading.Thread(target=server.serve_forever, daemon=True) for server in (origin, proxy)
    ]
    for thread in threads:
        thread.start()
    try:
        yield ReadmeServices(
            {
                "127.0.0.1:8080": embedded_address,
                "localhost:8443": f"localhost:{origin.server_address[1]}",
                "127.0.0.1:3128": f"127.0.0.1:{proxy.server_address[1]}",
            },
            workdir,
        )
    finally:
        for server in (origin, proxy):
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(IDLE_TIMEOUT)
