"""``make bench-tools``: ``fusco bench`` against the load tools it replaces, in one run.

Starts the benchmark's private nginx (:mod:`nginx`) pinned to CPU 0 and runs
each tool pinned to CPU 1 (``taskset -c 1``) against ``/small``, interleaved:
every round runs every tool once, in an order rotated per round. Two phases:

* **Most requests per second** (closed model): ``CONNECTIONS`` connections (or
  Locust users) sending back to back for ``DURATION`` seconds. wrk2 has no
  closed model (it always paces), so it runs at a rate far above what one core
  reaches, which is how its README measures peak throughput.
* **Latency at a fixed rate**: ``RATE`` requests per second. ``fusco bench -R``
  and wrk2 ``-R`` pace requests and time each from its *intended* send time;
  Locust paces each user with ``constant_throughput`` and times each request
  from when it was actually sent (so a stall hides in its percentiles); wrk
  cannot pace, so it has no row there.

For each run: responses per second, the tool's CPU time (user + system of the
process tree, from ``wait4``) and so requests per CPU-second ("per core"), and
the p50/p99 latency the tool itself reports. Results go into ``--benchmarks``
(default ``docs/benchmarks.md``) between the markers
``<!-- load-tools:begin -->`` and ``<!-- load-tools:end -->`` (``make bench``
keeps that section when it rewrites the page).

wrk comes from Debian (``apt-get install wrk``); wrk2 is not packaged: pass
``--wrk2 PATH`` to a binary built from github.com/giltene/wrk2 (``make`` in a
checkout), or its rows read "not installed". Locust rows need the ``locust``
extra (``pip install -e '.[locust]'``).

Usage::

    python bench/load_tools.py                       # ~3 minutes
    python bench/load_tools.py --rate 2000 --rounds 3 --wrk2 /path/to/wrk2
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Final

from nginx import Nginx, NginxError

ROOT: Final = Path(__file__).resolve().parent.parent
BEGIN: Final = "<!-- load-tools:begin -->"
END: Final = "<!-- load-tools:end -->"
TOOL_CPU: Final = "1"  # taskset list for the load tools
NGINX_CPUS: Final = {0}
RUN_TIMEOUT_SLACK: Final = 30.0  # seconds a tool may take beyond its duration
LOCUSTFILE: Final = """\
import os
from locust import FastHttpUser, constant, constant_throughput, task
from fusco_actor.contrib.locust import FuscoUser

_RATE = float(os.environ.get("LOAD_TOOLS_USER_RATE", "0"))
_WAIT = constant_throughput(_RATE) if _RATE else constant(0)


class Fast(FastHttpUser):
    wait_time = _WAIT

    @task
    def small(self):
        self.client.get("/small")


class Fusco(FuscoUser):
    wait_time = _WAIT

    @task
    def small(self):
        self.client.get("/small")
