"""10,000 clients connected to one local server, in one process, on at most 4 threads (issue 10).

The clients run in a process of their own, ``bench/scale.py run``, so that
this test process keeps its descriptors, threads and memory to itself; that
script starts a counting asyncio server in a third process, connects every
client, makes one request on each, disconnects them all and prints what it
and the server saw. This test checks that report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest

SCRIPT: Final = Path(__file__).resolve().parents[2] / "bench" / "scale.py"
CLIENTS: Final = 10_000
MAX_THREADS: Final = 4  # issue 10: 10,000 connected clients on at most 4 threads
MAX_BYTES_PER_CLIENT: Final = 32 * 1024  # about 12 KiB measured: a guard against eager buffers
RUN_TIMEOUT: Final = 50.0  # seconds; 6-16 s on 2 vCPUs, within the suite's 60 s per test

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="bench/scale.py reads /proc (Linux)"
)


def scale_run(loop: str) -> dict[str, Any]:
    """Run ``bench/scale.py run`` on the loop engine and ``loop``; return its report."""
    env = dict(os.environ, FUSCO_ACTOR_ENGINE="loop", FUSCO_ACTOR_LOOP=loop)
    env.pop("FUSCO_ACTOR_RAISE_NOFILE", None)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "run", "--clients", str(CLIENTS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode in (0, 3), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    if "error" in report:  # the hard open-file limit is below what 10,000 connections need
        if os.environ.get("CI") == "true":
            pytest.fail(f"{report['error']}: CI must run this test", pytrace=False)
        pytest.skip(report["error"])
    return report


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_ten_thousand_clients_connect_request_and_disconnect_on_at_most_four_threads(
    loop: str,
) -> None:
    report = scale_run(loop)
    assert report["loop"] == loop
    # The scheduler raised the soft open-file limit to the hard one.
    assert report["nofile"][0] == report["nofile"][1]
    # Every client connected: the server counted them all open at once (and the
    # warm-up client's connection closed), and this process holds one socket each.
    assert report["server_connected"] == {
        "open": CLIENTS,
        "opened": CLIENTS + 1,
        "closed": 1,
        "requests": CLIENTS + 1,
    }
    assert report["fds_opened"] == CLIENTS
    assert report["responses_ok"] == CLIENTS
    # On the main thread and the scheduler's, by Python's count and the kernel's
    # (which also sees resolver or executor threads Python does not know of).
    assert report["max_active_count"] <= MAX_THREADS, report["threads"]
    assert report["max_tasks"] <= MAX_THREADS, report["threads"]
    assert 0 < report["bytes_per_client"] < MAX_BYTES_PER_CLIENT
    # Every client disconnected: the server saw every connection close.
    assert report["all_stopped"] is True
    assert report["server_after"] == {
        "open": 0,
        "opened": CLIENTS + 1,
        "closed": CLIENTS + 1,
        "requests": CLIENTS + 1,
    }
