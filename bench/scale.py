"""10,000 idle clients on one scheduler: threads used and memory per connected client.

Issue 10 asks that 10,000 clients connected to one local server, in one
process, run on at most 4 threads, and that the memory per idle connected
client be known. This script measures both, on the loop engine
(``FUSCO_ACTOR_ENGINE=loop``), and ``tests/integration/test_scale.py`` runs
it and checks what it reports.

A *run* (``scale.py run``) is one client process. It starts the counting
server (``scale.py serve``, another process: asyncio on uvloop, a protocol
object per connection, so 10,000 connections cost it little), warms up with
one client, takes the RSS, then starts N clients with ``fusco_actor.start``,
connects each with ``fusco_actor.connect``, sends one ``GET`` on every one,
waits until the server counts N open connections and N requests, collects
garbage and takes the RSS again: (RSS after - RSS before) / N is the memory
per idle connected client. It counts the threads (``threading.active_count``
and ``/proc/self/task``, which also shows threads Python does not know of),
disconnects every client and waits until the server saw every connection
close. It prints one JSON object.

The default command runs one such process per loop (uvloop, then asyncio with
``FUSCO_ACTOR_LOOP=asyncio``) and prints a Markdown table for docs/engine.md.

Usage::

    python bench/scale.py                        # both loops, 10,000 clients, ~30 s
    python bench/scale.py --clients 2000         # fewer
    python bench/scale.py run --loop asyncio     # one run, JSON
    python bench/scale.py run --trace            # + the tracemalloc top (slower, more RSS)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

CLIENTS: Final = 10_000
FD_MARGIN: Final = 64  # descriptors besides the connections (stdio, pipes, epoll)
WAIT: Final = 30.0  # seconds the server may take to see what the clients did
REQUEST_TIMEOUT: Final = 30.0
RESPONSE: Final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
EXIT_NOFILE: Final = 3  # the hard open-file limit is too low for the run


# -- the counting server (a process of its own) ---------------------------------


class _Counts:
    """What the server saw; ``wait`` lines on stdin are answered when a count is reached."""

    def __init__(self) -> None:
        self.stats = {"open": 0, "opened": 0, "closed": 0, "requests": 0}
        self.waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    def bump(self, name: str, by: int = 1) -> None:
        self.stats[name] += by
        self.stats["open"] = self.stats["opened"] - self.stats["closed"]
        for waiter in [w for w in self.waiters if self.stats[w[0]] >= w[1]]:
            self.waiters.remove(waiter)
            if not waiter[2].done():
                waiter[2].set_result(None)


class _Counted(asyncio.Protocol):
    """One connection: answers every request head with ``RESPONSE`` (GET only, no body)."""

    def __init__(self, counts: _Counts) -> None:
        self.counts = counts
        self.transport: asyncio.Transport | None = None
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] # uvloop's is no subclass
        self.counts.bump("opened")

    def data_received(self, data: bytes) -> None:
        buffer = self.tail + data
        heads = buffer.count(b"\r\n\r\n")
        self.tail = buffer[buffer.rfind(b"\r\n\r\n") + 4 :] if heads else buffer
        if heads and self.transport is not None:
            self.transport.write(RESPONSE * heads)
            self.counts.bump("requests", heads)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counts.bump("closed")


async def _serve() -> None:
    """Listen on 127.0.0.1; print the port; answer ``stats`` and ``wait NAME N`` lines."""
    loop = asyncio.get_running_loop()
    counts = _Counts()
    server = await loop.create_server(lambda: _Counted(counts), "127.0.0.1", 0, backlog=4096)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).split():  # EOF: the client process is gone
        if line[0] == b"wait":
            name, count = line[1].decode(), int(line[2])
            if counts.stats[name] < count:
                waiter = loop.create_future()
                counts.waiters.append((name, count, waiter))
                await asyncio.wait([waiter], timeout=WAIT)
        print(json.dumps(counts.stats), flush=True)
    server.close()


def serve() -> None:
    """Run the counting server until stdin closes (uvloop where it imports)."""
    from fusco_actor._limits import raise_open_file_limit  # noqa: PLC0415

    raise_open_file_limit()
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        asyncio.run(_serve())
    else:
        uvloop.run(_serve())


class Server:
    """The counting server's process, driven through its stdin and stdout."""

    def __init__(self) -> None:
        """Start it and read the port it listens on."""
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[str] = self.process.stdin
        self.stdout: IO[str] = self.process.stdout
        self.port = int(self.stdout.readline().split()[1])

    def wait(self, name: str, count: int) -> dict[str, int]:
        """Return the counts once ``name`` reached ``count`` (or after ``WAIT`` seconds)."""
        self.stdin.write(f"wait {name} {count}\n")
        self.stdin.flush()
        stats: dict[str, int] = json.loads(self.stdout.readline())
        return stats

    def stop(self) -> None:
        """Close its stdin (it exits) and reap it."""
        self.stdin.close()
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()


# -- one run (the client process) ------------------------------------------------


