"""The benchmark's report: machine description, issue 10's table, the tables and the chart.

``Results`` maps ``(placement, scenario, conns, client)`` to the requests per
second of each repetition; failed cells map to an error string instead. A
cell shows the median and, in brackets, the min-max over the repetitions.
Issue 10's table (:mod:`goals`) compares medians of the same run; the chart
shows, per scenario and connection count, the best loop-engine fusco_actor
median over the fastest *peer*'s (the raw-socket lines are baselines, not peers).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from goals import TRANSFER_FUSCO, Key, Results, best, fastest_peer, goal_table
from harness import Scenario

__all__ = ["Results", "machine", "markdown", "ratio_chart"]

Sample = tuple[float, float]  # requests/s, client CPU seconds per request
DASH: Final = "\N{EN DASH}"
TIMES: Final = "\N{MULTIPLICATION SIGN}"

LIBRARIES: Final = (
    "fusco_actor",
    "pykka",
    "urllib3",
    "httpx",
    "httpcore",
    "aiohttp",
    "uvloop",
    "pycurl",
    "pyreqwest",
    "wreq",
    "matplotlib",
)


def is_fusco(client: str) -> bool:
    """Return whether ``client`` is a way of driving fusco_actor."""
    return client.startswith("fusco")


def _cpu_model() -> tuple[str, int]:
    model, count = platform.processor() or "unknown", 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "processor":
                count += 1
    return model, count or os.cpu_count() or 0


def _version(name: str) -> str | None:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    if name == "pycurl":
        with contextlib.suppress(ImportError):
            import pycurl  # noqa: PLC0415

            libcurl = pycurl.version.split()[1] if " " in pycurl.version else pycurl.version
            version += f" ({libcurl})"
    return version


def machine(nginx_version: str, settings: dict[str, Any]) -> list[str]:
    """Return the machine and run description as Markdown list items."""
    model, cpus = _cpu_model()
    libraries = ", ".join(f"{n} {v}" for n in LIBRARIES if (v := _version(n)) is not None)
    load = settings.get("load", ())
    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {model}, {cpus} vCPUs; Linux {platform.release()} ({platform.machine()})",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- Libraries: {libraries}",
        f"- Server: {nginx_version}, 1 worker process, keep-alive unlimited, access log off, "
        "on 127.0.0.1",
        f"- Each cell: {settings['warmup']} s warm-up, then {settings['duration']} s measured; "
        f"{settings['repeat']} repetition(s), clients interleaved round-robin within each "
        "repetition (order rotated per repetition)",
        "- Load average (1 min) before / after the run: "
        + " / ".join(f"{value:.2f}" for value in load),
    ]


def _stats(samples: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(samples: list[Sample] | str | None, scale: float = 1.0) -> str:
    if samples is None:
        return "—"
    if isinstance(samples, str):
        return "error"
    median, low, high = (value * scale for value in _stats([rate for rate, _ in samples]))
    if len(samples) == 1:
        return _num(median)
    return f"{_num(median)} ({_num(low)}{DASH}{_num(high)})"


def _median(results: Results, key: Key, index: int = 0) -> float | None:
    samples = results.get(key)
    if not isinstance(samples, list):
        return None
    return statistics.median(sample[index] for sample in samples)


def summary(
    results: Results, placement: str, scenario: str, conns: int, clients: Sequence[str]
) -> float | None:
    """Return the best loop-engine fusco_actor median over the fastest peer's, if both ran."""
    fusco = [c for c in clients if is_fusco(c) and not c.endswith("[thread]")]
    mine = best(results, placement, scenario, conns, fusco)
    peer = fastest_peer(results, placement, scenario, conns, clients)
    if isinstance(mine, str) or isinstance(peer, str):
        return None
    return mine[0] / peer[0]


