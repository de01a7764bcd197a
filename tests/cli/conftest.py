"""Fixtures of the command-line tests: no proxy variable leaks in from the environment."""

from __future__ import annotations

import pytest

from tests.cli.get_helpers import PROXY_VARIABLES


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the proxy variables: `fusco get` reads them, and tests must stay on loopback."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
