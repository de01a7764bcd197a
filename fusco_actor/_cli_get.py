"""``fusco get``: one request, like curl, with the body streamed in bounded memory.

The request is built by :mod:`fusco_actor._cli_request` (URL, method,
headers, body), sent by :mod:`fusco_actor._cli_session` (one client per
origin, ``-m``/``--connect-timeout``, proxies from :mod:`fusco_actor._cli_proxy`),
redirects are followed by :mod:`fusco_actor._cli_redirects`, the body goes
to :class:`~fusco_actor._cli_output.Sink` piece by piece as it arrives, and
``-w`` is :mod:`fusco_actor._cli_writeout`.
"""

from __future__ import annotations

import argparse
import posixpath
import sys
import time
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin

import fusco_actor
from fusco_actor._cli_common import (
    PROG,
    Failure,
    error_line,
    header,
    non_negative_int,
    positive_seconds,
)
from fusco_actor._cli_output import Sink, Trace, format_head
from fusco_actor._cli_redirects import (
    DEFAULT_MAX_REDIRS,
    BadRedirect,
    Hop,
    TooManyRedirects,
    location_of,
    next_hop,
)
from fusco_actor._cli_request import (
    basic_credentials,
    build_body,
    build_headers,
    choose_method,
    get_url_argument,
    parse_url,
)
from fusco_actor._cli_session import Session
from fusco_actor._cli_writeout import Stats, write_out_argument

if TYPE_CHECKING:
    from fusco_actor._cli_request import Url
    from fusco_actor._cli_writeout import WriteOut

