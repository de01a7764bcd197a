"""The ``fusco`` command line: ``fusco get`` (one request, like curl) and ``fusco bench``.

A thin layer over the public API (:func:`fusco_actor.start`,
:meth:`fusco_actor.Client.request`, :class:`fusco_actor.Pool` and the errors);
the load generator lives in :mod:`fusco_actor._bench`. Exit status: 0 when the
command did its job (``get`` received a response, whatever its status; ``bench``
got a response, whatever its status, to every request it sent), 1 with a
one-line ``fusco: ...`` on stderr otherwise (``bench`` still prints its report
when some requests failed), 2 for a usage error, 130 when interrupted by SIGINT
and 143 by SIGTERM (``bench`` still prints the report of what it measured and
stops its embedded server).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import ssl
import sys
import threading
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import fusco_actor
from fusco_actor._bench import LoadGenerator, format_report, raise_signal_interrupt, summarize
from fusco_actor._server_process import ServerProcess
from fusco_actor.messages import Request

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

PROG: Final = "fusco"
DEFAULT_TIMEOUT: Final = 30.0  # seconds for one whole exchange
DEFAULT_CONNECTIONS: Final = 16
DEFAULT_DURATION: Final = 5.0  # seconds of load when neither -n nor -d is given
STOP_TIMEOUT: Final = 5.0  # seconds to wait for the pool or client to stop on the way out


class _Failure(Exception):
    """A setup step failed; reported as ``fusco: <cause class>: <cause>`` with exit status 1."""


# -- argument types ----------------------------------------------------------------------


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(1, text)


def _non_negative_int(text: str) -> int:
    return _int_at_least(0, text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not 'Name: value'")
    return name.strip(), value.strip()


def _url(text: str) -> str:
    scheme = urlsplit(text).scheme.lower()
    if scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


# -- the parser --------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-X", "--request", dest="method", metavar="METHOD",
        help="request method (default: GET, or POST when a body is sent)",
    )  # fmt: skip
    common.add_argument(
        "-H", "--header", dest="headers", metavar="'NAME: VALUE'", type=_header,
        action="append", default=[], help="add a request header (repeatable)",
    )  # fmt: skip
    common.add_argument(
        "--timeout", type=_positive_seconds, default=DEFAULT_TIMEOUT, metavar="S",
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

    parser = argparse.ArgumentParser(
        prog=PROG, description="HTTP/1.1 client and load generator built on fusco_actor."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {fusco_actor.__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    get = sub.add_parser(
        "get", parents=[common], help="make one request and print the response body",
        description="Make one request; write the body to stdout (exit 0 for any response).",
    )  # fmt: skip
    get.add_argument("url", type=_url, metavar="URL", help="http:// or https:// URL")
    data = get.add_mutually_exclusive_group()
    data.add_argument("-d", "--data", metavar="DATA", help="request body")
    data.add_argument(
        "--data-file", metavar="FILE", help="read the request body from FILE (- = stdin)"
    )
    get.add_argument(
        "-i", "--include", action="store_true", help="print the status line and headers first"
    )

    bench = sub.add_parser(
        "bench", parents=[common], help="load-test a URL (default: the embedded server)",
        description="Keep CONNECTIONS x PIPELINE requests in flight over a supervised pool "
        "and report throughput and latency. With no URL, start the embedded local "
        "server and measure against it.",
    )  # fmt: skip
    bench.add_argument(
        "url", type=_url, nargs="?", metavar="URL", help="target (default: embedded server)"
    )
    bench.add_argument(
        "-c", "--connections", type=_positive_int, default=DEFAULT_CONNECTIONS, metavar="N",
        help=f"pool size: concurrent connections (default: {DEFAULT_CONNECTIONS})",
    )  # fmt: skip
    amount = bench.add_mutually_exclusive_group()
    amount.add_argument(
        "-n", "--requests", type=_positive_int, metavar="N", help="send N requests in all"
    )
    amount.add_argument(
        "-d", "--duration", type=_positive_seconds, metavar="SECONDS",
        help=f"send for SECONDS (default: {DEFAULT_DURATION:g} when -n is not given)",
    )  # fmt: skip
    bench.add_argument(
        "--body-size", type=_non_negative_int, metavar="BYTES",
        help="send a body of BYTES (to POST /echo on the embedded server)",
    )  # fmt: skip
    bench.add_argument(
        "--pipeline", type=_positive_int, default=1, metavar="N",
        help="requests in flight per connection (the client's pipeline option; default: 1)",
    )  # fmt: skip
    bench.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return parser


# -- shared helpers ----------------------------------------------------------------------


def _client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Return ``start`` options from --proxy, --insecure and --cacert."""
    options: dict[str, Any] = {}
    if args.proxy:
        options["proxy"] = args.proxy
    try:
        if args.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            options["ssl_context"] = context
        elif args.cacert:
            options["ssl_context"] = ssl.create_default_context(cafile=args.cacert)
    except (OSError, ssl.SSLError) as exc:
        raise _Failure(exc) from exc
    return options


