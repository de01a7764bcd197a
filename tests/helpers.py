"""Helpers shared by the actor, fault and integration tests: bounded waits, outcomes, threads."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from fusco_actor import FuscoError
from tests.conftest import LONG_TIMEOUT


def wait_for(condition: Callable[[], bool], timeout: float = LONG_TIMEOUT) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (no event exists for it)."""
    limit = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= limit:
            return False
        time.sleep(0.005)
    return True


def outcome(future: Any, timeout: float = LONG_TIMEOUT) -> Any:
    """Return the future's response or its FuscoError; a hang fails the test."""
    try:
        return future.get(timeout=timeout)
    except pykka.Timeout:
        pytest.fail(f"a future was left unresolved for {timeout} s")
    except FuscoError as exc:
        return exc


def start_thread(target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Start ``target(*args)`` on a daemon thread."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def join_all(threads: list[threading.Thread]) -> None:
    """Join every thread within LONG_TIMEOUT each, or fail: a hung thread is a bug."""
    for thread in threads:
        thread.join(LONG_TIMEOUT)
        assert not thread.is_alive(), "a thread hung"


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs: no such process, or a zombie awaiting its reaper."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except FileNotFoundError:
        return True
    return stat.rpartition(b")")[2].split()[0] == b"Z"


def wait_gone(pid: int, timeout: float = LONG_TIMEOUT) -> bool:
    """Poll until process ``pid`` is gone or ``timeout`` seconds passed; return whether it is."""
    return wait_for(lambda: process_gone(pid), timeout)


@contextlib.contextmanager
def descriptors_above(n: int) -> Iterator[None]:
    """Hold open files until new descriptors are numbered above ``n``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"the open-file hard limit ({hard}) is below {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd > n:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
