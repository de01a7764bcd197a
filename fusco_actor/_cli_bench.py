"""``fusco bench``: load generation over a supervised pool.

The options follow oha, hey and wrk where they agree (``-c``, ``-n``,
``-z``, ``-R``, ``-m``, ``-H``, ``-d``, ``-D``, ``-T``,
``--disable-keepalive``); ``fusco get`` follows curl instead, so the two
differ where curl and oha do (``-m`` is the method here, curl's max-time
there). The measuring is in :mod:`fusco_actor._bench` (closed model),
:mod:`fusco_actor._bench_open` (open model), :mod:`fusco_actor._bench_workers`
(``--workers``) and :mod:`fusco_actor._bench_report` (what is printed).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import os
import re
import sys
from functools import partial
from typing import Any, Final

from fusco_actor._bench_plan import Plan, PlannedRun
from fusco_actor._bench_report import ProgressLine, format_csv, format_report, summarize
from fusco_actor._bench_stats import DEFAULT_PERCENTILES
from fusco_actor._bench_workers import run_workers
from fusco_actor._cli_common import (
    PROG,
    Failure,
    client_options,
    non_negative_int,
    positive_int,
)
from fusco_actor._cli_request import basic_authorization, get_url_argument, parse_url, read_data
from fusco_actor._server_process import ServerProcess
from fusco_actor.messages import Request

__all__ = ["add_bench_parser", "run_bench"]

DEFAULT_CONNECTIONS: Final = 16
DEFAULT_DURATION: Final = 5.0  # seconds of load when neither -n nor -z is given
HTML_MODULE: Final = "fusco_actor._bench_html"
_UNITS: Final = {"": 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "h": 3600.0}


# -- argument types ----------------------------------------------------------------------


def duration_argument(text: str) -> float:
    """Parse ``5``, ``5s``, ``500ms``, ``2m`` or ``1h`` as seconds (> 0)."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[-+]?\d+)?)\s*(ms|s|m|h|)\s*", text, re.IGNORECASE)
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else math.nan
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration (5, 5s, 500ms, 2m)")
    return value


