"""The ``fusco`` command line: ``fusco get`` (one request, like curl) and ``fusco bench``.

A thin layer over the public API (:func:`fusco_actor.start`,
:meth:`fusco_actor.Client.request`, :class:`fusco_actor.Pool` and the errors);
``fusco get`` lives in :mod:`fusco_actor._cli_get` (and the ``_cli_request``,
``_cli_session``, ``_cli_proxy``, ``_cli_redirects``, ``_cli_output`` and
``_cli_writeout`` modules it uses), ``fusco bench`` in
:mod:`fusco_actor._cli_bench` (its load generator in :mod:`fusco_actor._bench`).

Exit status: 0 when the command did its job (``get`` received a response,
whatever its status; ``bench`` got a response, whatever its status, to every
request it sent), 1 with a one-line ``fusco: ...`` on stderr otherwise
(``bench`` still prints its report when some requests failed), 2 for a usage
error, 22 when ``get --fail`` received a status of 400 or more (curl's code),
130 when interrupted by SIGINT and 143 by SIGTERM (``bench`` still prints the
report of what it measured and stops its embedded server).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import TYPE_CHECKING

import fusco_actor
from fusco_actor._cli_bench import add_bench_parser, run_bench
from fusco_actor._cli_common import (
    PROG,
    Failure,
    common_options,
    error_line,
    sigterm_as_interrupt,
)
from fusco_actor._cli_get import add_get_parser, run_get

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=PROG, description="HTTP/1.1 client and load generator built on fusco_actor."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {fusco_actor.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_get_parser(sub)
    add_bench_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fusco`` command line; return the exit status.

    Args:
        argv: the arguments after the program name; None = ``sys.argv[1:]``.

    Returns:
        0 on success, 1 when the request or setup failed (one line on stderr)
        or some of ``bench``'s requests failed, 2 for a usage error, 22 when
        ``get --fail`` received a status >= 400, 130 when interrupted by
        SIGINT, 143 when stopped by SIGTERM.

    Example:
        >>> main(["get", "-i", "http://127.0.0.1:8080/"])  # doctest: +SKIP
        0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        check = getattr(args, "check", None)
        if check is not None:  # a subcommand's checks across options: parser.error() exits 2
            check(args)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return exc.code if isinstance(exc.code, int) else 2
    command = run_get if args.command == "get" else run_bench
    try:
        with sigterm_as_interrupt():
            return command(args)
    except Failure as exc:
        print(error_line(exc.cause), file=sys.stderr)
    except fusco_actor.FuscoError as exc:
        print(error_line(exc), file=sys.stderr)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM during `bench` (a SignalInterrupt)
        signum: int = getattr(exc, "signum", signal.SIGINT)
        print(
            f"{PROG}: {'terminated' if signum == signal.SIGTERM else 'interrupted'}",
            file=sys.stderr,
        )
        return 128 + signum
    except BrokenPipeError:
        # The reader went away (`fusco get URL | head`): not an error worth a traceback.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    except OSError as exc:  # e.g. the embedded server could not bind
        print(error_line(exc), file=sys.stderr)
    return 1
