"""StreamingResponse: a response body read from the socket only as the caller consumes it.

Theory of operation
-------------------
The client actor reads the head, resolves the caller's future with a
:class:`StreamingResponse`, and then serves that body alone: it waits on the
stream's channel for "next" or "close" from the caller, reads one piece from
the socket per "next", and replies. Requests queued behind it on the same
client wait, as on the wire. Memory stays bounded by one read (256 KiB).
Reading the body to its end gives the connection back to keep-alive; closing
the response early closes the connection. Should the actor stop meanwhile,
the channel is failed so the caller never waits forever.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Final

from fusco_actor import _native
from fusco_actor._exceptions import ClientStopped, FuscoError
from fusco_actor._headers import Headers

__all__ = ["StreamChannel", "StreamingResponse"]

NEXT: Final = "next"
CLOSE: Final = "close"


class StreamChannel:
    """Two one-way queues between a stream's consumer and the client actor."""

    __slots__ = ("done", "replies", "requests")

    def __init__(self) -> None:
        """Create empty queues; ``done`` is set once the actor stops serving the body."""
        # Real OS-thread queues even under gevent: the scheduler puts into them (_native).
        self.requests: queue.SimpleQueue[str] = _native.SimpleQueue()
        self.replies: queue.SimpleQueue[tuple[str, Any]] = _native.SimpleQueue()
        self.done = threading.Event()

    def ask(self, request: str) -> tuple[str, Any]:
        """Send ``request`` to the actor and wait for its reply (consumer's thread)."""
        self.requests.put(request)
        return self.replies.get()

    def tell(self, request: str) -> None:
        """Send ``request`` to the actor without waiting (consumer's thread); never raises."""
        self.requests.put(request)

    def fail(self, exc: FuscoError) -> None:
        """End the stream with ``exc`` (actor thread, or on the actor's stop)."""
        if not self.done.is_set():
            self.done.set()
            self.replies.put(("error", exc))


class StreamingResponse:
    """A response whose body is read as it is consumed.

    Attributes:
        status, reason, version, headers: as in :class:`Response`.
        trailers: the trailers of a chunked body, once the body has been read.

    Example:
        >>> with client.stream("/big", "GET", timeout=30.0).get() as resp:  # doctest: +SKIP
        ...     for chunk in resp.iter_bytes():
        ...         sink.write(chunk)
    """

    def __init__(
        self, status: int, reason: str, version: str, headers: Headers, channel: StreamChannel
    ) -> None:
        """Wrap a head and the channel to the actor serving the body."""
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.trailers = Headers()
        self._channel = channel
        self._finished = False

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield body pieces as they arrive (no decoding).

        Raises:
            ProtocolError: the body was malformed or cut short.
            RequestTimeout: the request's deadline passed.
            ClientStopped: the response was closed or the client stopped.
            SchedulerBlockedError: called on the scheduler thread (the loop
                engine's), where waiting would freeze the actor serving the body.
        """
        if self._finished:
            raise ClientStopped("the streaming response is already closed or consumed")
        channel = self._channel
        while True:
            kind, value = channel.ask(NEXT)
            if kind == "data":
                yield value
            elif kind == "end":
                self.trailers = value
                self._finished = True
                return
            else:
                self._finished = True
                raise value

    def read(self) -> bytes:
        """Return the rest of the body.

        Raises:
            As :meth:`iter_bytes`.
        """
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        """Stop reading; an unfinished body closes the connection. Never raises."""
        if not self._finished:
            self._finished = True
            self._channel.tell(CLOSE)

    def __enter__(self) -> StreamingResponse:
        """Return the response; it is closed on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the response."""
        self.close()

    def __del__(self) -> None:
        """Close an abandoned response so the client can go on."""
        self.close()

    def __repr__(self) -> str:
        """Show the status line."""
        return f"<StreamingResponse [{self.status} {self.reason}]>"
