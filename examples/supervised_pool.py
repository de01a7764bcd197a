# /// script
# requires-python = ">=3.10"
# dependencies = ["fusco_actor"]
# [tool.uv.sources]
# fusco_actor = { path = "..", editable = true }
# ///
"""A supervised pool keeps serving while its clients crash: no request is lost.

Starts the embedded loopback server, hammers it through a ``Pool`` from
several threads for about two seconds, and meanwhile borrows a pool client
now and then and makes it crash with ``fusco_actor.testing.inject_crash``. The
pool's supervisor restarts each crashed client behind the same handle (its
``actor_ref`` moves to the new incarnation); requests the crashed incarnation
held are sent again (or fail with a typed error), so every request sent is
resolved.

Run it from a clone with ``uv run examples/supervised_pool.py``, or with
``.venv/bin/python examples/supervised_pool.py`` after ``make``.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import pykka

import fusco_actor
from fusco_actor._server import EmbeddedServer
from fusco_actor.testing import inject_crash

DURATION = 2.0  # seconds of load
THREADS = 8
MAX_CLIENTS = 4
CRASHES = 6  # spread round-robin: well within the default 5 restarts per 10 s per client
REQUEST_TIMEOUT = 5.0  # seconds for each request, queueing included
WAIT_LIMIT = 10.0  # seconds a caller waits for a future before calling it lost


def main() -> int:
    """Run the demonstration; return 0 when every request sent was resolved."""
    with EmbeddedServer() as server:
        pool = fusco_actor.Pool.start(server.url, max_clients=MAX_CLIENTS)
        outcomes: collections.Counter[str] = collections.Counter()
        counts = {"sent": 0, "resolved": 0}
        lock = threading.Lock()
        done = threading.Event()

        def hammer() -> None:
            while not done.is_set():
                future = pool.request("/", "GET", timeout=REQUEST_TIMEOUT)
                with lock:
                    counts["sent"] += 1
                try:
                    kind = str(future.get(timeout=WAIT_LIMIT).status)
                except fusco_actor.FuscoError as exc:
                    kind = type(exc).__name__
                except pykka.Timeout:
                    continue  # lost: never counted as resolved
                with lock:
                    counts["resolved"] += 1
                    outcomes[kind] += 1

        try:
            threads = [threading.Thread(target=hammer, daemon=True) for _ in range(THREADS)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            victims: dict[int, tuple[fusco_actor.Client, pykka.ActorRef[Any]]] = {}
            for _ in range(CRASHES):
                done.wait(DURATION / (CRASHES + 1))  # pace the crashes over the run
                with pool.client(timeout=WAIT_LIMIT) as victim:  # borrowed, then given back
                    victims.setdefault(id(victim), (victim, victim.actor_ref))
                    inject_crash(victim)  # it crashes at its next request
                    print(f"crash injected into client {list(victims).index(id(victim))}")
            done.wait(max(0.0, DURATION - (time.monotonic() - started)))
            done.set()
            for thread in threads:
                thread.join(WAIT_LIMIT + REQUEST_TIMEOUT)
            elapsed = time.monotonic() - started

            print()
            for index, (client, first_ref) in enumerate(victims.values()):
                moved = client.actor_ref is not first_ref
                print(f"client {index}: {'restarted, same handle' if moved else 'not restarted'}")
            sent, resolved = counts["sent"], counts["resolved"]
            rate = sent / elapsed
            print(f"{sent} requests in {elapsed:.1f} s ({rate:.0f}/s); outcomes: {dict(outcomes)}")
            verdict = "no request lost" if sent == resolved else f"{sent - resolved} LOST"
            print(f"sent {sent} == resolved {resolved}: {verdict}")
        finally:
            pool.stop()
            pykka.ActorRegistry.stop_all()
    return 0 if counts["sent"] == counts["resolved"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
