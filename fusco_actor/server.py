"""The embedded loopback HTTP/1.1 server to try fusco_actor on: ``python -m fusco_actor.server``.

It serves ``http://127.0.0.1:8080`` (``--port``, ``--host``: loopback
addresses only) in the foreground until Ctrl-C or SIGTERM. The README's
snippets and the examples talk to it; ``fusco bench`` with no URL starts the
same server in a child process. Its routes are listed on the documentation's
"Embedded server" page (``docs/server.md``): ``/``, ``/bytes/N``,
``/chunked/N``, ``/echo``, ``/headers``, ``/status/N``, ``/delay/S``,
``/close``, ``/set-cookie?name=value`` and ``/cookies``.

In a program or a test, start it in a thread of its own with
:class:`EmbeddedServer` (a context manager; port ``0`` picks a free port).

Example:
    >>> from fusco_actor.server import EmbeddedServer
    >>> with EmbeddedServer() as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:41297
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING

from fusco_actor._server import EmbeddedServer
from fusco_actor._server_process import serve_until_interrupted

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["DEFAULT_PORT", "EmbeddedServer", "main"]

DEFAULT_PORT = 8080


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into the KeyboardInterrupt that Ctrl-C raises, once."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Serve on ``--host`` (default 127.0.0.1) and ``--port`` (default 8080) until stopped.

    Prints ``serving on URL (Ctrl-C to stop)`` once listening; Ctrl-C
    (SIGINT) or SIGTERM stop it.

    Args:
        argv: the arguments after the program name; None = ``sys.argv[1:]``.

    Returns:
        0 after a stop by SIGINT or SIGTERM; 1 when the server could not
        start (a port in use, a host that is not loopback), with a one-line
        ``error: ...`` on stderr; 2 for a usage error.
    """
    parser = argparse.ArgumentParser(
        prog="python -m fusco_actor.server",
        description="Serve the embedded HTTP/1.1 test server on a loopback address.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (default: 8080; 0 = any free port)"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, 0 for --help
        return exc.code if isinstance(exc.code, int) else 2
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return serve_until_interrupted(args.host, args.port)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
