"""Real servers for the integration tests: uvicorn over TLS, proxy.py, and scripted sockets.

- :class:`Certificates` holds trustme material (a CA, server certificates good,
  expired and for another name, a client certificate from a separate CA) as
  PEM files, and builds client contexts that trust the CA.
- :class:`UvicornServer` runs ``tests/integration/asgi_app.py`` under uvicorn
  in a subprocess (plain or TLS, optionally requiring a client certificate).
- :class:`ProxyPyServer` runs the ``proxy.py`` forward proxy (CONNECT and
  absolute-form forwarding, optional ``--basic-auth``) in a subprocess.
- :class:`SocketServerThread` is a loopback listener in a thread running one
  scripted handler (after urllib3's ``dummyserver/socketserver.py``), for the
  wire-level checks no real server can make (1xx before a CONNECT answer, the
  exact bytes a client wrote).

Every subprocess is started on a free loopback port, waited for by polling
the port within a bound, and terminated (then killed) on exit.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

import fusco_actor

SHORT_TIMEOUT = 2.0  # seconds: an event that should happen at once
LONG_TIMEOUT = 10.0  # seconds: an event that takes real work
STARTUP_TIMEOUT = 20.0  # seconds a subprocess server may take to listen
ROOT = Path(__file__).resolve().parents[2]


# -- certificates ---------------------------------------------------------------


@dataclass
class Certificates:
    """trustme material for the tests, with PEM files under ``directory``."""

    directory: Path
    ca: trustme.CA
    other_ca: trustme.CA
    client_ca: trustme.CA
    server: trustme.LeafCert
    expired: trustme.LeafCert
    wrong_name: trustme.LeafCert
    client: trustme.LeafCert

    @classmethod
    def create(cls, directory: Path) -> Certificates:
        """Issue every certificate the tests use and write the server ones to files."""
        now = datetime.datetime.now(datetime.timezone.utc)
        ca = trustme.CA()
        client_ca = trustme.CA()
        certs = cls(
            directory=directory,
            ca=ca,
            other_ca=trustme.CA(),
            client_ca=client_ca,
            server=ca.issue_cert("127.0.0.1", "::1", "localhost"),
            expired=ca.issue_cert(
                "127.0.0.1",
                "::1",
                "localhost",
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            ),
            wrong_name=ca.issue_cert("other.example.test"),
            client=client_ca.issue_cert("client.example.test"),
        )
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        client_ca.cert_pem.write_to_path(str(directory / "client-ca.pem"))
        for name in ("server", "expired", "wrong_name"):
            leaf: trustme.LeafCert = getattr(certs, name)
            leaf.private_key_pem.write_to_path(str(directory / f"{name}.key"))
            chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
            (directory / f"{name}.crt").write_bytes(chain)
        return certs

    def key_and_cert(self, name: str) -> tuple[Path, Path]:
        """Return the key file and chain file of a server certificate by name."""
        return self.directory / f"{name}.key", self.directory / f"{name}.crt"

    def client_context(
        self, trust: trustme.CA | None = None, cert: trustme.LeafCert | None = None
    ) -> ssl.SSLContext:
        """Return a verifying client context trusting ``trust`` (the CA by default)."""
        context = ssl.create_default_context()
        (trust or self.ca).configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context

    def server_context(self, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
        """Return a server context presenting ``leaf`` (the good server certificate)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or self.server).configure_cert(context)
        return context


