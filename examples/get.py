# /// script
# requires-python = ">=3.10"
# dependencies = ["fusco_actor"]
# [tool.uv.sources]
# fusco_actor = { path = "..", editable = true }
# ///
"""One GET with the fusco-style functions: start, request, disconnect.

Starts the embedded loopback server, starts a client actor for it (which
connects on the first request), sends ``GET /`` with fusco's ``request/6``
argument order ``(client, path, method, headers, body, timeout)`` and prints
the status line, the headers and the body. Then it disconnects the client and
stops the server.

Run it from a clone with ``uv run examples/get.py``, or with
``.venv/bin/python examples/get.py`` after ``make``.
"""

from __future__ import annotations

import fusco_actor
from fusco_actor._server import EmbeddedServer

TIMEOUT = 5.0  # seconds for the whole exchange


def main() -> None:
    with EmbeddedServer() as server:
        print(f"embedded server at {server.url}")
        client = fusco_actor.start(server.url, connect_timeout=2.0)
        try:
            response = fusco_actor.request(client, "/", "GET", [], b"", TIMEOUT)
        finally:
            fusco_actor.disconnect(client)
    print(f"{response.version} {response.status} {response.reason}")
    for name, value in response.headers:
        print(f"{name}: {value}")
    print()
    print(response.body.decode("utf-8", "replace"), end="")
    print(f"({response.size} bytes read in {response.elapsed * 1000:.2f} ms)")


if __name__ == "__main__":
    main()
