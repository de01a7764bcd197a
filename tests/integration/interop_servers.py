"""Launchers for the interop tests: the servers people run, and tinyproxy.

Each server is a subprocess started on a free 127.0.0.1 port, waited for by
polling the port within a bound, and terminated (then killed) on teardown:
:class:`InteropServer` reuses :mod:`tests.integration.realservers`'s
``_SubprocessServer``, ``free_port``, ``wait_until_listening`` and
``stop_process``. The Python servers run the apps of ``interop_apps/``;
nginx answers from its own config (with the echo module for the upload and
the chunked body). Every server closes idle keep-alive connections after
``IDLE`` seconds.

:func:`pytest_runtest_logreport` and :func:`pytest_terminal_summary` are
pytest hooks (imported by ``conftest.py``): with ``INTEROP_TABLE=FILE`` set
they write the servers x scenarios results as Markdown tables to FILE.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.integration.realservers import (
    _SubprocessServer,
    free_port,
    wait_until_listening,
)

IDLE = 1  # seconds: every server's keep-alive (idle) timeout
NGINX = "/usr/sbin/nginx"
NGINX_ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
APPS = "tests.integration.interop_apps"


def system_binary(name: str, *candidates: str) -> str:
    """Return the path of a system server binary, or skip (fail under CI=true) without it."""
    for path in (*candidates, shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    why = f"{name} is not installed (make sysdeps installs it from Debian)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}: CI must run every interop server", pytrace=False)
    pytest.skip(why)


def _python_version(distribution: str) -> Callable[[], str]:
    return lambda: f"{distribution} {metadata.version(distribution)}"


def _command_version(argv: list[str], prefix: str, package: str) -> str:
    """Return the version line a binary prints, with its Debian package's version."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    lines = (out.stdout + out.stderr).strip().splitlines()
    line = next((x for x in lines if prefix in x), lines[0] if lines else "?")
    version = line.strip().rpartition(": ")[2]
    dpkg = shutil.which("dpkg-query")
    if dpkg:
        query = [dpkg, "-W", "-f=${Version}", package]
        deb = subprocess.run(query, capture_output=True, text=True, timeout=10, check=False)
        if deb.returncode == 0 and deb.stdout:
            version += f" (Debian {package} {deb.stdout.strip()})"
    return version


# -- nginx ---------------------------------------------------------------------------------

NGINX_CONF = """\
{load_module}
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_timeout {idle};
    client_max_body_size 4m;
    client_body_buffer_size 2m;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};
        location = /ping {{ return 200 "pong"; }}
        location = /port {{ return 200 "$remote_port"; }}
        location = /upload {{ echo_read_request_body; echo_request_body; }}
        location = /chunked {{ {chunked} }}
        location = /status/204 {{ return 204; }}
        location = /status/304 {{ return 304; }}
        location ~ ^/echo-path/(\\d+)$ {{ return 200 "$1"; }}
    }}
}}
"""


def nginx_argv(port: int, directory: Path) -> list[str]:
    """Write nginx.conf for ``port`` under ``directory``; return the foreground command."""
    binary = system_binary("nginx", NGINX)
    if not os.path.exists(NGINX_ECHO_MODULE):
        system_binary("nginx's echo module", NGINX_ECHO_MODULE)  # skip / fail the same way
    chunked = " ".join(f'echo -n "part-{i};"; echo_flush;' for i in range(10))
    conf = NGINX_CONF.format(
        load_module=f"load_module {NGINX_ECHO_MODULE};",
        user="user root;" if os.geteuid() == 0 else "",  # workers must write under directory
        dir=directory,
        idle=IDLE,
        port=port,
        chunked=chunked,
    )
    (directory / "nginx.conf").write_text(conf)
    return [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"),
            "-e", str(directory / "error.log"), "-g", "daemon off;"]  # fmt: skip


# -- server specs --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    """How to run one server and what it can do."""

    name: str
    argv: Callable[[int, Path], list[str]]  # (port, work directory) -> command
    version: Callable[[], str]
    keep_alive: bool = True  # keeps HTTP/1.1 connections open between requests
    chunked: bool = True  # frames an unsized body with Transfer-Encoding: chunked
    upload_echoes: bool = False  # /upload echoes the body instead of its digest
    sends_100: bool = True  # answers Expect: 100-continue with a 100
    notes: dict[str, str] | None = None  # scenario -> a remark for the table


def _command(template: str) -> Callable[[int, Path], list[str]]:
    """Return the argv builder of a Python server: ``python`` + ``template`` filled in.

    ``{port}``, ``{idle}`` and ``{apps}`` in ``template`` become the port, IDLE and APPS.
    """

    def argv(port: int, directory: Path) -> list[str]:
        return [sys.executable, *template.format(port=port, idle=IDLE, apps=APPS).split()]

    return argv


