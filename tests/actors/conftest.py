"""Fixtures of the actor tests: pools that are stopped at the end of each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fusco_actor import Pool
from tests.conftest import LONG_TIMEOUT


@pytest.fixture
def pools() -> Iterator[Callable[..., Pool]]:
    """Start pools for a test and stop them all at its end."""
    started: list[Pool] = []

    def start(destination: Any, max_clients: int = 16, **options: Any) -> Pool:
        pool = Pool.start(destination, max_clients, **options)
        started.append(pool)
        return pool

    yield start
    for pool in started:
        pool.stop(LONG_TIMEOUT)