# -- subprocess servers ------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """Return a port that was free on ``host`` a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_until_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = STARTUP_TIMEOUT
) -> bool:
    """Poll ``host:port`` until it accepts; False if ``proc`` exited first.

    Raises:
        TimeoutError: nothing listened within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=SHORT_TIMEOUT):
                return True
        except OSError:
            # Not listening yet: wait on the process rather than spinning.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` and the process group it leads; kill it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(LONG_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(LONG_TIMEOUT)
    else:
        # The leader is gone; make sure no child it forked outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


class _SubprocessServer:
    """A server subprocess in its own process group, with its output in a log file."""

    name = "server"
    host = "127.0.0.1"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop_process ends its children too
            )

    def _failed(self, why: str) -> RuntimeError:
        log = self.log_path.read_text(errors="replace")[-4000:]
        return RuntimeError(f"{self.name} {why}; its log:\n{log}")

    def stop(self) -> None:
        """Terminate the subprocess (idempotent)."""
        if self.proc is not None:
            stop_process(self.proc)

    def __enter__(self) -> _SubprocessServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class UvicornServer(_SubprocessServer):
    """uvicorn serving ``tests.integration.asgi_app:app`` on loopback, plain or TLS."""

    name = "uvicorn"

    def __init__(
        self,
        log_path: Path,
        key_and_cert: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        """Prepare the server; ``client_ca`` makes it require a client certificate."""
        super().__init__(log_path)
        self.host = host
        self.key_and_cert = key_and_cert
        self.client_ca = client_ca

    def start(self) -> UvicornServer:
        """Start uvicorn and wait until it listens.

        A free port can be taken by someone else before uvicorn binds it, so a
        failed start is tried again on another port, a bounded number of times.
        """
        for _ in range(3):
            self.port = free_port(self.host)
            argv = [
                sys.executable, "-m", "uvicorn", "tests.integration.asgi_app:app",
                "--host", self.host, "--port", str(self.port), "--http", "h11",
                "--lifespan", "on", "--log-level", "warning", "--no-access-log",
                "--timeout-keep-alive", "60",
            ]  # fmt: skip
            if self.key_and_cert is not None:
                key, cert = self.key_and_cert
                argv += ["--ssl-keyfile", str(key), "--ssl-certfile", str(cert)]
            if self.client_ca is not None:
                argv += ["--ssl-ca-certs", str(self.client_ca)]
                argv += ["--ssl-cert-reqs", str(int(ssl.CERT_REQUIRED))]
            self.proc = self._spawn(argv)
            if wait_until_listening(self.host, self.port, self.proc):
                return self
        raise self._failed("did not start")

    @property
    def url(self) -> str:
        """Return ``http(s)://host:port`` of the server."""
        scheme = "https" if self.key_and_cert is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


class ProxyPyServer(_SubprocessServer):
    """proxy.py (a forward proxy with CONNECT) on 127.0.0.1, optionally with Basic auth."""

    name = "proxy.py"

    def __init__(self, log_path: Path, data_dir: Path, basic_auth: str | None = None) -> None:
        """Prepare the proxy; ``basic_auth`` is ``"user:password"`` or None for none."""
        super().__init__(log_path)
        self.data_dir = data_dir
        self.basic_auth = basic_auth

    def start(self) -> ProxyPyServer:
        """Start proxy.py on an ephemeral port and wait until it listens.

        proxy.py binds port 0 itself and writes the port it got to
        ``--port-file``, so no other process can take the port in between.
        """
        port_file = self.data_dir / "port"
        argv = [
            sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
            "--port-file", str(port_file), "--num-acceptors", "1", "--num-workers", "1",
            "--threaded", "--log-level", "WARNING", "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        if self.basic_auth is not None:
            argv += ["--basic-auth", self.basic_auth]
        self.proc = self._spawn(argv)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None:
                raise self._failed("exited before writing its port")
            if time.monotonic() >= deadline:
                raise self._failed("wrote no port file in time")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)
        self.port = int(port_file.read_text().split()[0])
        if not wait_until_listening(self.host, self.port, self.proc):
            raise self._failed("exited before listening")
        return self

    def url(self, credentials: str | None = None) -> str:
        """Return the proxy URL, with ``credentials`` (already percent-encoded) as user-info."""
        userinfo = f"{credentials}@" if credentials else ""
        return f"http://{userinfo}127.0.0.1:{self.port}"


# -- scripted socket servers -----------------------------------------------------------


