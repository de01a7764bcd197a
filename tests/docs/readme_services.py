"""What the README's snippets talk to, on loopback: an HTTPS origin and an authenticating proxy.

The README's TLS and proxy snippets name ``https://localhost:8443``, a
private CA in ``internal-ca.pem``, a client certificate in ``client.crt`` and
``client.key``, and a proxy at ``http://alice:p%40ss@127.0.0.1:3128``. The
test writes those files (a throw-away trustme CA) into the snippets' working
directory and starts, on free ports, the origin and a real proxy.py with Basic
authentication (as tests/integration does); the snippets' ports are replaced by
theirs.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme

from tests.integration.realservers import ProxyPyServer

PROXY_USER, PROXY_PASSWORD = "alice", "p@ss"  # the README's alice:p%40ss
IDLE_TIMEOUT = 10.0  # seconds a TLS connection may stay idle


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
    origin = TLSOrigin(server_context)
    thread = threading.Thread(target=origin.serve_forever, daemon=True)
    thread.start()
    proxy_dir = workdir / "proxy.py"
    proxy_dir.mkdir()
    proxy = ProxyPyServer(
        workdir / "proxy.py.log", proxy_dir, basic_auth=f"{PROXY_USER}:{PROXY_PASSWORD}"
    )
    try:
        proxy.start()
        yield ReadmeServices(
            {
                "127.0.0.1:8080": embedded_address,
                "localhost:8443": f"localhost:{origin.server_address[1]}",
                "127.0.0.1:3128": f"127.0.0.1:{proxy.port}",
            },
            workdir,
        )
    finally:
        proxy.stop()
        origin.shutdown()
        origin.server_close()
        thread.join(IDLE_TIMEOUT)