def rate_argument(text: str) -> float:
    """Parse a positive, finite number of requests per second."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of requests/s")
    return value


def percentiles_argument(text: str) -> tuple[float, ...]:
    """Parse ``50,90,99,99.9``: percentiles above 0 and below 100, sorted, without repeats."""
    values = set()
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a percentile") from None
        if not 0 < value < 100:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not between 0 and 100")
        values.add(value)
    return tuple(sorted(values))


# -- the parser --------------------------------------------------------------------------


def add_bench_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``bench`` subcommand to the subparsers ``sub``."""
    bench = sub.add_parser(
        "bench", parents=[common], help="load-test a URL (default: the embedded server)",
        description="Load-test URL over a supervised pool and report throughput, latency "
        "and errors. Closed model (default): keep CONNECTIONS x PIPELINE requests in "
        "flight. Open model (-R RPS): send RPS requests per second whatever the server does, "
        "and measure latency from each request's intended send time. With no URL, start "
        "the embedded local server and measure against it.",
    )  # fmt: skip
    add = bench.add_argument
    add(
        "url",
        type=get_url_argument,
        nargs="?",
        metavar="URL",
        help="target; no scheme means http:// (default: the embedded server)",
    )
    add(
        "-c",
        "--connections",
        type=positive_int,
        default=DEFAULT_CONNECTIONS,
        metavar="N",
        help=f"pool size: concurrent connections (default: {DEFAULT_CONNECTIONS})",
    )
    amount = bench.add_mutually_exclusive_group()
    amount.add_argument(
        "-n", "--requests", type=positive_int, metavar="N", help="send N requests in all"
    )
    amount.add_argument(
        "-z",
        "--duration",
        type=duration_argument,
        metavar="DURATION",
        help=f"send for DURATION: 10, 10s, 500ms, 2m (default: "
        f"{DEFAULT_DURATION:g} s when -n is not given)",
    )
    add(
        "-R",
        "--rate",
        type=rate_argument,
        metavar="RPS",
        help="open model: send RPS requests per second (default: closed model)",
    )
    add(
        "-m",
        "--method",
        dest="method",
        metavar="METHOD",
        help="request method, as -X (default: GET, or POST with a body)",
    )
    body = bench.add_mutually_exclusive_group()
    body.add_argument(
        "-d", "--data", metavar="DATA|@FILE", help="request body: DATA, or the contents of FILE"
    )
    body.add_argument(
        "-D", "--data-file", metavar="FILE", help="request body from FILE (also @FILE; - = stdin)"
    )
    body.add_argument(
        "--body-size",
        type=non_negative_int,
        metavar="BYTES",
        help="a body of BYTES (to POST /echo on the embedded server)",
    )
    add("-T", "--content-type", metavar="TYPE", help="Content-Type header of the requests")
    add(
        "--disable-keepalive",
        action="store_true",
        help="a new connection for every request (sends Connection: close)",
    )
    add(
        "--pipeline",
        type=positive_int,
        default=1,
        metavar="N",
        help="requests in flight per connection (the client's pipeline option; default: 1)",
    )
    add(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="run N processes that share connections, rate and count (default: 1)",
    )
    add(
        "--percentiles",
        type=percentiles_argument,
        default=DEFAULT_PERCENTILES,
        metavar="LIST",
        help="latency percentiles to report (default: 50,75,90,99,99.9,99.99; max always)",
    )
    add("--spectrum", action="store_true", help="add the HDR percentile spectrum to the text")
    output = bench.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="print the report as one JSON object (with the time series)",
    )
    output.add_argument(
        "--csv",
        action="store_true",
        help="print the per-second time series as CSV instead of the report",
    )
    add("--html", metavar="FILE", help="also write the report with charts to FILE")
    bench.set_defaults(check=partial(_check, bench))


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject option combinations that make no sense (``parser.error``: exit 2)."""
    if args.workers > args.connections:
        parser.error(f"--workers {args.workers} needs at least as many connections (-c)")
    if args.disable_keepalive and args.pipeline > 1:
        parser.error("--disable-keepalive cannot pipeline: one request per connection")


# -- running -----------------------------------------------------------------------------


def _read(path: str) -> bytes:
    """Return what ``read_data`` reads, a file that cannot be read as a :class:`Failure`."""
    try:
        return read_data(path)
    except OSError as exc:
        raise Failure(exc) from exc


def _body(args: argparse.Namespace) -> bytes | None:
    """Return the request body the options ask for, None when they ask for none."""
    if args.data is not None:
        return _read(args.data[1:]) if args.data.startswith("@") else os.fsencode(args.data)
    if args.data_file is not None:
        return _read(args.data_file.removeprefix("@"))
    if args.body_size is not None:
        return b"x" * int(args.body_size)
    return None


def _headers(args: argparse.Namespace, credentials: bytes | None) -> list[tuple[str, str]]:
    """Return -H's headers with -T's and --disable-keepalive's, and the URL's credentials.

    ``credentials`` (``user:password`` from the URL's user-info) become a Basic
    ``Authorization`` header unless -H gives one.
    """
    replaced = set()
    extra = []
    given = {name.lower() for name, _ in args.headers}
    if credentials is not None and "authorization" not in given:
        extra.append(("Authorization", basic_authorization(credentials)))
    if args.content_type is not None:
        replaced.add("content-type")
        extra.append(("Content-Type", args.content_type))
    if args.disable_keepalive:
        replaced.add("connection")
        extra.append(("Connection", "close"))
    return [(n, v) for n, v in args.headers if n.lower() not in replaced] + extra


def _check_html(path: str | None) -> None:
    """Fail before the run when the HTML report could not be written."""
    if path is None:
        return
    try:
        module = importlib.import_module(HTML_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != HTML_MODULE:
            raise
        missing = ModuleNotFoundError(f"--html needs {HTML_MODULE}, which is missing")
        raise Failure(missing) from exc
    if importlib.util.find_spec("plotly") is None:
        hint = getattr(module, "INSTALL_HINT", "pip install plotly")
        raise Failure(ModuleNotFoundError(f"--html needs plotly, which is not installed: {hint}"))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        problem = f"--html: cannot write {path!r}: no such folder, or not writable"
        raise Failure(PermissionError(problem))


def _write_html(path: str, report: dict[str, Any]) -> None:
    try:
        page = importlib.import_module(HTML_MODULE).render_html(report)
        with open(path, "w", encoding="utf-8") as file:
            file.write(page)
    except (ImportError, OSError) as exc:  # plotly went missing; the file could not be written
        raise Failure(exc) from exc


def run_bench(args: argparse.Namespace) -> int:
    """Run ``fusco bench``; return the exit status.

    ``fusco``'s ``main`` runs it with SIGTERM raising
    :class:`~fusco_actor._signals.SignalInterrupt`: outside the measurement
    (while the embedded server, the workers or the pool start or stop) the
    ``finally`` clauses stop them; during it the load generator stops and the
    report is printed.

    Returns:
        0 when every request sent got a response, 1 when some failed or were
        unfinished, 128 + the signal's number when a signal stopped the run.

    Raises:
        Failure: a body file, the CA file or the HTML report could not be
            read or written, or a worker failed.
        SignalInterrupt: SIGTERM arrived outside the measurement.
        KeyboardInterrupt: SIGINT arrived outside the measurement.
    """
    body = _body(args)
    _check_html(args.html)
    tls = {"proxy": args.proxy, "insecure": args.insecure, "cacert": args.cacert}
    client_options(argparse.Namespace(**tls))  # a bad CA file fails here, before any process
    server = None
    try:
        if args.url is None:
            server = ServerProcess().start()  # its own process: its own GIL and CPU
            url = server.url + ("/echo" if body is not None else "/")
        else:
            url = args.url
        parsed = parse_url(url)  # user-info becomes Authorization, never shown in the report
        url, destination, path = parsed.text, parsed.destination, parsed.target
        method = args.method or ("POST" if body is not None else "GET")
        request = (path, method, _headers(args, parsed.credentials), body or b"", args.timeout)
        Request(*request)  # raises BadArgument here rather than once per request
        duration = None if args.requests else (args.duration or DEFAULT_DURATION)
        plan = Plan(
            destination, request, args.connections, args.pipeline, args.requests, duration,
            args.rate, tls,
        )  # fmt: skip
        info = {
            "url": url,
            "embedded_server": server is not None,
            "method": method.upper(),
            "path": path,
            "connections": args.connections,
            "pipeline": args.pipeline,
            "body_size": len(body or b""),
        }
        where = url if server is None else f"embedded server at {url}"
        announcement = _announcement(plan, where, args.workers)
        line = ProgressLine(sys.stderr) if sys.stderr.isatty() else None
        draw = None if line is None else line.draw
        started = partial(print, announcement, file=sys.stderr, flush=True)
        try:
            if args.workers > 1:
                result = run_workers(plan, args.workers, draw, started)
            else:
                with PlannedRun(plan) as planned:
                    result = planned.run(draw, started)
        finally:
            if line is not None:
                line.clear()
    finally:
        if server is not None:
            server.stop()
    report = summarize(result, info, args.percentiles)
    if args.json:
        print(json.dumps(report), flush=True)
    elif args.csv:
        sys.stdout.write(format_csv(report))
        sys.stdout.flush()
    else:
        print(format_report(report, spectrum=args.spectrum), flush=True)
    if args.html is not None:
        _write_html(args.html, report)
    if result.signal is not None:
        return 128 + result.signal
    failed = report["error_count"] + report["unfinished"]
    if failed:
        sent = report["requests"] + report["unfinished"]
        print(f"{PROG}: {failed} of {sent} requests failed", file=sys.stderr, flush=True)
        return 1
    return 0


def _announcement(plan: Plan, where: str, workers: int) -> str:
    amount = f"{plan.count} requests" if plan.count else f"{plan.duration:g} s"
    text = f"{PROG} bench: {where}, {plan.connections} connections, {amount}"
    if plan.rate is not None:
        text += f", {plan.rate:g} req/s"
    if workers > 1:
        text += f", {workers} workers"
    return text