def _target(url: str) -> tuple[str, str]:
    """Split a URL into the destination (scheme://netloc) and the request path (path?query)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}", path


def _error_line(exc: BaseException) -> str:
    """Return ``fusco: ErrorClass: message`` on one line."""
    message = " ".join(str(exc).split())
    return f"{PROG}: {type(exc).__name__}" + (f": {message}" if message else "")


def _stop_within(stop: Any, seconds: float) -> None:
    """Call ``stop()`` in a daemon thread; give up waiting after ``seconds``."""
    thread = threading.Thread(target=stop, name="fusco-cli-stop", daemon=True)
    thread.start()
    thread.join(seconds)


# -- fusco get ---------------------------------------------------------------------------


def _read_body(args: argparse.Namespace) -> bytes:
    if args.data is not None:
        return os.fsencode(args.data)
    if args.data_file is None:
        return b""
    if args.data_file == "-":
        return sys.stdin.buffer.read()
    try:
        with open(args.data_file, "rb") as file:
            return file.read()
    except OSError as exc:
        raise _Failure(exc) from exc


def _cmd_get(args: argparse.Namespace) -> int:
    destination, path = _target(args.url)
    body = _read_body(args)
    method = args.method or ("POST" if args.data is not None or args.data_file else "GET")
    client = fusco_actor.start(destination, **_client_options(args))
    wait = STOP_TIMEOUT
    try:
        response = client.request(path, method, args.headers, body, args.timeout).get()
    except KeyboardInterrupt:
        wait = 0.0  # the actor runs in a daemon thread: do not wait for the request
        raise
    finally:
        _stop_within(client.disconnect, wait)
    out = sys.stdout.buffer
    if args.include:
        head = [f"{response.version} {response.status} {response.reason}".rstrip()]
        head += [f"{name}: {value}" for name, value in response.headers]
        out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    out.write(response.body)
    out.flush()
    return 0


# -- fusco bench -------------------------------------------------------------------------


def _lanes(pool: fusco_actor.Pool, connections: int, pipeline: int, timeout: float) -> list[Any]:
    """Return the senders that keep ``connections x pipeline`` requests in flight.

    Without pipelining every lane is ``Pool.request``: the pool hands each
    request to a free client. The pool lends a client to one request at a
    time, so to pipeline, each client is checked out once and gets
    ``pipeline`` lanes of its own ``Client.request``.
    """
    if pipeline == 1:
        return [pool.request] * connections
    clients = [pool.get_client(timeout) for _ in range(connections)]
    return [client.request for client in clients for _ in range(pipeline)]


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run ``fusco bench`` with SIGTERM handled like SIGINT; return the exit status.

    Outside the measurement (while the embedded server or the pool starts or
    stops) SIGTERM raises :class:`~fusco_actor._bench.SignalInterrupt`, so
    that the ``finally`` clauses stop them; during it the load generator stops
    and the report is printed.

    Returns:
        0 when every request sent got a response, 1 when some failed or were
        unfinished, 128 + the signal's number when a signal stopped the run.

    Raises:
        SignalInterrupt: SIGTERM arrived outside the measurement.
        KeyboardInterrupt: SIGINT arrived outside the measurement.
    """
    restore: Any = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
    ):
        restore = signal.signal(signal.SIGTERM, raise_signal_interrupt)
    try:
        return _bench(args)
    finally:
        if restore is not None:
            signal.signal(signal.SIGTERM, restore)


def _bench(args: argparse.Namespace) -> int:
    server = None
    try:
        if args.url is None:
            server = ServerProcess().start()  # its own process: its own GIL and CPU
            url = server.url + ("/echo" if args.body_size is not None else "/")
        else:
            url = args.url
        destination, path = _target(url)
        body = b"x" * (args.body_size or 0)
        method = args.method or ("POST" if args.body_size is not None else "GET")
        request = (path, method, args.headers, body, args.timeout)
        Request(*request)  # raises BadArgument here rather than once per request
        options = _client_options(args)
        info = {
            "url": url,
            "embedded_server": server is not None,
            "method": method.upper(),
            "path": path,
            "connections": args.connections,
            "pipeline": args.pipeline,
            "body_size": len(body),
        }
        duration = args.duration or DEFAULT_DURATION
        amount = f"{args.requests} requests" if args.requests else f"{duration:g} s"
        where = f"embedded server at {url}" if server is not None else url
        announcement = f"{PROG} bench: {where}, {args.connections} connections, {amount}"
        pool = fusco_actor.Pool.start(
            destination, max_clients=args.connections, pipeline=args.pipeline, **options
        )
        try:
            generator = LoadGenerator(
                _lanes(pool, args.connections, args.pipeline, args.timeout),
                request,
                count=args.requests,
                duration=duration,
                progress=sys.stderr if sys.stderr.isatty() else None,
            )
            generator.run(on_started=lambda: print(announcement, file=sys.stderr, flush=True))
        finally:
            _stop_within(pool.stop, STOP_TIMEOUT)
        report = summarize(generator, info)
    finally:
        if server is not None:
            server.stop()
    if args.json:
        print(json.dumps(report), flush=True)
    else:
        print(format_report(report), flush=True)
    if generator.signal is not None:
        return 128 + generator.signal
    failed = report["error_count"] + report["unfinished"]
    if failed:
        sent = report["requests"] + report["unfinished"]
        print(f"{PROG}: {failed} of {sent} requests failed", file=sys.stderr, flush=True)
        return 1
    return 0


# -- entry point -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fusco`` command line; return the exit status.

    Args:
        argv: the arguments after the program name; None = ``sys.argv[1:]``.

    Returns:
        0 on success, 1 when the request or setup failed (one line on stderr)
        or some of ``bench``'s requests failed, 2 for a usage error, 130 when
        interrupted by SIGINT, 143 when ``bench`` is stopped by SIGTERM.

    Example:
        >>> main(["get", "-i", "http://127.0.0.1:8080/"])  # doctest: +SKIP
        0
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 for --help
        return exc.code if isinstance(exc.code, int) else 2
    command = _cmd_get if args.command == "get" else _cmd_bench
    try:
        return command(args)
    except _Failure as exc:
        cause = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
        print(_error_line(cause), file=sys.stderr)
    except fusco_actor.FuscoError as exc:
        print(_error_line(exc), file=sys.stderr)
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
        print(_error_line(exc), file=sys.stderr)
    return 1
