"""Public immutable messages that a client actor understands.

A caller may build a :class:`Request` and send it itself::

    fut = client.actor_ref.ask(Request("/x", "GET"), block=False)
    resp = fut.get()

which returns the same kind of future as :meth:`fusco_actor.Client.request`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from fusco_actor._encoder import PreparedRequest, prepare_request
from fusco_actor._exceptions import BadArgument

__all__ = ["Request", "make_request"]

_TEXT: Final = (str, bytes)
_CACHE_SIZE: Final = 4096


def check_timeout(timeout: Any, what: str = "timeout") -> float | None:
    """Return ``timeout`` as seconds (float), or None for no limit.

    Raises:
        BadArgument: not a non-negative number or None.
    """
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or math.isnan(timeout)
        or timeout < 0
    ):
        raise BadArgument(
            f"{what} must be a non-negative number of seconds or None, not {timeout!r}"
        )
    return None if math.isinf(timeout) else float(timeout)


def check_send_retry(send_retry: Any) -> int | None:
    """Return ``send_retry`` as a count, or None for the client's default.

    Raises:
        BadArgument: not a non-negative int or None.
    """
    if send_retry is None:
        return None
    if isinstance(send_retry, bool) or not isinstance(send_retry, int) or send_retry < 0:
        raise BadArgument(f"send_retry must be a non-negative int or None, not {send_retry!r}")
    return send_retry


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request, validated when built (fusco's request/7 arguments).

    Args:
        path: ``str`` or ``bytes`` beginning with ``/`` (or ``*`` for OPTIONS).
        method: an HTTP token such as ``"GET"``; lower case is upper-cased.
        headers: ``(name, value)`` pairs or a mapping.
        body: bytes-like, ``str`` (UTF-8), nested lists of those, a file
            object, or an iterable of bytes (sent chunked).
        timeout: seconds for the whole exchange, counted from when the
            message is sent to the client; None = no limit.
        send_retry: times to send again on a closed connection; None = the
            client's ``send_retry`` option.

    Raises:
        BadArgument: any argument is not acceptable.
    """

    path: str | bytes
    method: str | bytes = "GET"
    headers: Any = ()
    body: Any = b""
    timeout: float | None = None
    send_retry: int | None = None
    prepared: PreparedRequest = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the arguments and encode the caller's part of the head."""
        setattr_ = object.__setattr__  # the dataclass is frozen: normalise in place once
        timeout = self.timeout
        if type(timeout) is not float or not 0.0 <= timeout < math.inf:
            setattr_(self, "timeout", check_timeout(timeout))
        if self.send_retry is not None:
            setattr_(self, "send_retry", check_send_retry(self.send_retry))
        headers = self.headers
        if type(headers) is not tuple:
            if headers is None or (type(headers) is list and not headers):
                headers = ()
            elif isinstance(headers, Mapping):
                headers = tuple(headers.items())
            else:
                try:
                    headers = tuple(headers)
                except TypeError as exc:
                    raise BadArgument("headers must be (name, value) pairs or a mapping") from exc
            setattr_(self, "headers", headers)
        setattr_(self, "prepared", prepare_request(self.method, self.path, headers, self.body))


_CACHE: dict[tuple[Any, ...], Request] = {}


def _headers_key(headers: Any) -> tuple[Any, ...] | None:
    """Return ``headers`` as ``Request`` keeps them when they are plain text pairs, else None.

    Only a tuple or list of 2-tuples of exact ``str``/``bytes`` (or no headers)
    qualifies: equal keys then always give an equal, valid request.
    """
    kind = type(headers)
    if headers is None:
        return ()
    if kind is not tuple and kind is not list:
        return None
    for pair in headers:
        if (
            type(pair) is not tuple
            or len(pair) != 2
            or type(pair[0]) not in _TEXT
            or type(pair[1]) not in _TEXT
        ):
            return None
    return headers if kind is tuple else tuple(headers)


def make_request(
    path: Any, method: Any, headers: Any, body: Any, timeout: Any, send_retry: Any
) -> Request:
    """Return ``Request(path, method, headers, body, timeout, send_retry)``, built once per shape.

    A request with no body (``b""`` or None) and plain text headers is
    validated and encoded the first time, then the same immutable
    :class:`Request` is returned for equal arguments of the same types
    (``Client.request`` and ``Pool.request`` send the same request over and
    over). Anything else is built afresh.

    Raises:
        BadArgument: any argument is not acceptable.
    """
    if body is None or (type(body) is bytes and not body):
        hkey = _headers_key(headers)
        if hkey is not None:
            key = (
                path,
                type(path),
                method,
                type(method),
                hkey,
                body,
                timeout,
                type(timeout),
                send_retry,
                type(send_retry),
            )
            try:
                request = _CACHE.get(key)
            except TypeError:  # an unhashable argument: Request says what is wrong with it
                return Request(path, method, headers, body, timeout, send_retry)
            if request is None:
                request = Request(path, method, hkey, body, timeout, send_retry)
                if len(_CACHE) >= _CACHE_SIZE:
                    _CACHE.clear()
                _CACHE[key] = request
            return request
    return Request(path, method, headers, body, timeout, send_retry)
