"""The send-retry rule of README "Send-retry", as a pure function (testable without actors)."""

from __future__ import annotations

__all__ = ["may_resend"]


def may_resend(
    *, idempotent: bool, send_failed: bool, reused: bool, sends: int, send_retry: int
) -> bool:
    """Return whether a request may be sent again on a fresh connection.

    Called when the connection was found closed while sending the request, or
    closed before any byte of its response arrived.

    Args:
        idempotent: RFC 9110 §9.2.2 idempotent method (GET, HEAD, PUT, DELETE,
            OPTIONS, TRACE).
        send_failed: the write itself failed, so the server cannot have
            received the whole request.
        reused: the attempt went out on a keep-alive connection that had
            been open before the attempt (the stale keep-alive case).
        sends: how many times the request has been written so far.
        send_retry: how many re-sends are allowed (attempts = send_retry + 1).
    """
    if sends > send_retry:
        return False
    return idempotent or send_failed or reused