NO_KEEP_ALIVE = {
    scenario: "server closes after every response: each request reconnects"
    for scenario in (
        "head-then-get",
        "chunked-upload",
        "chunked",
        "head-chunked",
        "100-on-one-conn",
        "idle-close",
        "connection-close",
        "204-304",
    )
} | {
    "pipeline-8": "server closes after every response, so it pipelines nothing: the client"
    " re-sends the requests it had written behind each response, 32 connections in all"
}

SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "nginx",
            nginx_argv,
            lambda: _command_version([system_binary("nginx", NGINX), "-v"], "nginx", "nginx"),
            upload_echoes=True,
        ),
        ServerSpec(
            "gunicorn (sync)",
            _command(
                "-m gunicorn --bind 127.0.0.1:{port} --workers 1 --worker-class sync"
                " --keep-alive {idle} --log-level warning {apps}.wsgi:app"
            ),
            _python_version("gunicorn"),
            keep_alive=False,
            notes=NO_KEEP_ALIVE,
        ),
        ServerSpec(
            "gunicorn (gthread)",
            _command(
                "-m gunicorn --bind 127.0.0.1:{port} --workers 1 --worker-class gthread"
                " --threads 4 --keep-alive {idle} --log-level warning {apps}.wsgi:app"
            ),
            _python_version("gunicorn"),
        ),
        ServerSpec(
            "waitress",
            _command(
                "-m waitress --listen=127.0.0.1:{port} --channel-timeout={idle}"
                " --cleanup-interval=1 {apps}.wsgi:app"
            ),
            _python_version("waitress"),
            notes={
                scenario: "waitress says Connection: close with every response that has no"
                " Content-Length (chunked, 204, 304): the next request reconnects"
                for scenario in ("chunked", "head-chunked", "204-304")
            },
        ),
        ServerSpec(
            "hypercorn",
            _command(
                "-m hypercorn --bind 127.0.0.1:{port} --keep-alive {idle} --workers 1"
                " {apps}.asgi:app"
            ),
            _python_version("hypercorn"),
        ),
        ServerSpec(
            "uvicorn (h11)",
            _command(
                "-m uvicorn --host 127.0.0.1 --port {port} --http h11 --timeout-keep-alive"
                " {idle} --log-level warning --no-access-log {apps}.asgi:app"
            ),
            lambda: f"uvicorn {metadata.version('uvicorn')}, h11 {metadata.version('h11')}",
        ),
        ServerSpec(
            "uvicorn (httptools)",
            _command(
                "-m uvicorn --host 127.0.0.1 --port {port} --http httptools"
                " --timeout-keep-alive {idle} --log-level warning --no-access-log"
                " {apps}.asgi:app"
            ),
            lambda: (
                f"uvicorn {metadata.version('uvicorn')}, httptools {metadata.version('httptools')}"
            ),
        ),
        ServerSpec(
            "tornado",
            _command("-m {apps}.tornado_app {port} {idle}"),
            _python_version("tornado"),
        ),
        ServerSpec(
            "aiohttp.web",
            _command("-m {apps}.aiohttp_app {port} {idle}"),
            _python_version("aiohttp"),
        ),
        ServerSpec(
            "http.server (HTTP/1.0)",
            _command("-m {apps}.http10 {port}"),
            lambda: f"Python {sys.version.split()[0]} http.server",
            keep_alive=False,
            chunked=False,
            sends_100=False,
            notes={
                **NO_KEEP_ALIVE,
                "chunked": "HTTP/1.0 has no chunked framing: the body is read until the close",
                "expect-100-404": "HTTP/1.0 server sends no 100: the body goes after the client's"
                " 1 s wait",
                "expect-100": "HTTP/1.0 server sends no 100: the body goes after the client's"
                " 1 s wait",
            },
        ),
    )
}


class InteropServer(_SubprocessServer):
    """One of :data:`SERVERS`, running on a free 127.0.0.1 port."""

    def __init__(self, spec: ServerSpec, directory: Path) -> None:
        """Prepare ``spec`` to run with its files and log under ``directory``."""
        super().__init__(directory / "server.log")
        self.spec = spec
        self.name = spec.name
        self.directory = directory

    def start(self) -> InteropServer:
        """Start the server and wait until it listens (another port if one was taken)."""
        for _ in range(3):
            self.port = free_port(self.host)
            self.proc = self._spawn(self.spec.argv(self.port, self.directory))
            if wait_until_listening(self.host, self.port, self.proc):
                return self
        raise self._failed("did not start")

    @property
    def url(self) -> str:
        """Return ``http://127.0.0.1:port``."""
        return f"http://{self.host}:{self.port}"


# -- tinyproxy -------------------------------------------------------------------------------

TINYPROXY_CONF = """\
Port {port}
Listen 127.0.0.1
Timeout 30
MaxClients 32
LogLevel Warning
LogFile "{dir}/tinyproxy.log"
PidFile "{dir}/tinyproxy.pid"
Allow 127.0.0.1
DisableViaHeader Yes
{user}
"""


