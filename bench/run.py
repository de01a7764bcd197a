"""``make bench``: fusco_actor against other Python HTTP/1.1 clients, on a private nginx.

Starts nginx on 127.0.0.1 (:mod:`nginx`), then for each CPU placement (by
default only b: this process on CPU 1, nginx on CPU 0) pins nginx and this
process, and runs every client over every scenario with 1 and 16 connections
it applies to (:mod:`clients`: the peers of :mod:`peers` and :mod:`rust_peers`,
and fusco_actor driven the ways of :mod:`fusco_cells`, each cell on the engine
it names), interleaved: within each repetition the clients take turns cell by
cell, in an order rotated per repetition. Prints the tables and writes them,
with the machine description and issue 10's table (:mod:`goals`), to
``--out`` (default ``docs/benchmarks.md``) and the ratio chart next to it.

Usage::

    python bench/run.py              # ~12 minutes on 2 vCPUs (placement b)
    python bench/run.py --quick      # ~2 minutes smoke run, 1 repetition
    python bench/run.py --clients 'fusco bench,pycurl' --scenarios small --placements a,b
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from clients import CLIENTS
from harness import SCENARIOS, Scenario, measure
from nginx import Nginx, NginxError
from report import Results, machine, markdown, ratio_chart

ROOT: Final = Path(__file__).resolve().parent.parent
#: name -> (description, client CPUs, nginx CPUs)
PLACEMENTS: Final = {
    "a": ("one vCPU: client and nginx both on CPU 0", {0}, {0}),
    "b": ("client on CPU 1, nginx on CPU 0", {1}, {0}),
}
CONNS: Final = (1, 16)
DEFAULT_PLACEMENTS: Final = ("b",)  # both: --placements a,b (twice the time)
FULL: Final = {"warmup": 0.3, "duration": 1.0, "repeat": 3}
QUICK: Final = {"warmup": 0.1, "duration": 0.4, "repeat": 1}
METHOD: Final = (
    "nginx (`bench/nginx.py`) serves `/small` (13 bytes, `return 200`), `/64k` and `/1m` "
    "(static files with `Content-Length`), `/chunked64k` (a 64 KiB file through the SSI "
    "filter, so it goes out `Transfer-Encoding: chunked`) and `/post` (reads and discards a "
    "1 MiB body, answers `ok`). Each client keeps 1 or 16 keep-alive connections busy: the "
    "synchronous peers (http.client, urllib3, httpx, pyreqwest, wreq) with a thread per "
    "connection sharing one client, the async ones (aiohttp, pyreqwest async, wreq async) with "
    "one task per connection on uvloop, pycurl with one reused `Curl` handle (1 connection) "
    "or one `CurlMulti` with a handle per connection. fusco_actor is driven the ways issue "
    "10 names (`bench/fusco_cells.py`): `fusco bench` = a `Pool(max_clients=N)` kept busy by "
    "done-callbacks as `fusco bench -c N` does, `fusco bench p16` = the same with "
    "`--pipeline 16`, `fusco arequest tasks` = 4N asyncio tasks awaiting `pool.arequest` on "
    "a uvloop of their own (`... on scheduler`: on the scheduler's loop, no thread hop), "
    "`fusco pool threads` = N threads blocking on `pool.request(...).get()`, `fusco p16 "
    "futures` = one client with `pipeline=16` and one thread keeping 16 futures outstanding, "
    "`fusco blocking` = a thread per connection calling `fusco_actor.request` on a client of "
    "its own. Every fusco cell runs on the loop engine (`FUSCO_ACTOR_ENGINE=loop`), except "
    "the rows marked `[thread]`: today's threaded engine (`FUSCO_ACTOR_ENGINE=thread`); the "
    "bench checks which actor class each setting selects. Every response is checked "
    "(status 200, body length).",
    "",
    "Cells: requests/s and MB/s (10^6 bytes of response body, or of request body for the "
    "POST), median (min\N{EN DASH}max) over the repetitions. Ratios are of medians in the "
    "same run. The raw socket rows are a baseline, not a peer. The last tables give the "
    "client process's CPU time per request, which moves less than req/s when other work "
    "shares the machine.",
)
MODULES: Final = {  # client -> the module it needs
    "urllib3": "urllib3",
    "httpx": "httpx",
    "aiohttp": "aiohttp",
    "pycurl": "pycurl",
    "pyreqwest": "pyreqwest",
    "pyreqwest async": "pyreqwest",
    "wreq": "wreq",
    "wreq async": "wreq",
}


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~2 minute smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--chart", type=Path, help="default: benchmarks_ratios.png by --out")
    parser.add_argument("--warmup", type=float, help="seconds before counting, per cell")
    parser.add_argument("--duration", type=float, help="seconds counted, per cell")
    parser.add_argument("--repeat", type=int, help="repetitions (median, min-max)")
    parser.add_argument("--placements", type=_list, default=list(DEFAULT_PLACEMENTS))
    parser.add_argument("--clients", type=_list, help=f"from: {', '.join(CLIENTS)}")
    parser.add_argument("--scenarios", type=_list, help="name substrings, e.g. small,POST")
    parser.add_argument("--conns", type=_list, default=[str(n) for n in CONNS])
    parser.add_argument("--no-install", action="store_true", help="never apt-get nginx")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    unknown = set(args.placements) - set(PLACEMENTS)
    unknown |= set(args.clients or ()) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown placement or client: {', '.join(sorted(unknown))}")
    return args


def pin_process(cpus: set[int]) -> None:
    """Pin every thread of this process to ``cpus``; threads started later inherit it."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def select(
    args: argparse.Namespace,
) -> tuple[list[str], list[Scenario], list[str], dict[str, str]]:
    """Return the clients (installed ones), scenarios, placements, and the clients skipped."""
    clients, skipped = [], {}
    for name in args.clients or list(CLIENTS):
        module = MODULES.get(name)
        if module and importlib.util.find_spec(module) is None:
            skipped[name] = f"{module} is not installed (pip install -r bench/requirements.txt)"
            print(f"bench: {module} is not installed; skipping {name}", file=sys.stderr)
            continue
        clients.append(name)
    scenarios = [
        s
        for s in SCENARIOS
        if not args.scenarios or any(p.lower() in s.name.lower() for p in args.scenarios)
    ]
    cpus = os.sched_getaffinity(0)
    placements = []
    for key in args.placements:
        wanted = PLACEMENTS[key][1] | PLACEMENTS[key][2]
        if wanted <= cpus:
            placements.append(key)
        else:
            print(f"bench: placement {key} needs CPUs {sorted(wanted)}; skipped", file=sys.stderr)
    return clients, scenarios, placements, skipped


