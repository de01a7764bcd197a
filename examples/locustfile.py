# /// script
# requires-python = ">=3.10"
# dependencies = ["fusco_actor[locust]"]
# [tool.uv.sources]
# fusco_actor = { path = "..", editable = true }
# ///
"""A Locust load test whose users send through fusco_actor (copy it and edit the tasks).

As a locustfile, on one machine::

    locust -f locustfile.py --host http://127.0.0.1:8080

or distributed, a master on one machine and workers on as many as you like::

    locust -f locustfile.py --master --host http://TARGET:8080      # on the master
    locust -f locustfile.py --worker --master-host MASTER_IP         # on each worker

Run as a script (``python examples/locustfile.py``), it starts the embedded
loopback server, runs this file with ``locust --headless`` against it for two
seconds with 10 users, and prints what Locust counted; it exits 1 when a
request failed or none was made.
"""

from __future__ import annotations

import json
import subprocess
import sys

from locust import between, task

from fusco_actor.contrib.locust import FuscoUser

USERS = 10
RUN_TIME = "2s"


class Shopper(FuscoUser):
    """One user: one fusco_actor client, one keep-alive connection."""

    wait_time = between(0.0, 0.01)  # seconds between two tasks of a user
    connect_timeout = 5.0  # any fusco_actor.start() option may be a class attribute
    pipeline = 1

    @task(5)
    def home(self) -> None:
        self.client.get("/", timeout=10.0)

    @task(2)
    def item(self) -> None:
        # Many URLs, one line in the statistics.
        self.client.request("/bytes/256", "GET", name="/bytes/[size]", timeout=10.0)

    @task
    def order(self) -> None:
        body = b'{"item": 1}'
        headers = [("Content-Type", "application/json")]
        with self.client.post(
            "/echo", body, headers=headers, timeout=10.0, catch_response=True
        ) as resp:
            if resp.body != body:
                resp.failure("the order was not echoed")


def main() -> int:
    """Run this locustfile headless against the embedded server; 0 when nothing failed."""
    from fusco_actor._server_process import ServerProcess  # noqa: PLC0415 - script mode only

    with ServerProcess() as server:
        print(f"embedded server at {server.url}; locust: {USERS} users for {RUN_TIME}")
        command = [
            sys.executable, "-m", "locust", "-f", __file__, "--headless", "--host", server.url,
            "-u", str(USERS), "-r", str(USERS), "--run-time", RUN_TIME,
            "--json", "--only-summary", "--loglevel", "WARNING",
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if not proc.stdout.strip():
        print(proc.stderr, file=sys.stderr)
        return 1
    stats = json.loads(proc.stdout)
    requests = sum(entry["num_requests"] for entry in stats)
    failures = sum(entry["num_failures"] for entry in stats)
    for entry in stats:
        print(f"{entry['method']:5} {entry['name']:16} {entry['num_requests']:7} requests")
    print(f"{requests} requests, {failures} failures")
    return 0 if proc.returncode == 0 and requests and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