class TinyproxyServer(_SubprocessServer):
    """tinyproxy in the foreground on a free 127.0.0.1 port, every CONNECT port allowed."""

    name = "tinyproxy"

    def __init__(self, directory: Path) -> None:
        """Prepare the proxy with its config and log under ``directory``."""
        super().__init__(directory / "server.log")
        self.directory = directory

    def start(self) -> TinyproxyServer:
        """Start tinyproxy and wait until it listens (another port if one was taken)."""
        binary = system_binary("tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
        conf = self.directory / "tinyproxy.conf"
        for _ in range(3):
            self.port = free_port(self.host)
            # As root it needs a user to drop to: stay root so it can write its log here.
            user = "User root\nGroup root" if os.geteuid() == 0 else ""
            conf.write_text(TINYPROXY_CONF.format(port=self.port, dir=self.directory, user=user))
            self.proc = self._spawn([binary, "-d", "-c", str(conf)])
            if wait_until_listening(self.host, self.port, self.proc):
                return self
        raise self._failed("did not start")

    def url(self) -> str:
        """Return the proxy URL."""
        return f"http://{self.host}:{self.port}"

    @staticmethod
    def version() -> str:
        """Return tinyproxy's version line."""
        binary = system_binary("tinyproxy", "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
        return _command_version([binary, "-v"], "tinyproxy", "tinyproxy")


# -- the results table ------------------------------------------------------------------------

_RESULTS: dict[str, dict[tuple[str, str], str]] = {}
_VERSIONS: dict[str, str] = {}
_NOTES: dict[tuple[str, str], str] = {}


def record(table: str, row: str, column: str, version: str, note: str | None) -> tuple[str, ...]:
    """Return the user property that files a test under ``table`` at (row, column)."""
    _VERSIONS[row] = version
    if note:
        _NOTES[(row, column)] = note
    return ("interop", table, row, column)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the outcome of every interop test (a pytest hook)."""
    for name, *value in report.user_properties:
        if name != "interop":
            continue
        table, row, column = (str(v) for v in value)
        cells = _RESULTS.setdefault(table, {})
        key = (row, column)
        if report.when == "call" and report.passed:
            cells.setdefault(key, "pass*" if key in _NOTES else "pass")
        elif hasattr(report, "wasxfail"):
            cells[key] = "xfail"
            _NOTES[key] = str(report.wasxfail)
        elif report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
            cells[key] = "n/a"
            _NOTES[key] = reason.removeprefix("Skipped: ").removeprefix("n/a: ")
        elif report.failed:
            cells[key] = f"FAIL ({report.when})"


BEGIN = "<!-- interop-results:begin -->"
END = "<!-- interop-results:end -->"


def _table(title: str, cells: dict[tuple[str, str], str]) -> list[str]:
    rows = list(dict.fromkeys(row for row, _ in cells))
    columns = list(dict.fromkeys(column for _, column in cells))
    lines = [f"| {title} | version | " + " | ".join(columns) + " |"]
    lines.append("|---" * (len(columns) + 2) + "|")
    for row in rows:
        values = [cells.get((row, column), "-") for column in columns]
        lines.append(f"| {row} | {_VERSIONS[row]} | " + " | ".join(values) + " |")
    return lines


def results_markdown() -> str:
    """Return the tables of the outcomes kept so far, with the remarks on ``pass*``."""
    out: list[str] = []
    for table, cells in _RESULTS.items():
        out += [f"### {table}", "", *_table({"Proxies": "proxy"}.get(table, "server"), cells), ""]
    grouped: dict[tuple[str, str], list[str]] = {}
    for cells in _RESULTS.values():
        for (row, column), outcome in cells.items():
            if (row, column) in _NOTES and not outcome.startswith("FAIL"):
                label = f"{row}, {outcome}"
                grouped.setdefault((label, _NOTES[(row, column)]), []).append(column)
    if grouped:
        out += [
            "Remarks (`pass*`: passed, with this remark; `n/a`: why not; `xfail`: the bug):",
            "",
        ]
        out += [f"- {label} ({', '.join(cols)}): {note}" for (label, note), cols in grouped.items()]
        out.append("")
    python = f"Python {sys.version.split()[0]} on {sys.platform}"
    return "\n".join(
        [f"Generated by a run of `tests/integration/test_interop.py` ({python}).", "", *out]
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Write the results tables to ``$INTEROP_TABLE`` when it is set (a pytest hook).

    When the file holds the BEGIN and END markers, only the text between them is
    replaced (``INTEROP_TABLE=docs/interop.md`` refreshes that page in place).
    """
    target = os.environ.get("INTEROP_TABLE")
    if not target or not _RESULTS:
        return
    path = Path(target)
    text = results_markdown()
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        head, _, rest = old.partition(BEGIN)
        text = f"{head}{BEGIN}\n{text}{END}{rest.partition(END)[2]}"
    path.write_text(text)
    terminalreporter.write_line(f"interop results written to {target}")
