"""The whole FuscoError tree in one module (after urllib3's exceptions.py).

Every error fusco_actor raises to a caller is a :class:`FuscoError`; the
argument errors are also :class:`ValueError` so that generic code can catch
them the usual way.
"""

from __future__ import annotations


class FuscoError(Exception):
    """Base class of every error fusco_actor raises."""


class ConnectError(FuscoError):
    """Raised when a connection cannot be made: refused, unreachable, DNS failure."""


class TLSError(ConnectError):
    """Raised when the TLS handshake or certificate verification fails."""


class ConnectTimeout(FuscoError):
    """Raised when ``connect_timeout`` (seconds) passed before the connection was made."""


class RequestTimeout(FuscoError):
    """Raised when a request's ``timeout`` (seconds, whole exchange) passed."""


class ConnectionClosed(FuscoError):
    """Raised when the peer closed before any byte of the response and send_retry is spent."""


class ProtocolError(FuscoError):
    """Raised for a malformed, over-limit or truncated response."""


class ProxyError(ConnectError):
    """Raised when the proxy refused the tunnel or closed it.

    Attributes:
        status: the proxy's status code, or ``None`` when it closed without one.
        reason: the proxy's reason phrase, or a description of what went wrong.
    """

    def __init__(self, message: str, status: int | None = None, reason: str = "") -> None:
        """Build the error from a message and the proxy's status and reason."""
        super().__init__(message)
        self.status = status
        self.reason = reason


class BadOption(FuscoError, ValueError):
    """Raised by ``start`` when an option's name, type or value is wrong."""


class BadArgument(FuscoError, ValueError):
    """Raised when a destination, path, method, header or body is not acceptable."""


class ClientStopped(FuscoError):
    """Raised when the client was disconnected or its supervisor gave up on it."""


class PoolTimeout(FuscoError):
    """Raised when no pool client became free within the caller's timeout."""
