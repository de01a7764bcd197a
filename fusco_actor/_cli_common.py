"""What the ``fusco`` subcommands share: argument types, common options, helpers."""

from __future__ import annotations

import argparse
import contextlib
import signal
import ssl
import threading
from typing import Any, Final

from fusco_actor._signals import raise_signal_interrupt, signals_handled

__all__ = [
    "DEFAULT_TIMEOUT",
    "PROG",
    "STOP_TIMEOUT",
    "Failure",
    "client_options",
    "common_options",
    "error_line",
    "header",
    "int_at_least",
    "non_negative_int",
    "positive_int",
    "positive_seconds",
    "sigterm_as_interrupt",
    "stop_within",
    "tls_options",
]

PROG: Final = "fusco"
DEFAULT_TIMEOUT: Final = 30.0  # seconds for one whole exchange
STOP_TIMEOUT: Final = 5.0  # seconds to wait for the pool or client to stop on the way out


class Failure(Exception):
    """A setup step failed; reported as ``fusco: <cause class>: <cause>`` with exit status 1.

    ``Failure(exc)`` wraps the exception that made the step fail;
    ``Failure("message")`` (as :class:`~fusco_actor._bench_workers.WorkerFailed`) is its own cause.
    """

    @property
    def cause(self) -> BaseException:
        """Return the exception to report: the one wrapped, else this failure itself."""
        first = self.args[0] if self.args else None
        return first if isinstance(first, BaseException) else self


# -- argument types ----------------------------------------------------------------------


def int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    return value


def positive_int(text: str) -> int:
    return int_at_least(1, text)


def non_negative_int(text: str) -> int:
    return int_at_least(0, text)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def common_options() -> argparse.ArgumentParser:
    """Return the parent parser of the options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-X", "--request", dest="method", metavar="METHOD",
        help="request method (default: GET, or POST when a body is sent)",
    )  # fmt: skip
    common.add_argument(
        "-H", "--header", dest="headers", metavar="'NAME: VALUE'", type=header,
        action="append", default=[], help="add a request header (repeatable)",
    )  # fmt: skip
    common.add_argument(
        "--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT, metavar="S",
        help=f"seconds for each whole exchange, connect included (default: {DEFAULT_TIMEOUT:g})",
    )  # fmt: skip
    common.add_argument(
        "--proxy", metavar="URL", help="forward proxy, http://[user:pass@]host:port"
    )
    tls = common.add_mutually_exclusive_group()
    tls.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    tls.add_argument("--cacert", metavar="FILE", help="verify the server with this CA bundle")
    return common


# -- helpers -----------------------------------------------------------------------------


def tls_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return the ``ssl_context`` option of --insecure or --cacert (none when neither is given).

    Raises:
        Failure: the CA file cannot be loaded.
    """
    try:
        if args.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return {"ssl_context": context}
        if args.cacert:
            return {"ssl_context": ssl.create_default_context(cafile=args.cacert)}
    except (OSError, ssl.SSLError) as exc:
        raise Failure(exc) from exc
    return {}


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return ``start`` options from --proxy, --insecure and --cacert."""
    options = tls_options(args)
    if args.proxy:
        options["proxy"] = args.proxy
    return options


def error_line(exc: BaseException) -> str:
    """Return ``fusco: ErrorClass: message`` on one line."""
    message = " ".join(str(exc).split())
    return f"{PROG}: {type(exc).__name__}" + (f": {message}" if message else "")


def stop_within(stop: Any, seconds: float) -> None:
    """Call ``stop()`` in a daemon thread; give up waiting after ``seconds``."""
    thread = threading.Thread(target=stop, name="fusco-cli-stop", daemon=True)
    thread.start()
    thread.join(seconds)


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """Within the block, SIGTERM raises :class:`~fusco_actor._signals.SignalInterrupt`.

    ``SignalInterrupt`` is a ``KeyboardInterrupt``, so SIGTERM runs the
    cleanup Ctrl-C runs (``finally`` clauses stop clients, pools, workers and
    the embedded server; ``fusco get -o`` removes its temporary file) and
    ``fusco`` exits 143. Only in the main thread, and not when SIGTERM is
    ignored (as under ``nohup``); the previous handler comes back afterwards.
    """
    return signals_handled(raise_signal_interrupt, (signal.SIGTERM,))
