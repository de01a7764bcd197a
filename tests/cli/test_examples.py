"""Every script in examples/ runs on its own, with no arguments, and exits 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT = 30.0  # seconds for one example

# What the examples of this repository must print; any other example found in
# the folder only has to exit 0 and print something.
EXPECTED: dict[str, list[str]] = {
    "get.py": [r"embedded server at http://127\.0\.0\.1:\d+", r"HTTP/1\.1 200 OK", "Hello, fusco!"],
    "many_callers.py": [r"(\d+)/\1 requests succeeded", r"\d+ req/s"],
    # Runs itself with `locust --headless` for 2 s against the embedded server.
    "locustfile.py": [
        r"embedded server at http://127\.0\.0\.1:\d+",
        r"[1-9]\d* requests, 0 failures",
    ],
}


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_example_runs_and_exits_zero(script: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        timeout=RUN_TIMEOUT,
        check=False,
        cwd=EXAMPLES.parent,
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0, err
    assert out.strip(), "the example printed nothing"
    if script.name in EXPECTED:
        assert err == ""
        for pattern in EXPECTED[script.name]:
            assert re.search(pattern, out), f"{pattern!r} not in:\n{out}"


def test_examples_have_pep_723_headers() -> None:
    """``uv run examples/x.py`` takes fusco_actor from this clone: it is not on PyPI.

    README.md's test runs ``uv run examples/get.py`` as the README states it.
    """
    for script in EXAMPLES.glob("*.py"):
        text = script.read_text()
        assert text.startswith("# /// script\n"), script.name
        assert re.search(r'# dependencies = \["fusco_actor(\[\w+\])?"', text), script.name
        header = text.split("# ///\n", 1)[0]
        assert '# [tool.uv.sources]\n# fusco_actor = { path = "..", editable = true }\n' in (
            header
        ), script.name
