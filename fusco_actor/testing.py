"""Helpers for tests of code that uses fusco_actor: fault injection."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fusco_actor._handle import Client

__all__ = ["inject_crash"]


def inject_crash(client: Client) -> None:
    """Make the client's current incarnation raise at its next step, as a bug would.

    The next step is just before it sends a request or right after it has
    received a response. The exception is an ``InjectedCrash`` (a
    ``RuntimeError``); under a supervisor the client is restarted.
    """
    client._actor.crash_next = True
