"""A private nginx for the benchmark: its own config, files, pid and logs in a temp dir.

:class:`Nginx` is a context manager: it finds ``nginx`` (installing Debian's
package with apt-get when it is missing and that is possible), writes the
config and the payload files, starts the master in the foreground
(``daemon off``) bound to 127.0.0.1 on a free port, waits until it answers,
and stops it on exit, Ctrl-C and errors included. If this process dies hard
the master gets SIGTERM from the kernel (``PR_SET_PDEATHSIG``).

Endpoints (``PAYLOADS`` holds the expected body sizes):

* ``/small``: ``return 200 "Hello, world!"``, 13 bytes, ``Content-Length``.
* ``/64k``, ``/1m``: static files (sendfile), ``Content-Length``.
* ``/chunked64k``: a 64 KiB static file run through the SSI filter, which drops
  ``Content-Length``, so nginx sends it ``Transfer-Encoding: chunked``.
* ``/post``: ``return 200 "ok"``; nginx reads and discards the request body
  (``ngx_http_discard_request_body``) so the connection stays usable.
"""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["PAYLOADS", "Nginx", "NginxError", "find_nginx"]

SMALL_BODY: Final = b"Hello, world!"
PAYLOADS: Final = {
    "/small": len(SMALL_BODY),
    "/64k": 64 * 1024,
    "/1m": 1024 * 1024,
    "/chunked64k": 64 * 1024,
}
START_TIMEOUT: Final = 10.0  # seconds for nginx to answer after it is started
STOP_TIMEOUT: Final = 5.0  # seconds for the master to exit after SIGTERM
PR_SET_PDEATHSIG: Final = 1

CONFIG: Final = """\
{user}
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    gzip off;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port} backlog=1024;
        root {tmp}/www;

        location = /small {{
            default_type text/plain;
            return 200 "{small}";
        }}
        location = /64k {{ }}
        location = /1m {{ }}
        location = /chunked64k {{
            # SSI drops Content-Length: the body goes out chunked (HTTP/1.1).
            ssi on;
            ssi_types *;
            tcp_nopush off;  # TCP_CORK would hold the last chunk back ~40 ms
        }}
        location = /post {{
            client_max_body_size 2m;
            client_body_buffer_size 2m;
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


class NginxError(RuntimeError):
    """nginx is missing and cannot be installed, or it did not start."""


def find_nginx(install: bool = True) -> str:
    """Return the path of ``nginx``; install Debian's package with apt-get if missing.

    Raises:
        NginxError: not found and not installable here (the message says what to do).
    """
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found:
        return found
    hint = "install it (Debian/Ubuntu: `sudo apt-get install -y nginx`) and run again"
    if not install or shutil.which("apt-get") is None:
        raise NginxError(f"nginx is not installed: {hint}")
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if prefix and shutil.which("sudo") is None:
        raise NginxError(f"nginx is not installed and this is not root: {hint}")
    print(
        "bench: nginx not found; installing Debian's package with apt-get (on a systemd "
        "host this also enables the system nginx on port 80: "
        "`systemctl disable --now nginx` if unwanted)",
        file=sys.stderr,
    )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "nginx"]):
        if subprocess.run([*prefix, *cmd], env=env, check=False).returncode != 0:
            raise NginxError(f"`{' '.join(cmd)}` failed: {hint}")
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise NginxError(f"apt-get installed nginx but it is not on PATH: {hint}")
    return found


def nginx_version(binary: str) -> str:
    """Return ``nginx/x.y.z`` as ``nginx -v`` prints it."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM the child when the benchmark dies (Linux; best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _user_line() -> str:
    """Run workers as the current user when root (nginx's default, nobody, can't read /tmp)."""
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    return f"user {user} {grp.getgrgid(os.getegid()).gr_name};"


class Nginx:
    """One nginx master + one worker on 127.0.0.1, configured in a temp dir.

    Attributes:
        port, url: where it listens once started.
        version: ``nginx/x.y.z``.
    """

    def __init__(self, install: bool = True) -> None:
        """Find (or install) nginx; nothing runs until :meth:`start`."""
        self.binary = find_nginx(install)
        self.version = nginx_version(self.binary)
        self.port = 0
        self.url = ""
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_files(self, tmp: Path) -> None:
        www = tmp / "www"
        www.mkdir()
        (www / "64k").write_bytes(os.urandom(PAYLOADS["/64k"]))
        (www / "1m").write_bytes(os.urandom(PAYLOADS["/1m"]))
        # No "<" in the SSI-filtered file, so the filter finds no command in it.
        pattern = bytes(range(ord("A"), ord("Z") + 1)) * 8 + b"\n"
        body = (pattern * (PAYLOADS["/chunked64k"] // len(pattern) + 1))[: PAYLOADS["/chunked64k"]]
        (www / "chunked64k").write_bytes(body)

    def start(self) -> Nginx:
        """Write the config and files, start nginx and wait until it answers.

        Raises:
            NginxError: it exited or did not answer within ``START_TIMEOUT`` seconds.
        """
        self._tmp = tempfile.TemporaryDirectory(prefix="fusco-bench-nginx-")
        tmp = Path(self._tmp.name)
        self._write_files(tmp)
        for attempt in range(5):  # a free port can be taken between the probe and the bind
            self.port = _free_port()
            conf = CONFIG.format(
                tmp=tmp, port=self.port, small=SMALL_BODY.decode(), user=_user_line()
            )
            (tmp / "nginx.conf").write_text(conf)
            log = (tmp / "stderr.log").open("wb")
            self._proc = subprocess.Popen(
                [self.binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", "stderr"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C goes to us; we stop nginx ourselves
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a prctl
            )
            log.close()
            if self._wait_ready():
                self.url = f"http://127.0.0.1:{self.port}"
                return self
            self._terminate()
            errors = (tmp / "stderr.log").read_text(errors="replace")
            if "Address already in use" not in errors or attempt == 4:
                raise NginxError(f"nginx did not start:\n{errors}")
        raise AssertionError("unreachable")

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                if self.worker_pids():
                    return True
            time.sleep(0.02)
        return False

    def pids(self) -> list[int]:
        """Return the master's and the workers' process ids."""
        if self._proc is None or self._proc.poll() is not None:
            return []
        return [self._proc.pid, *self.worker_pids()]

    def worker_pids(self) -> list[int]:
        """Return the worker processes' ids (the master's children)."""
        assert self._proc is not None
        path = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def pin(self, cpus: set[int]) -> None:
        """Pin every nginx process and thread to ``cpus`` (like ``taskset -a -p``)."""
        for pid in self.pids():
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), cpus)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # fast shutdown: master stops its workers
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self) -> None:
        """Stop nginx and remove the temp dir (safe to call twice)."""
        try:
            self._terminate()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def __enter__(self) -> Nginx:
        """Start nginx."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop nginx."""
        self.stop()
