"""Locust users that send through fusco_actor (API.md §7; ``pip install 'fusco_actor[locust]'``).

``FuscoUser`` is a Locust ``User`` whose ``self.client`` is a :class:`FuscoSession`:
each request goes through one fusco_actor client and fires Locust's ``request``
event, so ``locust --master`` and ``--worker`` processes on many machines run
fusco_actor clients as one load test::

    from locust import task
    from fusco_actor.contrib.locust import FuscoUser

    class Api(FuscoUser):
        host = "http://127.0.0.1:8080"
        pipeline = 1                      # any start() option may be a class attribute

        @task
        def item(self):
            self.client.request("/item/1", "GET", name="/item/[id]")

Choices:

- **One client per user.** Each user owns one fusco_actor client: one actor
  and one keep-alive connection, started on the user's first request and
  disconnected when the user stops (``on_stop``, and again when its greenlet
  ends, for subclasses whose ``on_stop`` does not call ``super()``). A Locust
  user sends one request at a time, which is what one connection serves; a
  ``Pool`` would add a supervisor and a free-list per user for nothing. Many
  users are many connections, all on fusco_actor's one scheduler thread.
- **Options.** Every key of ``fusco_actor.ClientOptions`` (the options of
  ``fusco_actor.start``: ``connect_timeout``, ``pipeline``,
  ``ssl_context``, ``send_retry``, ``use_cookies``...) that the user has as an
  attribute (class or instance) is passed to ``start`` as it is; a wrong one
  raises ``BadOption`` when the user is created. ``on_connect`` may be a
  method (``def on_connect(self, info)``).
- **Host.** ``host`` (or ``--host``) is the destination; a path in it
  (``http://h/api``) is put before every request's path, as Locust's own
  clients do. A request path must begin with ``/``: one client talks to one
  origin.
- **Outcomes.** A status of 400 or more, or any ``FuscoError`` (connect
  refused, ``RequestTimeout``...), is a failure unless ``catch_response``
  decides. A failed request returns None (the error is in the ``request``
  event and Locust's statistics), as Locust's examples of custom clients do;
  with ``catch_response=True`` the with-block gets a
  :class:`ResponseContextManager` either way. A ``BadArgument`` (a bad path,
  method or header: a bug in the locustfile) is raised by the call itself, and
  no request is made or reported.

gevent: ``import locust`` monkey-patches the process. fusco_actor's scheduler
stays a real OS thread (:mod:`fusco_actor._native`), and a user waiting for
its response yields to the other greenlets (:mod:`fusco_actor.contrib._gevent`).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import urlsplit

from locust import User
from locust.exception import CatchResponseError, LocustError, ResponseError, StopTest

import fusco_actor
from fusco_actor._exceptions import BadArgument, FuscoError
from fusco_actor._headers import Headers
from fusco_actor._options import OPTION_NAMES, parse_destination, parse_options
from fusco_actor.contrib import _gevent

if TYPE_CHECKING:
    from gevent import Greenlet
    from gevent.pool import Group
    from locust.env import Environment
    from locust.event import EventHook

    from fusco_actor._response import Response

__all__ = [
    "FuscoSession",
    "FuscoUser",
    "HTTPStatusError",
    "ResponseContextManager",
    "user_options",
]

_gevent.install()  # users are greenlets: their waits must yield, patched process or not

#: Seconds :meth:`FuscoSession.close` waits for a request in flight before aborting it.
CLOSE_TIMEOUT = 1.0


class HTTPStatusError(Exception):
    """The failure recorded for a response whose status is 400 or more.

    Attributes:
        response: the :class:`fusco_actor.Response`.
    """

    def __init__(self, response: Response) -> None:
        """Describe the response's status, e.g. ``HTTP 404 Not Found``."""
        super().__init__(f"HTTP {response.status} {response.reason}".rstrip())
        self.response = response