__all__ = ["EXIT_FAILED", "EXIT_HTTP_ERROR", "EXIT_OK", "EXIT_USAGE", "add_get_parser", "run_get"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_HTTP_ERROR: Final = 22  # curl's CURLE_HTTP_RETURNED_ERROR, with --fail
DRAIN_LIMIT: Final = 1 << 20  # bytes of a redirect's body read to keep its connection

EPILOG = f"""\
exit status:
  0    a response arrived (any status, unless --fail)
  1    the request failed: connect, TLS, proxy, timeout, protocol, file error
       or too many redirects (one line "{PROG}: ErrorKind: message" on stderr)
  2    usage error (bad option, URL or -w variable)
  22   --fail and the status was 400 or more
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)

examples:
  {PROG} get 127.0.0.1:8080/x                      http:// is implied
  {PROG} get -fsSL -o page.html https://example.test/
  {PROG} get -v -u alice:secret http://127.0.0.1:8080/private
  {PROG} get --json '{{"a": 1}}' http://127.0.0.1:8080/api
  {PROG} get -d @form.txt --data-binary @blob.bin http://127.0.0.1:8080/upload
  {PROG} get -o /dev/null -w '%{{http_code}} %{{time_total}}\\n' http://127.0.0.1:8080/

proxies: -x URL, else http_proxy (http URLs), https_proxy or HTTPS_PROXY
(https URLs), then all_proxy or ALL_PROXY; --noproxy LIST, else no_proxy or
NO_PROXY, lists the hosts reached directly ('*' = all).
"""


class _DataAction(argparse.Action):
    """Append ``(kind, value)`` to ``data_parts``, keeping the order of every data option."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parts = list(getattr(namespace, self.dest) or [])
        parts.append((self.const, values))
        setattr(namespace, self.dest, parts)


def _max_redirs(text: str) -> int:
    if text.strip() == "-1":
        return -1
    return non_negative_int(text)


def add_get_parser(sub: Any) -> None:
    """Add the ``get`` subcommand to the subparsers ``sub``."""
    get = sub.add_parser(
        "get", help="make one request, like curl",
        description="Make one request, like curl: the body goes to stdout (or -o FILE)\n"
        "as it arrives, in bounded memory.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add = get.add_argument
    # fmt: off
    add("url", type=get_url_argument, metavar="URL", help="http:// or https:// URL (default http)")
    add("-X", "--request", dest="method", metavar="METHOD",
        help="request method (default: GET; POST with data; HEAD with -I)")
    add("-H", "--header", dest="headers", metavar="'NAME: VALUE'", type=header, action="append",
        default=[], help="add a request header, or replace fusco's; 'NAME:' removes it")
    add("-A", "--user-agent", metavar="NAME",
        help=f"User-Agent (default: fusco_actor/{fusco_actor.__version__}; '' = none)")
    add("-u", "--user", metavar="USER[:PASSWORD]",
        help="Basic authentication (asks for the password when none is given)")
    data = {"dest": "data_parts", "action": _DataAction, "metavar": "DATA"}
    add("-d", "--data", const="data", help="send DATA (POST, form type); @FILE reads a file "
        "without its CR/LF, @- stdin; repeated: joined with &", **data)
    add("--data-binary", const="binary", help="like -d, but @FILE is sent as it is", **data)
    add("--data-raw", const="raw", help="like -d, but @ is no file name", **data)
    add("--data-urlencode", const="urlencode",
        help="like -d, URL-encoded: CONTENT, =CONTENT, NAME=CONTENT, @FILE, NAME@FILE", **data)
    add("--json", const="json", help="send JSON (like --data-binary; Content-Type and Accept: "
        "application/json)", **data)
    add("--data-file", const="file", help="= --data-binary @FILE (- = stdin)",
        **{**data, "metavar": "FILE"})
    add("-i", "--include", action="store_true", help="write the response head before the body")
    add("-I", "--head", action="store_true", help="send HEAD; write the response head only")
    out = get.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", metavar="FILE",
                     help="write the body to FILE, which appears only once complete")
    out.add_argument("-O", "--remote-name", action="store_true",
                     help="write to a file named like the URL's last path segment")
    add("-v", "--verbose", action="store_true", help="trace the heads sent (>) and received (<)")
    add("-s", "--silent", action="store_true", help="no error message")
    add("-S", "--show-error", action="store_true", help="with -s: still the error message")
    add("-f", "--fail", action="store_true",
        help=f"status >= 400: no output, exit {EXIT_HTTP_ERROR}")
    add("-L", "--location", action="store_true", help="follow redirects (301-303, 307, 308)")
    add("--max-redirs", type=_max_redirs, default=DEFAULT_MAX_REDIRS, metavar="N",
        help=f"follow at most N redirects (default: {DEFAULT_MAX_REDIRS}; -1 = no limit)")
    add("--location-trusted", action="store_true",
        help="with -L: send Authorization and Cookie to other hosts too")
    add("-w", "--write-out", type=write_out_argument, metavar="FORMAT",
        help="write FORMAT after the transfer: %%{http_code}, %%{time_total}, ... (see README)")
    add("--connect-timeout", type=positive_seconds, metavar="S",
        help="seconds to connect (TLS included)")
    add("-m", "--max-time", "--timeout", dest="timeout", type=positive_seconds, metavar="S",
        help="seconds for the whole run, redirects and body included (default: no limit)")
    add("-x", "--proxy", metavar="URL", help="HTTP proxy http://[user:pass@]host[:port] "
        "('' = none; default: the environment, see below)")
    add("--noproxy", metavar="LIST", help="hosts reached without proxy (comma-separated)")
    tls = get.add_mutually_exclusive_group()
    tls.add_argument("-k", "--insecure", action="store_true",
                     help="do not verify the server's certificate")
    tls.add_argument("--cacert", metavar="FILE", help="verify the server with this CA bundle")
    # fmt: on


def _remote_name(given: str, url: Url) -> str:
    """Return ``-O``'s file name: the last segment of ``url``'s path (``given``: as typed)."""
    name = posixpath.basename(url.target.partition("?")[0])
    if not name:
        raise Failure(ValueError(f"-O: {given!r} has no file name in its path"))
    return name


def run_get(args: argparse.Namespace) -> int:
    """Run ``fusco get``; return its exit status (see the epilog).

    ``fusco``'s ``main`` runs it with SIGTERM raising
    :class:`~fusco_actor._signals.SignalInterrupt`, so that the ``-o``
    temporary file is removed and the clients stopped, as on Ctrl-C.
    """
    if args.head and args.data_parts:
        print(f"{PROG} get: error: -I (HEAD) sends no body: drop -d/--json", file=sys.stderr)
        return EXIT_USAGE
    url = parse_url(args.url)
    try:
        body = build_body(args.data_parts)
    except OSError as exc:
        raise Failure(exc) from exc
    credentials = basic_credentials(args.user) if args.user is not None else url.credentials
    headers = build_headers(args.headers, credentials, args.user_agent, body)
    hop = Hop.first(url, choose_method(args, body), headers, body)
    stats = Stats(url=args.url, started=time.monotonic())
    output = _remote_name(args.url, url) if args.remote_name else args.output
    trace = Trace(args.verbose)
    session = Session(args, trace, stats.started)  # no client yet: nothing to stop on failure
    try:
        sink = Sink(output)  # the last step that may fail before the try below cleans up
    except OSError as exc:
        raise Failure(exc) from exc
    stats.filename = sink.name or ""
    try:
        return _transfer(args, session, hop, sink, stats, trace)
    except KeyboardInterrupt:
        session.stop_wait = 0.0  # the actors run in daemon threads: do not wait for them
        raise
    except BrokenPipeError:
        raise
    except (fusco_actor.FuscoError, TooManyRedirects, BadRedirect, Failure, OSError) as exc:
        cause = exc.cause if isinstance(exc, Failure) else exc
        lines = [error_line(cause)]
        if sink.name is not None and sink.written:
            lines.append(f"{PROG}: {sink.name} left as it was: the {sink.written} bytes "
                         "received were discarded")  # fmt: skip
        return _fail(args, stats, EXIT_FAILED, " ".join(str(cause).split()), lines)
    finally:
        sink.discard()  # after commit() this only closes
        session.close()


def _write_out(write_out: WriteOut | None, stats: Stats) -> None:
    if write_out is not None:
        sys.stdout.flush()
        write_out.write(stats)


def _fail(
    args: argparse.Namespace, stats: Stats, exitcode: int, errormsg: str, lines: list[str]
) -> int:
    """End the run with ``exitcode``: -w's output, then ``lines`` on stderr unless -s."""
    stats.ended_at = time.monotonic()
    stats.exitcode, stats.errormsg = exitcode, errormsg
    _write_out(args.write_out, stats)
    if not args.silent or args.show_error:
        for line in lines:
            print(line, file=sys.stderr)
    return exitcode


def _drain(response: fusco_actor.StreamingResponse) -> None:
    """Read and drop a small body, so that its connection can serve the next request."""
    read = 0
    for chunk in response.iter_bytes():
        read += len(chunk)
        if read > DRAIN_LIMIT:
            break  # the response is closed on the way out, and so is its connection


def _transfer(
    args: argparse.Namespace, session: Session, hop: Hop, sink: Sink, stats: Stats, trace: Trace
) -> int:
    while True:
        response = session.exchange(hop, stats)
        with response:
            head = format_head(response.version, response.status, response.reason,
                               response.headers)  # fmt: skip
            trace.received(head)
            location = location_of(response.status, response.headers)
            if args.location and location is not None:
                if args.include or args.head:
                    sink.write(head)
                _drain(response)
                stats.ended_at = time.monotonic()
                hop = next_hop(hop, response.status, location, args.max_redirs,
                               args.location_trusted)  # fmt: skip
                stats.num_redirects = hop.redirects
                trace.note(f"Issue another request to this URL: '{hop.url.text}'")
                continue
            if location is not None:
                stats.redirect_url = urljoin(hop.url.text, location)
            if args.fail and response.status >= 400:
                line = f"{PROG}: the requested URL returned error: {response.status} "
                return _fail(args, stats, EXIT_HTTP_ERROR,
                             f"The requested URL returned error: {response.status}",
                             [(line + response.reason).rstrip()])  # fmt: skip
            if args.include or args.head:
                sink.write(head)
            for chunk in response.iter_bytes():
                sink.write(chunk)
                stats.size_download += len(chunk)
            stats.ended_at = time.monotonic()
        sink.commit()
        _write_out(args.write_out, stats)
        return EXIT_OK
