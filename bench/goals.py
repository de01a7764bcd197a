"""Issue 10's table: each cell's fusco_actor rate, its reference, the ratio and the goal.

A :class:`Goal` names the fusco_actor clients of a cell (the best median among
them counts), the scenario and connection count, and the reference: a client
name, or ``None`` for the fastest Python peer in the same cell. A cell that
did not run, or failed, shows ``n/a`` with the reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["GOALS", "Goal", "best", "fastest_peer", "goal_table"]

Key = tuple[str, str, int, str]  # placement, scenario name, connections, client
Sample = tuple[float, float]  # requests/s, client CPU seconds per request
Results = dict[Key, "list[Sample] | str"]
TIMES: Final = "\N{MULTIPLICATION SIGN}"
GE: Final = "\N{GREATER-THAN OR EQUAL TO}"
TRANSFER_FUSCO: Final = ("fusco bench", "fusco bench p16", "fusco blocking")


@dataclass(frozen=True)
class Goal:
    """One row of the table; ``goal`` None = shown for information."""

    cell: str
    fusco: tuple[str, ...]
    scenario: str
    conns: int
    reference: str | None  # a client, or None: the fastest Python peer
    label: str  # how the reference is described
    goal: float | None


def _transfer_goals() -> list[Goal]:
    goals = []
    for scenario in ("64 KiB GET", "chunked 64 KiB GET", "1 MiB GET", "1 MiB POST"):
        for conns in (1, 16):
            cell = f"{scenario}, {conns} conn"
            goals.append(Goal(cell, TRANSFER_FUSCO, scenario, conns, None, "fastest peer", 1.0))
            if scenario.startswith("1 MiB"):
                goals.append(Goal(cell, TRANSFER_FUSCO, scenario, conns, "raw socket", "", 0.9))
    return goals


SMALL: Final = "small GET"
GOALS: Final = (
    Goal("`fusco bench -c 16` (callbacks)", ("fusco bench",), SMALL, 16, "pycurl",
         "CurlMulti, 16 handles", 1.0),
    Goal("the same, `--pipeline 16`", ("fusco bench p16",), SMALL, 16, "pycurl",
         "CurlMulti, 16 handles", 2.0),
    Goal("64 tasks `await pool.arequest`, `Pool(max_clients=16)`, own uvloop",
         ("fusco arequest tasks",), SMALL, 16, "pycurl", "CurlMulti, 16 handles", 0.8),
    Goal("the same, tasks on the scheduler's loop", ("fusco arequest tasks on scheduler",),
         SMALL, 16, "pycurl", "CurlMulti, 16 handles", 0.8),
    Goal("16 threads blocking over `Pool(max_clients=16)`", ("fusco pool threads",), SMALL, 16,
         "pycurl", "CurlMulti, 16 handles", 0.5),
    Goal("16 threads blocking over `Pool(max_clients=16)`", ("fusco pool threads",), SMALL, 16,
         "fusco pool threads [thread]", "today's pool (threaded engine)", 2.5),
    Goal("one client, `pipeline=16`, futures from one thread", ("fusco p16 futures",), SMALL, 1,
         "pycurl", "pycurl, one handle", 7.0),
    Goal("one thread, blocking `fusco_actor.request`", ("fusco blocking",), SMALL, 1, "pycurl",
         "pycurl, one handle", 1.0),
    Goal("today's engine: `fusco bench -c 16`", ("fusco bench [thread]",), SMALL, 16, "pycurl",
         "CurlMulti, 16 handles", None),
    Goal("today's engine: 16 threads over `Pool(max_clients=16)`",
         ("fusco pool threads [thread]",), SMALL, 16, "pycurl", "CurlMulti, 16 handles", None),
    Goal("today's engine: one thread, blocking", ("fusco blocking [thread]",), SMALL, 1, "pycurl",
         "pycurl, one handle", None),
    *_transfer_goals(),
)  # fmt: skip


def _median(results: Results, key: Key) -> float | str | None:
    """Return the median req/s of a cell, its error, or None when it did not run."""
    samples = results.get(key)
    if samples is None or isinstance(samples, str):
        return samples
    return statistics.median(rate for rate, _ in samples)


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def best(
    results: Results, placement: str, scenario: str, conns: int, clients: Sequence[str]
) -> tuple[float, str] | str:
    """Return the best median among ``clients`` and its name, or why there is none."""
    found, errors = [], []
    for client in clients:
        median = _median(results, (placement, scenario, conns, client))
        if isinstance(median, float):
            found.append((median, client))
        elif isinstance(median, str):
            errors.append(f"{client}: {median}")
    if found:
        return max(found)
    return "; ".join(errors) or "not run"


def fastest_peer(
    results: Results, placement: str, scenario: str, conns: int, clients: Sequence[str]
) -> tuple[float, str] | str:
    """Return the fastest Python peer's median and name in a cell (no fusco, no raw socket)."""
    peers = [c for c in clients if not c.startswith(("fusco", "raw socket"))]
    return best(results, placement, scenario, conns, peers)


def _short(reason: str) -> str:
    reason = reason.replace("|", "/").replace("\n", " ")
    return reason if len(reason) <= 120 else reason[:117] + "..."


def goal_table(
    results: Results, placement: str, clients: Sequence[str], skipped: dict[str, str]
) -> tuple[list[str], list[tuple[Goal, float | None]]]:
    """Return the table's Markdown lines for one placement, and each goal's ratio."""
    lines = [
        "| cell | fusco_actor req/s (loop engine) | reference | reference req/s | ratio | goal "
        "| met |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    out: list[tuple[Goal, float | None]] = []
    for goal in GOALS:
        fusco = best(results, placement, goal.scenario, goal.conns, goal.fusco)
        if goal.reference is None:
            reference = fastest_peer(results, placement, goal.scenario, goal.conns, clients)
        else:
            ref_skipped = skipped.get(goal.reference)
            reference = ref_skipped or best(
                results, placement, goal.scenario, goal.conns, (goal.reference,)
            )
        many = len(goal.fusco) > 1
        if isinstance(fusco, str):
            fusco_cell = f"n/a: {_short(fusco)}"
        else:
            fusco_cell = _num(fusco[0]) + (f" ({fusco[1]})" if many else "")
        if isinstance(reference, str):
            ref_name, ref_cell = goal.label or (goal.reference or ""), "n/a"
            if not isinstance(fusco, str):
                fusco_cell += f"; reference n/a: {_short(reference)}"
        else:
            ref_name = f"{goal.label} ({reference[1]})" if goal.reference is None else goal.label
            ref_name = ref_name or reference[1]
            ref_cell = _num(reference[0])
        ratio = None
        if not isinstance(fusco, str) and not isinstance(reference, str):
            ratio = fusco[0] / reference[0]
        target = "—" if goal.goal is None else f"{GE} {goal.goal:g}{TIMES}"
        if ratio is None or goal.goal is None:
            met = "—" if goal.goal is None else "n/a"
        else:
            met = "yes" if ratio >= goal.goal else "**no**"
        ratio_cell = "n/a" if ratio is None else f"{ratio:.2f}{TIMES}"
        row = [goal.cell, fusco_cell, ref_name, ref_cell, ratio_cell, target, met]
        lines.append("| " + " | ".join(row) + " |")
        out.append((goal, ratio))
    return lines, out