def rss() -> int:
    """Return this process's resident set size in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def threads() -> dict[str, Any]:
    """Return the threads Python knows of and the kernel's count of this process's tasks."""
    return {
        "active_count": threading.active_count(),
        "tasks": len(os.listdir("/proc/self/task")),
        "names": sorted(t.name for t in threading.enumerate()),
    }


def run(clients: int, trace: bool) -> dict[str, Any]:
    """Connect ``clients`` clients to the counting server and report (see the module doc)."""
    os.environ["FUSCO_ACTOR_ENGINE"] = "loop"
    server = Server()  # before any thread of ours starts
    try:
        return _run(server, clients, trace)
    finally:
        server.stop()


def _run(server: Server, clients: int, trace: bool) -> dict[str, Any]:
    import fusco_actor  # noqa: PLC0415
    from fusco_actor._limits import open_file_limit  # noqa: PLC0415
    from fusco_actor._scheduler import get_scheduler  # noqa: PLC0415

    limit_before = open_file_limit()
    scheduler = get_scheduler()  # raises the soft limit to the hard one
    report: dict[str, Any] = {
        "clients": clients,
        "loop": scheduler.loop_name,
        "python": platform.python_version(),
        "nofile_before": list(limit_before),
        "nofile": list(scheduler.open_files),
    }
    needed = clients + FD_MARGIN
    soft = scheduler.open_files.soft
    if soft is not None and soft < needed:
        report["error"] = (
            f"{clients} clients need about {needed} open files; the hard limit "
            f"(RLIMIT_NOFILE) is {scheduler.open_files.hard}: raise it (ulimit -Hn, "
            "LimitNOFILE=, /etc/security/limits.conf)"
        )
        return report
    url = f"http://127.0.0.1:{server.port}"
    with fusco_actor.start(url) as warm:  # the code paths and the loop's buffers, once
        fusco_actor.request(warm, "/", "GET", [], b"", REQUEST_TIMEOUT)
    server.wait("closed", 1)
    if trace:
        import tracemalloc  # noqa: PLC0415

        tracemalloc.start(4)
    gc.collect()
    before, fds_before = rss(), len(os.listdir("/proc/self/fd"))
    seen = [threads()]
    start = time.perf_counter()
    handles = [fusco_actor.start(url) for _ in range(clients)]
    started = time.perf_counter()
    for client in handles:
        fusco_actor.connect(client)
    connected = time.perf_counter()
    seen.append(threads())
    futures = [client.request("/", "GET", timeout=REQUEST_TIMEOUT) for client in handles]
    answers = [future.get() for future in futures]
    answered = time.perf_counter()
    report["responses_ok"] = sum(a.status == 200 and a.body == b"ok" for a in answers)
    del futures, answers
    report["server_connected"] = server.wait("requests", clients + 1)
    gc.collect()
    after, fds_after = rss(), len(os.listdir("/proc/self/fd"))
    seen.append(threads())
    if trace:
        snapshot = tracemalloc.take_snapshot()
        report["traced_per_client"] = round(tracemalloc.get_traced_memory()[0] / clients)
        report["tracemalloc_top"] = _top(snapshot, clients)
        tracemalloc.stop()
    report.update(
        rss_before=before,
        rss_connected=after,
        bytes_per_client=round((after - before) / clients),
        fds_opened=fds_after - fds_before,
    )
    for client in handles:
        client.disconnect(timeout=10.0)
    done = time.perf_counter()
    report["server_after"] = server.wait("closed", clients + 1)
    report["all_stopped"] = all(client._is_stopped for client in handles)
    seen.append(threads())
    report["threads"] = seen
    report["max_active_count"] = max(s["active_count"] for s in seen)
    report["max_tasks"] = max(s["tasks"] for s in seen)
    report["seconds"] = {
        "start": round(started - start, 2),
        "connect": round(connected - started, 2),
        "request": round(answered - connected, 2),
        "disconnect": round(done - answered, 2),
    }
    return report


def _top(snapshot: Any, clients: int, limit: int = 20) -> list[str]:
    """Return the ``limit`` source lines holding the most traced memory, per client, as text."""
    import tracemalloc  # noqa: PLC0415

    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    return [
        f"{stat.size / clients:.0f} B in {stat.count / clients:.1f} blocks: {stat.traceback[0]}"
        for stat in snapshot.statistics("lineno")[:limit]
    ]


# -- both loops, as a table ------------------------------------------------------


def run_process(clients: int, loop: str, trace: bool = False) -> dict[str, Any]:
    """Run one ``scale.py run`` in a fresh process on ``loop`` and return its report."""
    env = dict(os.environ, FUSCO_ACTOR_ENGINE="loop", FUSCO_ACTOR_LOOP=loop)
    argv = [sys.executable, __file__, "run", "--clients", str(clients)]
    done = subprocess.run(
        [*argv, *(["--trace"] if trace else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode not in (0, EXIT_NOFILE):
        raise RuntimeError(f"scale.py run failed ({done.returncode}):\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def table(reports: list[dict[str, Any]]) -> str:
    """Return the Markdown table of ``reports`` (one row per loop)."""
    lines = [
        "| loop | clients | RSS per idle connected client | threads (Python / kernel) "
        "| start | connect | 1 request each | disconnect |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        s = r["seconds"]
        lines.append(
            f"| {r['loop']} | {r['clients']:,} | {r['bytes_per_client'] / 1024:.1f} KiB "
            f"| {r['max_active_count']} / {r['max_tasks']} | {s['start']} s | {s['connect']} s "
            f"| {s['request']} s | {s['disconnect']} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=("both", "run", "serve"), default="both")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None)
    parser.add_argument("--trace", action="store_true", help="add the tracemalloc top")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve()
        return 0
    if args.mode == "run":
        if args.loop is not None:
            os.environ["FUSCO_ACTOR_LOOP"] = args.loop
        report = run(args.clients, args.trace)
        print(json.dumps(report, indent=1))
        return EXIT_NOFILE if "error" in report else 0
    reports = [run_process(args.clients, loop, args.trace) for loop in ("uvloop", "asyncio")]
    for report in reports:
        if "error" in report:
            print(report["error"], file=sys.stderr)
            return EXIT_NOFILE
        for line in report.get("tracemalloc_top", []):
            print(f"{report['loop']}: {line}")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    print(
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} vCPUs, "
        f"Python {reports[0]['python']}, RLIMIT_NOFILE {reports[0]['nofile_before']} "
        f"-> {reports[0]['nofile']}"
    )
    print(table(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
