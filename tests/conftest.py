"""Shared fixtures: every test stops every actor it started, and an embedded server."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from fusco_actor._server import EmbeddedServer

SHORT_TIMEOUT = 2.0  # seconds: an event that should happen at once
LONG_TIMEOUT = 10.0  # seconds: an event that takes real work


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=LONG_TIMEOUT)


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[EmbeddedServer]:
    """The embedded loopback HTTP server, shared by the session."""
    with EmbeddedServer() as server:
        yield server
