"""docs/server.md tells the truth: each example of its routes table, sent to the embedded server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import fusco_actor
from fusco_actor.server import EmbeddedServer

PAGE = Path(__file__).resolve().parents[2] / "docs" / "server.md"
_EXAMPLE = re.compile(
    r"`(?P<method>[A-Z]+) (?P<path>\S+)`"
    r"(?: with body `(?P<body>[^`]*)`)?(?: with header `(?P<name>[^:`]+): (?P<value>[^`]*)`)?"
)


def route_rows() -> list[tuple[str, str, str, str]]:
    """(route, example, status, body) of each row of the table under "## Routes"."""
    section = PAGE.read_text(encoding="utf-8").split("## Routes", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("route", "---"):
            rows.append((cells[0], cells[2], cells[3], cells[4]))
    return rows


ROWS = route_rows()


def test_the_table_has_every_route() -> None:
    routes = " ".join(row[0] for row in ROWS)
    for route in ("/bytes/N", "/chunked/N", "/echo", "/headers", "/status/N", "/delay/S",
                  "/close", "/set-cookie", "/cookies"):  # fmt: skip
        assert route in routes


@pytest.mark.parametrize(("route", "example", "status", "body"), ROWS, ids=[r[0] for r in ROWS])
def test_the_example_gets_the_documented_answer(
    route: str, example: str, status: str, body: str, embedded_server: EmbeddedServer
) -> None:
    match = _EXAMPLE.fullmatch(example)
    assert match, f"{route}: example {example!r} is not `METHOD PATH` [with body/header `...`]"
    headers = [(match["name"], match["value"])] if match["name"] else []
    with fusco_actor.start(embedded_server.url) as client:
        response = client.request(
            match["path"], match["method"], headers, (match["body"] or "").encode(), timeout=5.0
        ).get()
    assert response.status == int(status)
    if body == "(empty)":
        assert response.body == b""
    else:
        literal = re.fullmatch(r"`(.*)`", body)
        assert literal, f"{route}: body {body!r} is not a code span or (empty)"
        expected = literal[1].replace("\\n", "\n").replace("PORT", str(embedded_server.port))
        assert response.body == expected.encode()
