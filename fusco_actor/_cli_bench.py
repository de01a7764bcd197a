"""``fusco bench``: load generation over a supervised pool (see :mod:`fusco_actor._bench`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any, Final

import fusco_actor
from fusco_actor._bench import LoadGenerator, format_report, raise_signal_interrupt, summarize
from fusco_actor._cli_common import (
    PROG,
    STOP_TIMEOUT,
    client_options,
    non_negative_int,
    positive_int,
    positive_seconds,
    stop_within,
    target,
    url_argument,
)
from fusco_actor._server_process import ServerProcess
from fusco_actor.messages import Request

__all__ = ["add_bench_parser", "run_bench"]

DEFAULT_CONNECTIONS: Final = 16
DEFAULT_DURATION: Final = 5.0  # seconds of load when neither -n nor -d is given


def add_bench_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``bench`` subcommand to the subparsers ``sub``."""
    bench = sub.add_parser(
        "bench", parents=[common], help="load-test a URL (default: the embedded server)",
        description="Keep CONNECTIONS x PIPELINE requests in flight over a supervised pool "
        "and report throughput and latency. With no URL, start the embedded local "
        "server and measure against it.",
    )  # fmt: skip
    bench.add_argument(
        "url", type=url_argument, nargs="?", metavar="URL", help="target (default: embedded server)"
    )
    bench.add_argument(
        "-c", "--connections", type=positive_int, default=DEFAULT_CONNECTIONS, metavar="N",
        help=f"pool size: concurrent connections (default: {DEFAULT_CONNECTIONS})",
    )  # fmt: skip
    amount = bench.add_mutually_exclusive_group()
    amount.add_argument(
        "-n", "--requests", type=positive_int, metavar="N", help="send N requests in all"
    )
    amount.add_argument(
        "-d", "--duration", type=positive_seconds, metavar="SECONDS",
        help=f"send for SECONDS (default: {DEFAULT_DURATION:g} when -n is not given)",
    )  # fmt: skip
    bench.add_argument(
        "--body-size", type=non_negative_int, metavar="BYTES",
        help="send a body of BYTES (to POST /echo on the embedded server)",
    )  # fmt: skip
    bench.add_argument(
        "--pipeline", type=positive_int, default=1, metavar="N",
        help="requests in flight per connection (the client's pipeline option; default: 1)",
    )  # fmt: skip
    bench.add_argument("--json", action="store_true", help="print the report as one JSON object")


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


def run_bench(args: argparse.Namespace) -> int:
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
        destination, path = target(url)
        body = b"x" * (args.body_size or 0)
        method = args.method or ("POST" if args.body_size is not None else "GET")
        request = (path, method, args.headers, body, args.timeout)
        Request(*request)  # raises BadArgument here rather than once per request
        options = client_options(args)
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
            stop_within(pool.stop, STOP_TIMEOUT)
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
