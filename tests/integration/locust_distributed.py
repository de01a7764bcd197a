"""The locustfile of the distributed test: FuscoUser, and a master that notes its workers.

Run by ``test_locust.py`` as ``locust -f`` in a master and two worker
processes. On the master, every worker report with requests in it is appended
to the file ``$FUSCO_LOCUST_REPORTS`` as one JSON line: ``{"worker": client_id,
"requests": n}``, so the test can tell that both workers ran users.
"""

from __future__ import annotations

import json
import os
from typing import Any

from locust import constant, events, task

from fusco_actor.contrib.locust import FuscoUser

REPORTS_ENV = "FUSCO_LOCUST_REPORTS"


class Api(FuscoUser):
    """Small GETs and a POST, with a name that groups the sizes."""

    wait_time = constant(0.01)
    pipeline = 1
    connect_timeout = 5.0

    @task(3)
    def root(self) -> None:
        self.client.get("/", timeout=10.0)

    @task
    def sized(self) -> None:
        self.client.request("/bytes/64", "GET", name="/bytes/[n]", timeout=10.0)
        with self.client.post("/echo", b"{}", timeout=10.0, catch_response=True) as resp:
            if resp.body != b"{}":
                resp.failure("echo lost the body")


@events.worker_report.add_listener  # type: ignore[untyped-decorator]
def _note_worker(client_id: str, data: dict[str, Any], **_kwargs: Any) -> None:
    requests = sum(int(entry.get("num_requests", 0)) for entry in data.get("stats", []))
    path = os.environ.get(REPORTS_ENV)
    if path and requests:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"worker": client_id, "requests": requests}) + "\n")