def run(
    args: argparse.Namespace,
    nginx: Nginx,
    clients: list[str],
    scenarios: list[Scenario],
    placements: list[str],
) -> Results:
    """Run every cell; return the results (failed cells hold their error)."""
    conns = [int(n) for n in args.conns]
    results: Results = {}
    for placement in placements:
        _, client_cpus, server_cpus = PLACEMENTS[placement]
        nginx.pin(server_cpus)
        pin_process(client_cpus)
        for rep in range(args.repeat):
            order = clients[rep % len(clients) :] + clients[: rep % len(clients)]
            for scenario in scenarios:
                for n in conns:
                    for name in order:
                        function, runs = CLIENTS[name]
                        if not runs(scenario, n):
                            continue
                        key = (placement, scenario.name, n, name)
                        tag = f"[{placement} {rep + 1}/{args.repeat}] {scenario.name:<18} {n:>2}c"
                        try:
                            rate, cpu = measure(
                                function, nginx.url, scenario, n, args.warmup, args.duration
                            )
                        except Exception as exc:  # a failed cell is reported, not fatal
                            results[key] = f"{type(exc).__name__}: {exc}"
                            print(f"{tag} {name:<30} ERROR {results[key]}", file=sys.stderr)
                            continue
                        finally:
                            gc.collect()
                        samples = results.setdefault(key, [])
                        if isinstance(samples, list):
                            samples.append((rate, cpu))
                        print(
                            f"{tag} {name:<30} {rate:>10,.0f} req/s {cpu * 1e6:>8.1f} CPU us/req",
                            file=sys.stderr,
                        )
    return results


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: nginx is stopped


def kept_section(page: Path) -> str:
    """Return the section ``bench/load_tools.py`` wrote into ``page`` (with its markers), or "".

    ``make bench`` rewrites the page; the comparison with the load tools is a
    separate run (``make bench-tools``) and survives it.
    """
    text = page.read_text() if page.exists() else ""
    begin, end = "<!-- load-tools:begin -->", "<!-- load-tools:end -->"
    if begin not in text or end not in text:
        return ""
    return "\n" + text[text.index(begin) : text.index(end) + len(end)] + "\n"


def _load_note(load: tuple[float, float]) -> list[str]:
    """Return a warning line when other work loaded the machine during the run."""
    cpus = os.cpu_count() or 1
    if max(load) <= cpus:
        return []
    return [
        f"- Note: the load average rose above the {cpus} vCPUs: other processes shared the "
        "machine during the run, so absolute rates are low and noisy; ratios within a "
        "repetition (clients interleaved) are the steadier figures, and the CPU-per-request "
        "tables below move less than req/s."
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write the report. Return the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    clients, scenarios, placements, skipped = select(args)
    if not (clients and scenarios and placements):
        print("bench: nothing to run", file=sys.stderr)
        return 2
    settings = {k: getattr(args, k) for k in ("warmup", "duration", "repeat")}
    load_before = os.getloadavg()[0]
    try:
        with Nginx(install=not args.no_install) as nginx:
            print(f"bench: {nginx.version} at {nginx.url}", file=sys.stderr)
            results = run(args, nginx, clients, scenarios, placements)
            version = nginx.version
    except NginxError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; nginx stopped", file=sys.stderr)
        return 130
    finally:
        with contextlib.suppress(ImportError):
            import pykka  # noqa: PLC0415

            pykka.ActorRegistry.stop_all(block=True, timeout=5)
    settings["load"] = (load_before, os.getloadavg()[0])
    chart = args.chart or args.out.with_name("benchmarks_ratios.png")
    names = {p: PLACEMENTS[p][0] for p in placements}
    conns = [int(n) for n in args.conns]
    command = "bench/run.py" + (" --quick" if args.quick else "")
    header = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`{command}`). Rerun it to refresh this page.",
        "",
        *machine(version, settings),
        *_load_note(settings["load"]),
        "- Placements: "
        + "; ".join(f"({p}) {d}" for p, d in names.items())
        + " (`sched_setaffinity` of every thread, as `taskset -a -p`)",
        "",
        *METHOD,
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        ratio_chart(results, names, scenarios, conns, clients, chart)
        link = os.path.relpath(chart, args.out.parent)
    except ImportError:
        print("bench: matplotlib is not installed; no chart", file=sys.stderr)
        link = None
    text = markdown(results, names, scenarios, conns, clients, header, link, skipped)
    args.out.write_text(text + kept_section(args.out))
    print(text)
    print(f"bench: wrote {args.out}" + (f" and {chart}" if link else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
