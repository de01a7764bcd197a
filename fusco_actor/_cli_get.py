"""``fusco get``: one request, like curl."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import fusco_actor
from fusco_actor._cli_common import (
    STOP_TIMEOUT,
    Failure,
    client_options,
    stop_within,
    target,
    url_argument,
)

__all__ = ["add_get_parser", "run_get"]


def add_get_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``get`` subcommand to the subparsers ``sub``."""
    get = sub.add_parser(
        "get", parents=[common], help="make one request and print the response body",
        description="Make one request; write the body to stdout (exit 0 for any response).",
    )  # fmt: skip
    get.add_argument("url", type=url_argument, metavar="URL", help="http:// or https:// URL")
    data = get.add_mutually_exclusive_group()
    data.add_argument("-d", "--data", metavar="DATA", help="request body")
    data.add_argument(
        "--data-file", metavar="FILE", help="read the request body from FILE (- = stdin)"
    )
    get.add_argument(
        "-i", "--include", action="store_true", help="print the status line and headers first"
    )


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
        raise Failure(exc) from exc


def run_get(args: argparse.Namespace) -> int:
    destination, path = target(args.url)
    body = _read_body(args)
    method = args.method or ("POST" if args.data is not None or args.data_file else "GET")
    client = fusco_actor.start(destination, **client_options(args))
    wait = STOP_TIMEOUT
    try:
        response = client.request(path, method, args.headers, body, args.timeout).get()
    except KeyboardInterrupt:
        wait = 0.0  # the actor runs in a daemon thread: do not wait for the request
        raise
    finally:
        stop_within(client.disconnect, wait)
    out = sys.stdout.buffer
    if args.include:
        head = [f"{response.version} {response.status} {response.reason}".rstrip()]
        head += [f"{name}: {value}" for name, value in response.headers]
        out.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    out.write(response.body)
    out.flush()
    return 0