class SocketServerThread:
    """A loopback listener on port 0 whose scripted ``handler(server)`` runs in a thread.

    The handler accepts with :meth:`accept` and records what it needs. On exit
    the listener closes, the thread is joined (or the test fails) and any
    exception the handler raised is raised in the test.
    """

    def __init__(
        self,
        handler: Callable[[SocketServerThread], Any],
        host: str = "127.0.0.1",
        sock: socket.socket | None = None,
    ) -> None:
        """Bind ``host`` on an ephemeral port (or use the bound ``sock``) and listen."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if sock is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.bind((host, 0))
        self.listener = sock
        self.listener.listen(16)
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        self.quit = threading.Event()
        self.error: BaseException | None = None
        self.accepted = 0
        self._handler = handler
        self._thread = threading.Thread(target=self._run, name="socket-server", daemon=True)

    def _run(self) -> None:
        try:
            self._handler(self)
        except BaseException as exc:  # reported in the test by __exit__
            self.error = exc

    def accept(self, timeout: float = LONG_TIMEOUT) -> socket.socket:
        """Return the next connection (with ``timeout`` set on it).

        Raises:
            TimeoutError: none came within ``timeout`` seconds, or the test ended.
        """
        deadline = time.monotonic() + timeout
        while not self.quit.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([self.listener], [], [], 0.05)
            if readable:
                conn, _ = self.listener.accept()
                conn.settimeout(timeout)
                self.accepted += 1
                return conn
        raise TimeoutError("no connection came")

    @property
    def authority(self) -> str:
        """Return ``host:port`` with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __enter__(self) -> SocketServerThread:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.quit.set()
        self._thread.join(LONG_TIMEOUT + SHORT_TIMEOUT)
        self.listener.close()
        assert not self._thread.is_alive(), "the scripted server thread did not finish"
        if self.error is not None and exc_type is None:
            raise self.error


def recv_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to and including the blank line; return (head, bytes read after it).

    Raises:
        ConnectionError: the peer closed before the head was complete.
    """
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65_536)
        if not more:
            raise ConnectionError(f"peer closed after {data!r}")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def wait_for_close(sock: socket.socket) -> bytes:
    """Read until the peer closes (bounded by the socket's timeout); return what came."""
    data = b""
    with contextlib.suppress(OSError):
        while True:
            more = sock.recv(65_536)
            if not more:
                break
            data += more
    return data


def response(body: bytes = b"ok", status: str = "200 OK", extra: bytes = b"") -> bytes:
    """Return a complete HTTP/1.1 response with ``Content-Length``."""
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status.encode(),
        len(body),
        extra,
        body,
    )


def server_handshake(conn: socket.socket, context: ssl.SSLContext) -> ssl.SSLSocket:
    """Do the server side of a TLS handshake on ``conn`` and return the TLS socket.

    When the handshake fails, the alert OpenSSL wrote has gone out; the raw
    socket is then read until the client closes, so that unread client bytes
    cannot turn the close into a reset that would hide the alert.

    Raises:
        ssl.SSLError: the handshake failed (after the client closed).
    """
    raw = conn.dup()
    tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except ssl.SSLError:
        wait_for_close(raw)
        tls.close()
        raise
    finally:
        raw.close()
    return tls


@contextlib.contextmanager
def scripted(
    handler: Callable[[SocketServerThread], Any],
    host: str = "127.0.0.1",
    sock: socket.socket | None = None,
) -> Iterator[SocketServerThread]:
    """Run ``handler`` in a :class:`SocketServerThread` for the ``with`` block."""
    with SocketServerThread(handler, host, sock) as server:
        yield server


# -- client helpers ------------------------------------------------------------------

REQUEST_TIMEOUT = 10.0  # seconds for one whole exchange in the tests


def fetch(
    client: fusco_actor.Client,
    path: str = "/echo",
    method: str = "GET",
    body: Any = b"",
    headers: Any = (),
) -> fusco_actor.Response:
    """Send one request (``body`` as ``Client.request`` takes it) and wait, bounded in time."""
    future = client.request(path, method, headers, body, timeout=REQUEST_TIMEOUT)
    return future.get(timeout=REQUEST_TIMEOUT + LONG_TIMEOUT)


def echo(client: fusco_actor.Client, path: str = "/echo", **kwargs: Any) -> dict[str, Any]:
    """Return the JSON report of the ASGI app's ``/echo`` route."""
    resp = fetch(client, path, **kwargs)
    assert resp.status == 200, resp
    report: dict[str, Any] = json.loads(resp.body)
    return report
