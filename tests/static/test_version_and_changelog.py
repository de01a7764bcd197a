"""One version everywhere, and a CHANGELOG.md that follows Keep a Changelog 1.1.0."""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import fusco_actor

REPO = Path(__file__).resolve().parents[2]
CHANGELOG = REPO / "CHANGELOG.md"
# PEP 440 release, optionally a pre-release or a .devN (what this project uses).
VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:(?:a|b|rc)\d+)?(?:\.dev\d+)?")
HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?$")
LINK = re.compile(r"^\[(?P<name>[^\]]+)\]: (?P<url>\S+)$")
KINDS = ["Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"]


def release(version: str) -> tuple[int, int, int]:
    match = VERSION.fullmatch(version)
    assert match, f"{version!r} is not a PEP 440 version of the form X.Y.Z[.devN]"
    return int(match[1]), int(match[2]), int(match[3])


def test_version_metadata_and_command_line_agree() -> None:
    installed = metadata.version("fusco_actor")
    assert installed == fusco_actor.__version__, (
        "the installed metadata is stale: reinstall (`make` reinstalls when "
        "fusco_actor/_version.py changes)"
    )
    script = Path(sys.executable).with_name("fusco")
    for command in ([str(script)], [sys.executable, "-m", "fusco_actor"]):
        proc = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=30.0, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"fusco {fusco_actor.__version__}"


def parse_changelog(text: str) -> tuple[list[tuple[str, str | None]], dict[str, str]]:
    """Return the version headings (name, date) in order and the link definitions."""
    headings: list[tuple[str, str | None]] = []
    links: dict[str, str] = {}
    kinds_seen: list[str] = []
    lines = text.splitlines()
    assert lines[0] == "# Changelog"
    for number, line in enumerate(lines, start=1):
        if line.startswith("## "):
            match = HEADING.match(line)
            assert match, f"line {number}: {line!r} is not '## [X.Y.Z] - YYYY-MM-DD'"
            headings.append((match["name"], match["date"]))
            kinds_seen = []
        elif line.startswith("### "):
            kind = line[4:]
            assert kind in KINDS, f"line {number}: {kind!r} is not one of {KINDS}"
            assert headings, f"line {number}: a change kind outside any version"
            assert kind not in kinds_seen, f"line {number}: {kind} twice in one version"
            assert all(KINDS.index(k) < KINDS.index(kind) for k in kinds_seen), (
                f"line {number}: {kind} out of Keep a Changelog's order"
            )
            kinds_seen.append(kind)
        elif line.startswith("["):
            match = LINK.match(line)
            assert match, f"line {number}: {line!r} is not a link definition"
            assert match["name"] not in links, f"line {number}: {match['name']} defined twice"
            links[match["name"]] = match["url"]
        elif line.startswith("- "):
            assert kinds_seen, f"line {number}: an entry outside a '### ' kind"
    return headings, links


def test_changelog_follows_keep_a_changelog() -> None:
    headings, links = parse_changelog(CHANGELOG.read_text())
    assert headings[0] == ("Unreleased", None)
    released = headings[1:]
    assert released, "no released version"
    versions = [release(name) for name, _ in released]
    assert versions == sorted(versions, reverse=True), "versions are not newest first"
    assert len(set(versions)) == len(versions)
    dates = []
    for name, date in released:
        assert date is not None, f"{name} has no date"
        dates.append(datetime.date.fromisoformat(date))
    assert dates == sorted(dates, reverse=True), "dates are not newest first"
    # Every heading has its link, and every link a heading.
    assert set(links) == {name for name, _ in headings}
    base = links["Unreleased"].split("/compare/")[0]
    assert links["Unreleased"] == f"{base}/compare/v{released[0][0]}...HEAD"
    names = [name for name, _ in released]
    for name, older in zip(names, [*names[1:], None], strict=True):
        tag = f"compare/v{older}...v{name}" if older else f"releases/tag/v{name}"
        assert links[name] == f"{base}/{tag}"


def test_the_version_is_ahead_of_every_release() -> None:
    headings, _ = parse_changelog(CHANGELOG.read_text())
    latest = release(headings[1][0])
    current = release(fusco_actor.__version__)
    if ".dev" in fusco_actor.__version__:
        assert current > latest, "a .dev version must lead to a release not yet made"
    else:
        assert current >= latest


@pytest.mark.parametrize(
    "broken",
    [
        "## [0.1.0] 2026-11-24",  # no dash before the date
        "## [0.1.0] - 24/11/2026",
        "### Improved",
        "[0.1.0] https://example.invalid",
    ],
)
def test_the_parser_rejects_what_keep_a_changelog_does_not_allow(broken: str) -> None:
    text = "# Changelog\n\n## [Unreleased]\n\n" + broken + "\n"
    with pytest.raises(AssertionError):
        parse_changelog(text)