class ResponseContextManager:
    """What ``request(..., catch_response=True)`` returns: the outcome, decided in a with-block.

    Behaves as locust's own ``ResponseContextManager``: on leaving the block the
    request is reported once, as a failure when :meth:`failure` was called, as
    a success when :meth:`success` was, and otherwise by the default rule
    (status >= 400 or an error fails). An exception raised in the block
    propagates and the request is not reported, unless it is a
    ``locust.exception.ResponseError``, which is reported as the failure.

    Attributes:
        response: the ``Response``, or None when the request failed with ``error``.
        error: the ``FuscoError`` the request failed with, or None.
        request_meta: the fields the ``request`` event will be fired with.
    """

    def __init__(
        self,
        response: Response | None,
        error: FuscoError | None,
        request_event: EventHook,
        request_meta: dict[str, Any],
    ) -> None:
        """Hold the outcome; nothing is reported before the with-block ends."""
        self.response = response
        self.error = error
        self.request_meta = request_meta
        self._request_event = request_event
        self._entered = False
        self._manual: bool | Exception | None = None

    # -- the response's fields (neutral values when the request failed) ----------

    @property
    def status(self) -> int:
        """The response's status; 0 when the request failed without one."""
        return 0 if self.response is None else self.response.status

    @property
    def reason(self) -> str:
        """The response's reason phrase; "" without a response."""
        return "" if self.response is None else self.response.reason

    @property
    def headers(self) -> Headers:
        """The response's headers; empty without a response."""
        return Headers([]) if self.response is None else self.response.headers

    @property
    def body(self) -> bytes:
        """The response's body; b"" without a response."""
        return b"" if self.response is None else self.response.body

    def __getattr__(self, name: str) -> Any:
        """Any other ``Response`` field (``version``, ``trailers``, ``size``, ``elapsed``)."""
        response = self.__dict__.get("response")
        if response is None:
            raise AttributeError(f"{name}: the request failed with no response ({self.error!r})")
        return getattr(response, name)

    # -- deciding ------------------------------------------------------------------

    def success(self) -> None:
        """Report the request as a success, whatever its status or error.

        Raises:
            LocustError: called outside the with-block.
        """
        self._check_entered("success")
        self._manual = True

    def failure(self, exc: Exception | str) -> None:
        """Report the request as a failure; a string becomes a ``CatchResponseError``.

        Raises:
            LocustError: called outside the with-block.
        """
        self._check_entered("failure")
        self._manual = exc if isinstance(exc, Exception) else CatchResponseError(exc)

    def _check_entered(self, what: str) -> None:
        if not self._entered:
            raise LocustError(
                f"{what}() decides a request only inside its with-block: "
                "with self.client.request(..., catch_response=True) as resp: ..."
            )

    def __enter__(self) -> ResponseContextManager:
        """Start deciding."""
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        """Report the request once; return whether an exception of the block is swallowed."""
        if self._manual is not None:
            self.request_meta["exception"] = None if self._manual is True else self._manual
            self._report()
            return exc is None
        if exc is not None:
            if not isinstance(exc, ResponseError):
                return False
            self.request_meta["exception"] = exc
        self._report()
        return True

    def _report(self) -> None:
        self._request_event.fire(**self.request_meta)  # type: ignore[no-untyped-call]

    def __repr__(self) -> str:
        """Show the status or the error."""
        outcome = self.error if self.response is None else self.response.status
        return f"<ResponseContextManager {outcome!r}>"


def user_options(user: object) -> dict[str, Any]:
    """Return the ``fusco_actor.start`` options ``user`` has as attributes.

    Every name of ``OPTION_NAMES`` found on the user (its class or itself) is
    taken as it is, None included; ``start`` checks them.
    """
    missing = object()
    options = {}
    for name in sorted(OPTION_NAMES):
        value = getattr(user, name, missing)
        if value is not missing:
            options[name] = value
    return options


