"""Type checkers catch misuse of the public API, from outside the repository.

Each snippet is written to a temporary directory outside the repository and
checked with the type checkers of this venv (mypy, and pyright when it is
installed) exactly as a user's project would be: through the installed
package (an editable install must be visible to them: README "Typing").
A line marked ``# E: <mypy error code>`` must get that error (pyright: some
error on that line); no other line may get one.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK_TIMEOUT = 120.0  # seconds for one checker run (a cold mypy cache included)
MARK = re.compile(r"#\s*E:\s*([a-z-]+)\s*$")

HEADER = """\
import ssl
import fusco_actor
from fusco_actor import Client, Pool, Response, Supervisor

URL = "http://127.0.0.1:8080"
client = fusco_actor.start(URL)
pool = Pool.start(URL, max_clients=4)
sup = Supervisor.start()
"""

# Mistakes users make; every one is also a BadOption/BadArgument at run time.
MISTAKES = (
    HEADER
    + """\
fusco_actor.start(URL, conect_timeout=2.0)  # E: call-arg
fusco_actor.start(URL, connect_timeout="2")  # E: arg-type
fusco_actor.start(URL, use_cookies="yes")  # E: arg-type
fusco_actor.start(URL, connect_options={"tcp_nodelay": "no"})  # E: typeddict-item
fusco_actor.start(URL, connect_options={"source_adress": ("::1", 0)})  # E: typeddict-unknown-key
fusco_actor.start(URL, on_connect="log")  # E: arg-type
fusco_actor.start(8080)  # E: arg-type
fusco_actor.start_link(URL, sup, send_retry="2")  # E: arg-type
Pool.start(URL, max_clients=2, pipline=4)  # E: call-arg
Pool.start(URL, max_clients="2")  # E: arg-type
sup.start_client(URL, max_head_size=1.5)  # E: arg-type
fusco_actor.request(client, "/", "GET", [], b"")  # E: call-overload
fusco_actor.request(client, "/", "GET", [], b"", "5")  # E: call-overload
fusco_actor.request(client, "/", "GET", [], b"", 1, 5.0, 9)  # E: call-overload
fusco_actor.request(client, "/", "GET", [], b"", timeout=5.0)  # E: call-overload
client.request("/", "GET", timeout="5")  # E: arg-type
client.give_up([], "no")  # E: attr-defined
client.request_blocking("/")  # E: attr-defined
client.is_stopped  # E: attr-defined
pool.supervisor  # E: attr-defined
pool.size  # E: attr-defined
sup.child_crashed  # E: attr-defined
"""
)

# What the API documents: no error.
CORRECT = (
    HEADER
    + """\
def log(info: fusco_actor.ConnectInfo) -> None:
    print(info.ok, info.connect_time)


options: fusco_actor.ClientOptions = {"connect_timeout": 2.0, "pipeline": 4}
fusco_actor.start(URL, **options)
fusco_actor.start(("127.0.0.1", 8080, False), connect_timeout=2, send_retry=0)
fusco_actor.start(
    "https://[::1]:8443",
    ssl_context=ssl.create_default_context(),
    connect_options={"family": 10, "tcp_nodelay": False, "sockopts": [(6, 1, 1)]},
    proxy="http://user:pass@127.0.0.1:3128",
    on_connect=log,
    max_head_size=16384,
    max_body_size=None,
    use_cookies=True,
)
fusco_actor.start_link(URL, sup, send_retry=2)
sup.start_client(URL, pipeline=8)
Pool.start(URL, 16, connect_timeout=1.0, use_cookies=True)
first: Response = fusco_actor.request(client, "/", "GET", [], b"", 5.0)
second: Response = fusco_actor.request(client, b"/", b"POST", {"a": "b"}, b"x", 2, None)
future = client.request("/", "GET", headers=[("Accept", "*/*")], timeout=5.0)
third: Response = future.get()
jar = pool.cookies
if jar is not None:
    jar.set("session", "abc", path="/", max_age=3600.0)
    names: list[str] = [cookie.name for cookie in jar]
    value: str | None = jar.get("session")
    jar.clear()
with client, pool.client(timeout=1.0) as lent:
    lent.stream("/big", "GET", timeout=30.0)
    ref = lent.actor_ref
fusco_actor.disconnect(client, timeout=1.0)
pool.stop(timeout=10.0)
sup.stop()
"""
)


def expected_marks(source: str) -> dict[int, str]:
    """Return {line number: mypy error code} of the marked lines (1-based)."""
    return {
        number: match.group(1)
        for number, line in enumerate(source.splitlines(), start=1)
        if (match := MARK.search(line))
    }


@pytest.fixture(scope="module")
def snippets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the snippets to a directory outside the repository."""
    folder = tmp_path_factory.mktemp("user_project")
    assert REPO not in folder.parents
    (folder / "mistakes.py").write_text(MISTAKES)
    (folder / "correct.py").write_text(CORRECT)
    return folder


def run_checker(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ARGS`` with this venv's interpreter in ``folder``; return its outcome."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
    )


def run_mypy(folder: Path, name: str) -> list[tuple[int, str]]:
    """Run this venv's mypy (strict) on ``name`` in ``folder``; return (line, code) per error."""
    proc = run_checker(
        folder,
        "mypy",
        "--strict",
        "--show-error-codes",
        "--no-error-summary",
        "--cache-dir",
        str(folder / ".mypy_cache"),
        name,
    )
    assert "Cannot find implementation or library stub" not in proc.stdout, (
        "mypy cannot see the installed fusco_actor: reinstall with `make` or "
        "`pip install -e .` (README 'Typing')\n" + proc.stdout
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    found = re.findall(rf"^{re.escape(name)}:(\d+): error: .*\[([a-z-]+)\]$", proc.stdout, re.M)
    return [(int(line), code) for line, code in found]


def test_mypy_reports_each_mistake_with_its_code_and_nothing_else(snippets: Path) -> None:
    errors = run_mypy(snippets, "mistakes.py")
    assert sorted(set(errors)) == sorted(expected_marks(MISTAKES).items())


def test_mypy_accepts_the_documented_uses(snippets: Path) -> None:
    assert run_mypy(snippets, "correct.py") == []


def pyright_error_lines(folder: Path, name: str) -> set[int]:
    """Run pyright on ``name`` with this venv's interpreter; return the lines with errors."""
    proc = run_checker(folder, "pyright", "--outputjson", "--pythonpath", sys.executable, name)
    report = json.loads(proc.stdout)
    diagnostics = report["generalDiagnostics"]
    missing = [d for d in diagnostics if d.get("rule") == "reportMissingImports"]
    assert not missing, "pyright cannot see the installed fusco_actor (README 'Typing')"
    return {d["range"]["start"]["line"] + 1 for d in diagnostics if d["severity"] == "error"}


needs_pyright = pytest.mark.skipif(
    importlib.util.find_spec("pyright") is None,
    reason="pyright is not installed (the lint extra installs it)",
)


@needs_pyright
def test_pyright_reports_each_mistake_and_nothing_else(snippets: Path) -> None:
    assert pyright_error_lines(snippets, "mistakes.py") == set(expected_marks(MISTAKES))


@needs_pyright
def test_pyright_accepts_the_documented_uses(snippets: Path) -> None:
    assert pyright_error_lines(snippets, "correct.py") == set()
