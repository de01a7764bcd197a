"""Helpers of the `fusco get` tests: run it, script a loopback server, read its trace."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

from tests.socketserver import IncompleteRequest, SocketServerThread, read_request, target_of

RUN_TIMEOUT: Final = 30.0  # seconds for one CLI run
PROXY_VARIABLES: Final = (
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
    "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """Return the environment without proxy variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(extra)
    return env


def fusco_get(
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m fusco_actor get ARGS`` to its end; stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, "-m", "fusco_actor", "get", *args],
        input=stdin,
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
        env=dict(env) if env is not None else clean_env(),
        cwd=cwd,
    )


def one_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """Return the one line on stderr (failing when there are more or none)."""
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def response(status: str = "200 OK", body: bytes = b"ok", extra: bytes = b"") -> bytes:
    """Return an HTTP/1.1 response with a ``Content-Length`` body; ``extra``: header lines."""
    return b"HTTP/1.1 %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        extra,
        len(body),
        body,
    )


def routes(table: Mapping[bytes, bytes | Callable[[bytes], bytes]]) -> Any:
    """Return a handler answering each request by its target from ``table``, on any connection.

    A value is the response's bytes, or a function of the raw request that
    returns them. Connections are served one after the other until the test ends.
    """

    def handler(listener: Any, server: SocketServerThread) -> None:
        while True:
            conn = server.accept()
            while True:
                try:
                    raw = read_request(conn)
                except IncompleteRequest:
                    break
                answer = table[target_of(raw)]
                conn.sendall(answer(raw) if callable(answer) else answer)

    return handler


def requests_of(server: SocketServerThread) -> list[bytes]:
    """Return every request the server read, over all its connections, in order."""
    return [raw for conn in server.connections for raw in conn.requests]


def trace(stderr: bytes, prefix: str) -> list[str]:
    """Return the ``-v`` lines that start with ``prefix`` (``>``, ``<`` or ``*``), prefix cut."""
    return [line[2:] for line in stderr.decode("latin-1").splitlines() if line[:1] == prefix]
