"""fusco_actor: a fast, slim, connection-oriented HTTP/1.1 client built as pykka actors.

Each :class:`Client` is a pykka actor owning one keep-alive connection to one
host; callers send requests and get pykka futures back. README.md and the
documentation in docs/ (``make docs``) have the whole contract. Every time is
in seconds (float; None = no limit).

Example:
    >>> import fusco_actor
    >>> client = fusco_actor.start("http://127.0.0.1:8080")  # doctest: +SKIP
    >>> fusco_actor.request(client, "/", "GET", [], b"", 5.0).status  # doctest: +SKIP
    200
"""

from __future__ import annotations

import logging
from typing import Any

from fusco_actor._connect_parts import ConnectInfo
from fusco_actor._exceptions import (
    BadArgument,
    BadOption,
    ClientStopped,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    FuscoError,
    PoolTimeout,
    ProtocolError,
    ProxyError,
    RequestTimeout,
    TLSError,
)
from fusco_actor._handle import Client
from fusco_actor._headers import Headers
from fusco_actor._options import parse_destination, parse_options
from fusco_actor._pool import Pool
from fusco_actor._response import Response
from fusco_actor._streaming import StreamingResponse
from fusco_actor._supervisor import Supervisor

__version__ = "0.1.0"

__all__ = [
    "BadArgument",
    "BadOption",
    "Client",
    "ClientStopped",
    "ConnectError",
    "ConnectInfo",
    "ConnectTimeout",
    "ConnectionClosed",
    "FuscoError",
    "Headers",
    "Pool",
    "PoolTimeout",
    "ProtocolError",
    "ProxyError",
    "RequestTimeout",
    "Response",
    "StreamingResponse",
    "Supervisor",
    "TLSError",
    "__version__",
    "connect",
    "disconnect",
    "request",
    "start",
    "start_link",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def start(destination: Any, **options: Any) -> Client:
    """Start a client actor for ``destination``; it connects on first use.

    Args:
        destination: ``"http://host[:port]"``, ``"https://host[:port]"`` (IPv6
            as ``[::1]``) or a ``(host, port, is_ssl)`` tuple.
        **options: see README "Options" (``connect_timeout`` seconds, ...).

    Raises:
        BadArgument: the destination is not a valid http/https URL or tuple.
        BadOption: an option's name, type or value is wrong (before any actor starts).

    Example:
        >>> url = "http://127.0.0.1:8080"
        >>> client = fusco_actor.start(url, connect_timeout=2.0)  # doctest: +SKIP
    """
    return Client(parse_destination(destination), parse_options(options))


def start_link(destination: Any, supervisor: Supervisor, **options: Any) -> Client:
    """Start a client under ``supervisor``: restarted with the same options when it crashes.

    Raises:
        BadArgument: a bad destination.
        BadOption: a bad option.
        ClientStopped: the supervisor has stopped.
    """
    return supervisor.start_client(destination, **options)


def connect(client: Client) -> None:
    """Connect ``client`` now (blocking).

    Raises:
        ConnectError, ConnectTimeout, TLSError, ProxyError: the connect failed.
    """
    client.connect()


def request(
    client: Client, path: Any, method: Any, headers: Any, body: Any, *rest: Any
) -> Response:
    """Send a request and wait for its response (fusco's request/6 and request/7).

    Called as ``request(client, path, method, headers, body, timeout)`` or
    ``request(client, path, method, headers, body, send_retry, timeout)``;
    ``timeout`` in seconds for the whole exchange (None = no limit).

    Raises:
        BadArgument: a bad argument (nothing is sent).
        FuscoError: the request failed (``ConnectError``, ``RequestTimeout``, ...).
    """
    if len(rest) == 1:
        send_retry, timeout = None, rest[0]
    elif len(rest) == 2:
        send_retry, timeout = rest
    else:
        raise BadArgument(
            "request takes (client, path, method, headers, body, [send_retry,] timeout)"
        )
    return client.request_blocking(path, method, headers, body, timeout, send_retry)


def disconnect(client: Client) -> None:
    """Serve what is queued on ``client``, close its connection and stop it."""
    client.disconnect()