class FuscoSession:
    """A Locust user's client: fusco_actor requests that fire Locust's ``request`` event.

    One fusco_actor client (one actor, one keep-alive connection) is started on
    the first request and stopped by :meth:`close`; a request after ``close``
    starts a new one.

    Args:
        base_url: the user's host: ``http(s)://host[:port][/base/path]``.
        request_event: ``environment.events.request``.
        user: the Locust user (its ``context()`` goes into every event), or None.
        options: ``fusco_actor.start`` options.

    Raises:
        BadArgument: ``base_url`` is not an http or https URL.
        BadOption: a wrong option (name, type or value).
    """

    def __init__(
        self,
        base_url: str,
        request_event: EventHook,
        user: User | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        """Check the destination and the options; nothing is started yet."""
        self.origin = parse_destination(base_url).origin
        self.options = dict(options or {})
        parse_options(self.options)  # BadOption now, not at the first request
        self.base_url = base_url
        self._prefix = urlsplit(base_url).path.rstrip("/")
        self._request_event = request_event
        self._user = user
        self._client: fusco_actor.Client | None = None

    @property
    def client(self) -> fusco_actor.Client:
        """The fusco_actor client, started now if it is not running."""
        client = self._client
        if client is None or client._is_stopped:
            client = self._client = fusco_actor.start(self.base_url, **self.options)
        return client

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Disconnect the client, if one runs (``Client.disconnect(timeout)``; idempotent).

        A request still in flight after ``timeout`` seconds is aborted (it fails
        with ``ClientStopped``). Waits cooperatively under gevent.
        """
        client, self._client = self._client, None
        if client is not None and not client._is_stopped:
            client.disconnect(timeout)

    @overload
    def request(
        self,
        path: str | bytes,
        method: str | bytes = ...,
        headers: Any = ...,
        body: Any = ...,
        timeout: float | None = ...,
        name: str | None = ...,
        catch_response: Literal[False] = ...,
        *,
        send_retry: int | None = ...,
        context: dict[str, Any] | None = ...,
    ) -> Response | None: ...

    @overload
    def request(
        self,
        path: str | bytes,
        method: str | bytes = ...,
        headers: Any = ...,
        body: Any = ...,
        timeout: float | None = ...,
        name: str | None = ...,
        *,
        catch_response: Literal[True],
        send_retry: int | None = ...,
        context: dict[str, Any] | None = ...,
    ) -> ResponseContextManager: ...

    def request(
        self,
        path: str | bytes,
        method: str | bytes = "GET",
        headers: Any = (),
        body: Any = b"",
        timeout: float | None = None,
        name: str | None = None,
        catch_response: bool = False,
        *,
        send_retry: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> Response | ResponseContextManager | None:
        """Send a request, wait for it (yielding to other users) and report it to Locust.

        Args:
            path: ``/``-rooted request target (after the host's base path, if any).
            method: HTTP method token.
            headers: ``(name, value)`` pairs or a mapping.
            body: as ``Client.request`` (bytes, str, iodata, file or iterable of bytes).
            timeout: seconds for the whole exchange, queueing included; None = no limit.
            send_retry: re-sends on a closed connection; None = the client's option.
            name: the name in Locust's statistics (default: the path), e.g. "/item/[id]".
            catch_response: return a :class:`ResponseContextManager` whose
                with-block decides success or failure.
            context: extra fields for the event's ``context`` (over ``user.context()``).

        Returns:
            The ``Response``, or None when the request failed with a
            ``FuscoError``; with ``catch_response`` a ``ResponseContextManager``.

        Raises:
            BadArgument: a bad path, method, header or body (nothing is sent or reported).
        """
        full_path = self._full_path(path)
        start_time = time.time()
        started = time.perf_counter()
        future = self.client.request(full_path, method, headers, body, timeout, send_retry)
        response: Response | None = None
        error: FuscoError | None = None
        try:
            response = future.get()
        except FuscoError as exc:
            error = exc
        response_time = (time.perf_counter() - started) * 1000.0
        failure: Exception | None = error
        if response is not None and response.status >= 400:
            failure = HTTPStatusError(response)
        meta = {
            "request_type": _text(method).upper(),
            "name": name if name is not None else _text(path),
            "response_time": response_time,
            "response_length": 0 if response is None else len(response.body),
            "response": response,
            "context": {**(self._user.context() if self._user else {}), **(context or {})},
            "exception": failure,
            "start_time": start_time,
            "url": self.origin + _text(full_path),
        }
        if catch_response:
            return ResponseContextManager(response, error, self._request_event, meta)
        self._request_event.fire(**meta)  # type: ignore[no-untyped-call]
        return response

    def _full_path(self, path: str | bytes) -> str | bytes:
        if not self._prefix:
            return path
        if isinstance(path, bytes):
            return self._prefix.encode("latin-1") + path
        if not isinstance(path, str):
            raise BadArgument(f"path {path!r} is not str or bytes")
        return self._prefix + path

    def get(self, path: str | bytes, **kwargs: Any) -> Any:
        """``request(path, "GET", **kwargs)``."""
        return self.request(path, "GET", **kwargs)

    def post(self, path: str | bytes, body: Any = b"", **kwargs: Any) -> Any:
        """``request(path, "POST", body=body, **kwargs)``."""
        return self.request(path, "POST", body=body, **kwargs)

    def put(self, path: str | bytes, body: Any = b"", **kwargs: Any) -> Any:
        """``request(path, "PUT", body=body, **kwargs)``."""
        return self.request(path, "PUT", body=body, **kwargs)

    def patch(self, path: str | bytes, body: Any = b"", **kwargs: Any) -> Any:
        """``request(path, "PATCH", body=body, **kwargs)``."""
        return self.request(path, "PATCH", body=body, **kwargs)

    def delete(self, path: str | bytes, **kwargs: Any) -> Any:
        """``request(path, "DELETE", **kwargs)``."""
        return self.request(path, "DELETE", **kwargs)

    def head(self, path: str | bytes, **kwargs: Any) -> Any:
        """``request(path, "HEAD", **kwargs)``."""
        return self.request(path, "HEAD", **kwargs)

    def __repr__(self) -> str:
        """Show the origin and whether a client runs."""
        return f"<FuscoSession {self.base_url} {'started' if self._client else 'idle'}>"


def _text(value: Any) -> str:
    """Return a method or path as text for Locust's statistics (bytes as latin-1)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return str(value)


class FuscoUser(User):
    """A Locust user whose ``self.client`` (a :class:`FuscoSession`) sends through fusco_actor.

    Set ``host`` (or pass ``--host``) and any ``fusco_actor.start`` option as a
    class attribute (``pipeline = 1``, ``connect_timeout = 2.0``,
    ``ssl_context = ...``). See the module's docstring for the choices made.

    Raises:
        StopTest: no host was given.
        BadArgument, BadOption: a bad host or option (when the user is created).
    """

    abstract = True

    def __init__(self, environment: Environment) -> None:
        """Make the session; its fusco_actor client starts on the first request."""
        super().__init__(environment)
        if self.host is None:
            raise StopTest(
                "You must specify the base host. Either in the host attribute in the User "
                "class, or on the command line using the --host option."
            )
        self.client = FuscoSession(
            self.host, environment.events.request, user=self, options=user_options(self)
        )

    def on_stop(self) -> None:
        """Disconnect the client (waits up to ``CLOSE_TIMEOUT`` for a request in flight)."""
        self.client.close()

    def start(self, group: Group) -> Greenlet[..., Any]:
        """Start the user's greenlet; the client is closed when it ends, whatever on_stop did."""
        greenlet: Greenlet[..., Any] = super().start(group)
        greenlet.link(self._closed_with_greenlet)
        return greenlet

    def _closed_with_greenlet(self, _greenlet: object) -> None:
        self.client.close()  # link() runs this in a greenlet of its own: it may wait
