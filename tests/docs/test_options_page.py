"""docs/options.md is true: each option listed exists, takes its default, refuses its example."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

import fusco_actor
from fusco_actor._options import OPTION_NAMES, ConnectOptions

PAGE = Path(__file__).resolve().parents[2] / "docs" / "options.md"
URL = "http://127.0.0.1:9"  # never connected to: start() does not connect
_CODE = re.compile(r"`([^`]*)`")
_EXAMPLE = re.compile(r"\(`([^`]*)`\)\s*\Z")


def table(heading: str) -> dict[str, tuple[str, str]]:
    """{name: (default cell, BadOption cell)} of the table right under ``heading``."""
    section = PAGE.read_text(encoding="utf-8").split(heading, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[2], cells[4])
    return rows


OPTIONS = table("# Options of `start`")
CONNECT_OPTIONS = table("## `connect_options`")


def options(name: str, value: Any) -> Any:
    """Return ``{name: value}`` as options unknown to the type checker (a name from the page)."""
    return {name: value}


def literal(cell: str, pattern: re.Pattern[str]) -> Any:
    match = pattern.search(cell)
    assert match, f"no example in {cell!r}"
    return ast.literal_eval(match[1])


def test_the_tables_list_every_option() -> None:
    assert set(OPTIONS) == set(OPTION_NAMES)
    assert (
        set(CONNECT_OPTIONS) == ConnectOptions.__required_keys__ | ConnectOptions.__optional_keys__
    )


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_the_documented_default_is_accepted(name: str) -> None:
    default = literal(OPTIONS[name][0], _CODE)
    fusco_actor.start(URL, **options(name, default)).disconnect()


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_the_documented_bad_value_is_a_bad_option(name: str) -> None:
    bad = literal(OPTIONS[name][1], _EXAMPLE)
    with pytest.raises(fusco_actor.BadOption, match=rf"\A{name}\b"):
        fusco_actor.start(URL, **options(name, bad))


@pytest.mark.parametrize("key", sorted(CONNECT_OPTIONS))
def test_the_documented_bad_connect_option_is_a_bad_option(key: str) -> None:
    bad = literal(CONNECT_OPTIONS[key][1], _EXAMPLE)
    with pytest.raises(fusco_actor.BadOption, match=r"\Aconnect_options\b"):
        fusco_actor.start(URL, connect_options=options(key, bad))
