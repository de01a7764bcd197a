"""Shared fixtures: every test stops every actor it started, and an embedded server.

``pytest --engines=threaded,loop`` runs every test that may start a client once
per client engine (the ``client_engine`` fixture sets ``FUSCO_ACTOR_ENGINE``);
without it each test runs once, under the engine the environment selects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pykka
import pytest

from fusco_actor._handle import ENGINE_ENV, THREAD_ENGINE_NAMES
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


ENGINES: Final = ("threaded", "loop")
#: Where no client actor runs (or the engine is fixed): never run once per engine.
_ENGINE_FREE: Final = (
    "unit",
    "property",
    "cli",
    "static",
    "test_scheduler.py",
    "test_thread_engine.py",
    "test_bench_html_browser.py",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--engines``."""
    parser.addoption(
        "--engines",
        default="",
        metavar="LIST",
        help="run each client test once per engine of LIST (comma-separated: threaded,loop); "
        "default: once, under the engine FUSCO_ACTOR_ENGINE selects",
    )


def _engines(config: pytest.Config) -> list[str]:
    engines = [e.strip() for e in str(config.getoption("engines")).split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise pytest.UsageError(f"--engines: unknown {sorted(unknown)}; known: {ENGINES}")
    return engines


def pytest_configure(config: pytest.Config) -> None:
    """Check ``--engines`` before collecting."""
    _engines(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``client_engine`` with ``--engines`` for the tests that may start a client."""
    engines = _engines(metafunc.config)
    if not engines or "client_engine" not in metafunc.fixturenames:
        return
    parts = metafunc.definition.path.relative_to(Path(__file__).parent).parts
    if any(part in _ENGINE_FREE for part in parts):
        return
    metafunc.parametrize("client_engine", engines, indirect=True)


@pytest.fixture(autouse=True)
def client_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Return the client engine of this test, setting it first when ``--engines`` chose it."""
    engine: str | None = getattr(request, "param", None)
    if engine is None:
        return "threaded" if os.environ.get(ENGINE_ENV) in THREAD_ENGINE_NAMES else "loop"
    monkeypatch.setenv(ENGINE_ENV, "thread" if engine == "threaded" else "loop")
    return engine
