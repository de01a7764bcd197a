"""The scheduler raises the open-file soft limit to the hard one (``fusco_actor._limits``).

Each case runs in a fresh interpreter whose soft limit is first lowered to
``LOW``, so that this test process's limits stay as they are. The child then
connects ``CLIENTS`` (more than ``LOW``) loop-engine clients to a listening
socket that never accepts: the kernel completes each connect into the backlog
without a descriptor on the server side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Final

import pytest

resource = pytest.importorskip("resource")  # POSIX only

LOW: Final = 256
CLIENTS: Final = 300
CHILD: Final = f"""
import json, resource, socket
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW}, hard))
import fusco_actor
from fusco_actor._limits import open_file_limit, raise_open_file_limit
from fusco_actor._scheduler import get_scheduler
listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
url = "http://127.0.0.1:%d" % listener.getsockname()[1]
before = open_file_limit()
scheduler = get_scheduler()
lower = raise_open_file_limit({LOW} // 2)  # never lowers
clients, error = [], None
try:
    for _ in range({CLIENTS}):
        clients.append(fusco_actor.start(url))
        fusco_actor.connect(clients[-1])
except fusco_actor.FuscoError as exc:
    error = type(exc).__name__ + ": " + str(exc)
connected = len(clients) - (error is not None)
for client in clients:
    client.disconnect(timeout=5.0)
print(json.dumps({{"before": before, "after": scheduler.open_files, "lower": lower,
                  "hard": hard, "connected": connected, "error": error}}))
"""

pytestmark = pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] < CLIENTS + 64,
    reason=f"the hard open-file limit is below {CLIENTS + 64}",
)


def child(**env: str) -> dict[str, Any]:
    """Run CHILD on the loop engine with ``env`` added; return what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, "FUSCO_ACTOR_ENGINE": "loop", **env},
        capture_output=True,
        text=True,
        timeout=30.0,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_the_scheduler_raises_the_soft_limit_to_the_hard_one() -> None:
    report = child(FUSCO_ACTOR_RAISE_NOFILE="")  # unset: the default
    assert report["before"] == [LOW, report["hard"]]
    assert report["after"] == [report["hard"], report["hard"]]
    assert report["lower"] == report["after"]  # asking for less never lowers it
    assert report["error"] is None
    assert report["connected"] == CLIENTS


def test_fusco_actor_raise_nofile_0_keeps_the_limit_and_connects_fail_past_it() -> None:
    report = child(FUSCO_ACTOR_RAISE_NOFILE="0")
    assert report["after"] == [LOW, report["hard"]]
    assert report["connected"] < LOW
    assert report["error"].startswith("ConnectError")
    assert "Too many open files" in report["error"]