"""


@dataclass
class Result:
    """What one run of one tool measured; latencies in seconds, None when not reported."""

    requests: int
    duration: float
    cpu: float  # user + system seconds of the tool's processes
    p50: float | None
    p99: float | None
    errors: int = 0

    @property
    def rate(self) -> float:
        """Responses per second of wall time."""
        return self.requests / self.duration

    @property
    def per_core(self) -> float:
        """Requests per CPU-second of the tool."""
        return self.requests / self.cpu if self.cpu > 0 else float("nan")


class ToolError(RuntimeError):
    """A tool exited non-zero or printed nothing parseable."""


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def measured(
    command: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[str, float]:
    """Run ``command`` pinned to ``TOOL_CPU``; return (stdout + stderr, CPU seconds).

    The CPU seconds are the user + system time of the command's reaped
    process tree (``RUSAGE_CHILDREN`` before and after).

    Raises:
        ToolError: an exit status other than 0 or 1 (fusco bench and Locust exit 1
            when requests failed), or a timeout (its process group is killed).
    """
    before = _children_cpu()
    proc = subprocess.Popen(
        ["taskset", "-c", TOOL_CPU, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ToolError(f"{command[0]} ran past {timeout:.0f} s") from None
    if proc.returncode not in (0, 1):
        raise ToolError(f"{command[0]} exited {proc.returncode}: {err.decode()[-500:]}")
    return out.decode() + err.decode(), _children_cpu() - before


# -- the tools ---------------------------------------------------------------------------


def fusco(url: str, conns: int, duration: float, rate: float | None) -> Result:
    """``fusco bench`` (this venv's), closed model or ``-R rate``."""
    command = [str(Path(sys.executable).with_name("fusco")), "bench", url, "-c", str(conns)]
    command += ["-z", f"{duration:g}", "--json"]
    if rate:
        command += ["-R", f"{rate:g}"]
    out, cpu = measured(command, duration + RUN_TIMEOUT_SLACK)
    report = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    lat = report["latency"]
    return Result(report["responses"], report["duration"], cpu, lat.get("p50"), lat.get("p99"),
                  report["error_count"])  # fmt: skip


_WRK_UNITS: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _wrk_latency(out: str, pct: str) -> float | None:
    """Read one percentile from wrk's or wrk2's ``--latency`` distribution."""
    match = re.search(rf"^\s*{re.escape(pct)}%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else None


def _wrk_result(out: str, cpu: float, duration: float) -> Result:
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    if not match:
        raise ToolError(f"wrk printed no total: {out[-300:]}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    n_errors = int(errors.group(1)) if errors else 0
    if socket_errors:
        n_errors += sum(int(g) for g in socket_errors.groups())
    seconds = float(match.group(2)) * _WRK_UNITS[match.group(3)]
    p50 = _wrk_latency(out, "50.000") or _wrk_latency(out, "50")
    p99 = _wrk_latency(out, "99.000") or _wrk_latency(out, "99")
    return Result(int(match.group(1)), seconds or duration, cpu, p50, p99, n_errors)


def wrk(binary: str, url: str, conns: int, duration: float, rate: float | None) -> Result:
    """Run wrk (no ``rate``) or wrk2 (``-R rate``), one thread, ``--latency``."""
    command = [binary, "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency"]
    if rate:
        command += [f"-R{int(rate)}"]
    out, cpu = measured([*command, url], duration + RUN_TIMEOUT_SLACK)
    return _wrk_result(out, cpu, duration)


def locust(
    user: str, url: str, users: int, duration: float, rate: float | None, tmp: Path
) -> Result:
    """One headless Locust process with ``users`` users of class ``user``."""
    locustfile = tmp / "locustfile.py"
    locustfile.write_text(LOCUSTFILE)
    prefix = tmp / f"stats-{user}"
    env = dict(os.environ, LOAD_TOOLS_USER_RATE=f"{(rate or 0) / users:g}")
    command = [
        str(Path(sys.executable).with_name("locust")), "-f", str(locustfile), "--headless",
        "-u", str(users), "-r", str(users * 100), "--run-time", f"{max(1, round(duration))}s",
        "--host", url.rsplit("/", 1)[0], "--csv", str(prefix), "--only-summary",
        "--loglevel", "WARNING", "--stop-timeout", "2", user,
    ]  # fmt: skip
    _, cpu = measured(command, duration + RUN_TIMEOUT_SLACK, env)
    with open(f"{prefix}_stats.csv", newline="") as file:
        rows = {row["Name"]: row for row in csv.DictReader(file)}
    total = rows["Aggregated"]
    requests = int(total["Request Count"])
    failures = int(total["Failure Count"])

    def pct(name: str) -> float | None:
        value = total.get(name, "N/A")
        return None if value in ("N/A", "") else float(value) / 1e3  # ms -> s

    # Locust's own rate: its clock starts when the users do, after its start-up.
    rate_reported = float(total["Requests/s"]) or requests / duration
    return Result(requests - failures, requests / rate_reported, cpu, pct("50%"), pct("99%"),
                  failures)  # fmt: skip


# -- the run -----------------------------------------------------------------------------


def _available(args: argparse.Namespace) -> dict[str, str]:
    """Return tool name -> "" when it can run, or the reason it cannot."""
    has_locust = Path(sys.executable).with_name("locust").exists()
    try:
        import fusco_actor.contrib.locust  # noqa: F401, PLC0415
    except ImportError:
        has_locust = False
    return {
        "fusco bench": "",
        "wrk": "" if shutil.which("wrk") else "not installed (apt-get install wrk)",
        "wrk2": ""
        if args.wrk2 and os.access(args.wrk2, os.X_OK)
        else "not installed (--wrk2 PATH)",
        "Locust FastHttpUser": "" if has_locust else "not installed (pip install '.[locust]')",
        "Locust FuscoUser": "" if has_locust else "not installed (pip install '.[locust]')",
    }


def one(tool: str, phase: str, url: str, args: argparse.Namespace, tmp: Path) -> Result | str:
    """Run ``tool`` once in ``phase`` ("max" or "rate"); a str says why there is no result."""
    rate = args.rate if phase == "rate" else None
    conns, duration = args.connections, args.duration
    try:
        if tool == "fusco bench":
            return fusco(url, conns, duration, rate)
        if tool == "wrk":
            return "cannot pace (no -R)" if rate else wrk("wrk", url, conns, duration, None)
        if tool == "wrk2":
            result = wrk(args.wrk2, url, conns, duration, rate or args.wrk2_max_rate)
            if not rate:  # timed against a schedule it cannot keep: not a latency
                result.p50 = result.p99 = None
            return result
        user = "Fast" if tool.endswith("FastHttpUser") else "Fusco"
        return locust(user, url, conns, duration, rate, tmp)
    except (ToolError, OSError, ValueError, KeyError, StopIteration) as exc:
        first = " ".join(str(exc).split())  # one table cell: no newlines, no pipes
        return f"failed: {first.replace('|', '/')}"[:160]


def versions(args: argparse.Namespace, reasons: dict[str, str]) -> str:
    """Return what ran, as each tool prints its version (first line, trimmed)."""

    def first_line(command: list[str]) -> str:
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            return "?"
        text = (proc.stdout + proc.stderr).strip().splitlines()
        return " ".join(text[0].split()[:3]) if text else "?"

    bin_dir = Path(sys.executable).parent
    found = [first_line([str(bin_dir / "fusco"), "--version"])]
    if not reasons["wrk"]:
        found.append(first_line(["wrk", "-v"]))
    if not reasons["wrk2"]:
        found.append(first_line([args.wrk2, "-v"]).replace("wrk", "wrk2 (reports itself as wrk)"))
    if not reasons["Locust FuscoUser"]:
        found.append(first_line([str(bin_dir / "locust"), "--version"]).removesuffix(" from"))
    return ", ".join(found)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1e3:.2f} ms"


def table(phase: str, results: dict[str, list[Result | str]], reasons: dict[str, str]) -> list[str]:
    """Return the markdown table of one phase: medians over the rounds."""
    lines = [
        "| tool | responses/s | requests per CPU-second | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for tool, runs in results.items():
        done = [r for r in runs if isinstance(r, Result)]
        if not done:
            why = reasons.get(tool) or next((r for r in runs if isinstance(r, str)), "n/a")
            lines.append(f"| {tool} | {why} | | | | |")
            continue
        p50 = [r.p50 for r in done if r.p50 is not None]
        p99 = [r.p99 for r in done if r.p99 is not None]
        lines.append(
            f"| {tool} | {median(r.rate for r in done):,.0f} | "
            f"{median(r.per_core for r in done):,.0f} | {_ms(median(p50) if p50 else None)} | "
            f"{_ms(median(p99) if p99 else None)} | {sum(r.errors for r in done)} |"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="fixed rate, req/s")
    parser.add_argument("--connections", type=int, default=16, help="connections or users")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--wrk2", default=os.environ.get("WRK2"), help="path to a wrk2 binary")
    parser.add_argument("--wrk2-max-rate", type=float, default=1e6, help="wrk2's 'max' rate")
    parser.add_argument("--benchmarks", type=Path, default=ROOT / "docs" / "benchmarks.md")
    return parser.parse_args(argv)


def splice(page: Path, section: list[str]) -> None:
    """Replace (or append) the marked load-tools section of ``page``."""
    text = page.read_text() if page.exists() else ""
    block = "\n".join([BEGIN, *section, END])
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    page.write_text(text)


def main(argv: list[str] | None = None) -> int:
    """Run every tool in both phases; write the report. Return the exit status."""
    args = parse_args(argv)
    reasons = _available(args)
    tools = list(reasons)
    phases = {
        "max": "Most requests per second (closed model)",
        "rate": f"At {args.rate:g} requests per second",
    }
    results: dict[str, dict[str, list[Result | str]]] = {p: {t: [] for t in tools} for p in phases}
    load_before = os.getloadavg()[0]
    try:
        with Nginx() as nginx, tempfile.TemporaryDirectory(prefix="fusco-load-tools-") as tmp:
            nginx.pin(NGINX_CPUS)
            url = nginx.url + "/small"
            for round_no in range(args.rounds):
                order = tools[round_no % len(tools) :] + tools[: round_no % len(tools)]
                for phase in phases:
                    for tool in order:
                        if reasons[tool]:
                            continue
                        result = one(tool, phase, url, args, Path(tmp))
                        results[phase][tool].append(result)
                        shown = result if isinstance(result, str) else f"{result.rate:,.0f} req/s"
                        print(
                            f"load_tools: round {round_no + 1} {phase} {tool}: {shown}",
                            file=sys.stderr,
                        )
            version = nginx.version
    except NginxError as exc:
        print(f"load_tools: {exc}", file=sys.stderr)
        return 1
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = [
        "## fusco bench and the load tools it replaces",
        "",
        f"Generated by `make bench-tools` (`bench/load_tools.py`) on {stamp}: "
        f"{version} on CPU 0 serving `/small` (13 bytes), each tool pinned to CPU 1, "
        f"{args.connections} connections (Locust: users), {args.duration:g} s per run, "
        f"{args.rounds} interleaved rounds (medians shown); load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after.",
        f"Tools: {versions(args, reasons)}"
        + (
            ""
            if reasons["wrk2"]
            else " (wrk2 is not packaged: built by `make` in a checkout of github.com/giltene/wrk2)"
        )
        + ".",
        "Requests per CPU-second divide the responses by the user + system time of the "
        "tool's own processes, start-up included (a Python tool spends a few tenths of a "
        "second importing): how much one core of load generator buys. wrk2 has no closed "
        "model: in the first table it paces at 1,000,000 requests/s, which is how its "
        "README measures peak throughput, and its latency there (from a schedule it cannot "
        "keep) is not shown.",
        "",
    ]
    for phase, title in phases.items():
        section += [f"### {title}", "", *table(phase, results[phase], reasons), ""]
    section += [
        "Latency: `fusco bench -R` and wrk2 time each request from its intended send time "
        "(coordinated omission corrected); Locust and wrk time it from the actual send, so "
        "their percentiles at a fixed rate hide queueing behind a slow response. Locust "
        "keeps response times rounded to whole milliseconds (and to 2 significant digits "
        "above 100 ms), so its p50 and p99 are coarse.",
    ]
    splice(args.benchmarks, section)
    print("\n".join(section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
