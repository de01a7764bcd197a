# /// script
# requires-python = ">=3.10"
# dependencies = ["fusco_actor"]
# [tool.uv.sources]
# fusco_actor = { path = "..", editable = true }
# ///
"""Many threads share one client: their requests queue in its actor, in order.

Starts the embedded loopback server and one client (one connection). Each of
``THREADS`` threads sends ``REQUESTS`` requests at once with
``client.request(...)``, which never blocks and returns a future, and then
waits for its futures. The client's actor serves every request in turn on its
single keep-alive connection; nobody needs a lock. It prints how many
requests succeeded and the rate.

Run it from a clone with ``uv run examples/many_callers.py``, or with
``.venv/bin/python examples/many_callers.py`` after ``make``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import fusco_actor
from fusco_actor._server import EmbeddedServer

THREADS = 8
REQUESTS = 250  # per thread
TIMEOUT = 10.0  # seconds for each request, time queued included


def caller(client: fusco_actor.Client, n: int, outcomes: Counter[str]) -> None:
    """Send REQUESTS requests for n bytes at once, then count how each ended."""
    futures = [client.request(f"/bytes/{n}", "GET", timeout=TIMEOUT) for _ in range(REQUESTS)]
    for future in futures:
        try:
            response = future.get()
        except fusco_actor.FuscoError as exc:
            outcomes[type(exc).__name__] += 1
        else:
            ok = response.status == 200 and len(response.body) == n
            outcomes["ok" if ok else "wrong answer"] += 1


def main() -> None:
    per_thread: list[Counter[str]] = [Counter() for _ in range(THREADS)]
    with EmbeddedServer() as server, fusco_actor.start(server.url) as client:
        threads = [
            threading.Thread(target=caller, args=(client, 16 + i, per_thread[i]))
            for i in range(THREADS)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    outcomes = sum(per_thread, Counter())
    total = THREADS * REQUESTS
    print(f"{outcomes['ok']}/{total} requests succeeded ({THREADS} threads sharing one client)")
    failures = {kind: n for kind, n in outcomes.items() if kind != "ok"}
    if failures:
        print(f"failures: {failures}")
    print(f"{total / elapsed:.0f} req/s in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
