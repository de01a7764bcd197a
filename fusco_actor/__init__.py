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
from typing import TYPE_CHECKING, Any, overload

from fusco_actor._connect_parts import ConnectInfo
from fusco_actor._cookies import Cookie, CookieJar
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
from fusco_actor._options import (
    ClientOptions,
    ConnectOptions,
    DestinationLike,
    Unpack,
    parse_destination,
    parse_options,
)
from fusco_actor._pool import Pool
from fusco_actor._response import Response
from fusco_actor._streaming import StreamingResponse
from fusco_actor._supervisor import Supervisor
from fusco_actor._version import __version__

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "BadArgument",
    "BadOption",
    "Client",
    "ClientOptions",
    "ClientStopped",
    "ConnectError",
    "ConnectInfo",
    "ConnectOptions",
    "ConnectTimeout",
    "ConnectionClosed",
    "Cookie",
    "CookieJar",
    "DestinationLike",
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


def start(destination: DestinationLike, **options: Unpack[ClientOptions]) -> Client:
    """Start a client actor for ``destination``; it connects on first use.

    Args:
        destination: ``"http://host[:port]"``, ``"https://host[:port]"`` (IPv6
            as ``[::1]``) or a ``(host, port, is_ssl)`` tuple.
        **options: the keys of :class:`ClientOptions` (see README "Options";
            ``connect_timeout`` seconds, ...); a type checker checks names and types.

    Raises:
        BadArgument: the destination is not a valid http/https URL or tuple.
        BadOption: an option's name, type or value is wrong (before any actor starts).

    Example:
        >>> url = "http://127.0.0.1:8080"
        >>> client = fusco_actor.start(url, connect_timeout=2.0)  # doctest: +SKIP
    """
    return Client(parse_destination(destination), parse_options(options))


def start_link(
    destination: DestinationLike, supervisor: Supervisor, **options: Unpack[ClientOptions]
) -> Client:
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


@overload
def request(
    client: Client,
    path: str | bytes,
    method: str | bytes,
    headers: Iterable[Any] | Mapping[Any, Any],
    body: Any,
    timeout: float | None,
    /,
) -> Response: ...
@overload
def request(
    client: Client,
    path: str | bytes,
    method: str | bytes,
    headers: Iterable[Any] | Mapping[Any, Any],
    body: Any,
    send_retry: int | None,
    timeout: float | None,
    /,
) -> Response: ...
def request(
    client: Client, path: Any, method: Any, headers: Any, body: Any, *rest: Any
) -> Response:
    """Send a request and wait for its response (fusco's request/6 and request/7).

    Called as ``request(client, path, method, headers, body, timeout)`` or
    ``request(client, path, method, headers, body, send_retry, timeout)``
    (positional, as fusco's arities); ``timeout`` in seconds for the whole
    exchange (None = no limit), ``send_retry`` re-sends on a closed connection
    (None = the client's option).

    Raises:
        BadArgument: a bad argument, or another number of arguments (nothing is sent).
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
    return client._request_blocking(path, method, headers, body, timeout, send_retry)


def disconnect(client: Client, timeout: float | None = None) -> None:
    """Serve what is queued on ``client``, close its connection and stop it.

    When ``timeout`` (seconds; None = no limit) passes first it aborts: the
    socket is closed and every request still held fails with ``ClientStopped``.

    Raises:
        BadArgument: ``timeout`` is not a non-negative number or None.
    """
    client.disconnect(timeout)