def markdown(
    results: Results,
    placements: dict[str, str],
    scenarios: Sequence[Scenario],
    conns: Sequence[int],
    clients: Sequence[str],
    header: list[str],
    chart: str | None,
    skipped: dict[str, str] | None = None,
) -> str:
    """Return the whole report as Markdown (also fine to print on a terminal)."""
    lines = [*header, "", "## Issue 10's table", ""]
    lines += [
        "Loop engine unless marked *today's engine*. For the transfer rows fusco_actor's "
        f"figure is the best of {', '.join(f'`{c}`' for c in TRANSFER_FUSCO)} (named in "
        "brackets) and the reference is the fastest Python peer in the same cell (named) or "
        "the raw socket. pycurl with 16 connections is one `CurlMulti` with 16 handles; with "
        "1, one reused `Curl` handle.",
    ]
    for placement, title in placements.items():
        table, _ = goal_table(results, placement, clients, skipped or {})
        lines += ["", f"Placement {placement}: {title}", "", *table]
    if skipped:
        lines += ["", "Not measured:", ""]
        lines += [f"- {client}: {reason}" for client, reason in skipped.items()]
    if chart:
        lines += ["", f"![best fusco_actor (loop engine) / fastest peer]({chart})"]
    errors: list[str] = []
    for placement, title in placements.items():
        lines += ["", f"## Placement {placement}: {title}"]
        for scenario in scenarios:
            mb = scenario.payload / 1e6
            lines += ["", f"### {scenario.name}", ""]
            heads = [f"{n} conn {unit}" for n in conns for unit in ("req/s", "MB/s")]
            lines += ["| client | " + " | ".join(heads) + " |"]
            lines += ["|---|" + "---:|" * len(heads)]
            for client in clients:
                keys = [(placement, scenario.name, n, client) for n in conns]
                if all(key not in results for key in keys):
                    continue
                row = [client]
                for key in keys:
                    row += [_cell(results.get(key)), _cell(results.get(key), mb)]
                    if isinstance(results.get(key), str):
                        errors.append(f"- {' / '.join(map(str, key))}: {results[key]}")
                lines.append("| " + " | ".join(row) + " |")
    lines += _cpu_tables(results, placements, scenarios, conns, clients)
    if errors:
        lines += ["", "## Errors", "", *errors]
    return "\n".join(lines) + "\n"


def _cpu_tables(
    results: Results,
    placements: dict[str, str],
    scenarios: Sequence[Scenario],
    conns: Sequence[int],
    clients: Sequence[str],
) -> list[str]:
    """Client CPU time per request: steadier than req/s when the machine is shared."""
    shapes = [(s.name, n) for s in scenarios for n in conns]
    lines = ["", "## Client CPU per request (µs, median; all threads of the client process)"]
    for placement, title in placements.items():
        lines += ["", f"Placement {placement}: {title}", ""]
        lines += ["| client | " + " | ".join(f"{name}, {n} conn" for name, n in shapes) + " |"]
        lines += ["|---|" + "---:|" * len(shapes)]
        for client in clients:
            cells = [_median(results, (placement, name, n, client), 1) for name, n in shapes]
            if any(cell is not None for cell in cells):
                row = [client] + ["—" if c is None else _num(c * 1e6) for c in cells]
                lines.append("| " + " | ".join(row) + " |")
    return lines


def _label(scenario: str, conns: int) -> str:
    short = scenario.replace(" GET", "").replace("chunked ", "chunked\n")
    return f"{short}\n{conns} conn"


def ratio_chart(
    results: Results,
    placements: dict[str, str],
    scenarios: Sequence[Scenario],
    conns: Sequence[int],
    clients: Sequence[str],
    path: Path,
) -> None:
    """Draw best loop-engine fusco_actor / fastest peer as bars, one panel per placement."""
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter  # noqa: PLC0415

    shapes = [(s.name, n) for s in scenarios for n in conns]
    fig, axes = plt.subplots(len(placements), 1, figsize=(11, 3.6 * len(placements)), squeeze=False)
    for ax, (placement, title) in zip(axes[:, 0], placements.items(), strict=True):
        values = [summary(results, placement, name, n, clients) or 0.0 for name, n in shapes]
        bars = ax.bar(range(len(shapes)), values, 0.6, label="best fusco_actor, loop engine")
        ax.bar_label(bars, [f"{v:.2f}" if v else "n/a" for v in values], fontsize=7)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel(f"{TIMES} fastest peer (req/s)")
        ax.set_title(f"Placement {placement}: {title}")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([_label(name, n) for name, n in shapes])
        ax.tick_params(axis="x", labelsize=7)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.tick_params(axis="y", which="minor", labelsize=6)
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
