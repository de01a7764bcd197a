"""``make bench``: fusco_actor against other Python HTTP/1.1 clients, on a private nginx.

Starts nginx on 127.0.0.1 (:mod:`nginx`), then for each CPU placement pins
nginx and this process, and runs every client over every scenario with 1 and
16 connections (:mod:`clients`, :mod:`peers`), interleaved: within each
repetition the clients take turns cell by cell, in an order rotated per
repetition. Prints the tables and writes them, with the machine description,
to ``--out`` (default ``docs/benchmarks.md``) and the ratio chart next to it.

Usage::

    python bench/run.py              # ~13 minutes on 2 vCPUs
    python bench/run.py --quick      # ~2 minutes smoke run, 1 repetition
    python bench/run.py --clients fusco_actor,pycurl --scenarios small --placements b
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

from clients import CLIENTS, VARIANTS
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
FULL: Final = {"warmup": 0.3, "duration": 1.2, "repeat": 3}
QUICK: Final = {"warmup": 0.1, "duration": 0.4, "repeat": 1}
METHOD: Final = (
    "nginx (`bench/nginx.py`) serves `/small` (13 bytes, `return 200`), `/64k` and `/1m` "
    "(static files with `Content-Length`), `/chunked64k` (a 64 KiB file through the SSI "
    "filter, so it goes out `Transfer-Encoding: chunked`) and `/post` (reads and discards a "
    "1 MiB body, answers `ok`). Each client keeps 1 or 16 keep-alive connections busy: the "
    "synchronous peers with a thread per connection, aiohttp with tasks on one event loop, "
    "pycurl with one `CurlMulti`; fusco_actor like the synchronous peers, through its "
    "blocking API `fusco_actor.request` (a thread and a client per connection; the call "
    "runs in the calling thread while the client is idle), and `fusco_actor p16` "
    "pipelines 16 requests per connection with done-callbacks (16 clients for 16 "
    "connections), which no peer does. Every response is checked (status 200, body length).",
    "",
    "Cells: requests/s and MB/s (10^6 bytes of response body, or of request body for the "
    "POST), median (min\N{EN DASH}max) over the repetitions. The ratio is fusco_actor's "
    "median over the fastest peer's median in the same cell; the raw socket rows are a "
    "baseline, not a peer. The last tables give the client process's CPU time per request, "
    "which moves less than req/s when other work shares the machine.",
)
MODULES: Final = {  # client -> the module it needs
    "urllib3": "urllib3",
    "httpx": "httpx",
    "aiohttp": "aiohttp",
    "pycurl": "pycurl",
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
    parser.add_argument("--placements", type=_list, default=list(PLACEMENTS))
    parser.add_argument("--clients", type=_list, help=f"from: {', '.join([*CLIENTS, *VARIANTS])}")
    parser.add_argument("--scenarios", type=_list, help="name substrings, e.g. small,POST")
    parser.add_argument("--conns", type=_list, default=[str(n) for n in CONNS])
    parser.add_argument("--no-install", action="store_true", help="never apt-get nginx")
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    unknown = set(args.placements) - set(PLACEMENTS)
    unknown |= set(args.clients or ()) - set(CLIENTS) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown placement or client: {', '.join(sorted(unknown))}")
    return args


def pin_process(cpus: set[int]) -> None:
    """Pin every thread of this process to ``cpus``; threads started later inherit it."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cpus)


def select(args: argparse.Namespace) -> tuple[list[str], list[Scenario], list[str]]:
    """Return the clients (installed ones), scenarios and placements to run."""
    table = {**CLIENTS, **VARIANTS}
    clients = []
    for name in args.clients or list(CLIENTS):
        module = MODULES.get(name)
        if module and importlib.util.find_spec(module) is None:
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
    assert all(name in table for name in clients)
    return clients, scenarios, placements


def run(
    args: argparse.Namespace,
    nginx: Nginx,
    clients: list[str],
    scenarios: list[Scenario],
    placements: list[str],
) -> Results:
    """Run every cell; return the results (failed cells hold their error)."""
    table = {**CLIENTS, **VARIANTS}
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
                        function, runs = table[name]
                        if not runs(scenario):
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write the report. Return the exit status."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    clients, scenarios, placements = select(args)
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
    text = markdown(results, names, scenarios, conns, clients, header, link)
    args.out.write_text(text)
    print(text)
    print(f"bench: wrote {args.out}" + (f" and {chart}" if link else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
