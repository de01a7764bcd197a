"""The documentation site builds without a warning, and documents every public name.

It is the build of ``make docs`` (``sphinx-build -W --keep-going -n -E``)
into a temporary directory. The tools come with the ``docs`` extra, which
``make test`` installs; without them this test skips, except under CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import fusco_actor

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 120.0  # seconds; a clean build takes about 5 s on 2 vCPUs

if not os.environ.get("CI"):
    pytest.importorskip("sphinx", reason="the docs extra is not installed (make docs installs it)")


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-E", "-q",
         "-b", "html", "-d", str(out / "doctrees"), str(ROOT / "docs"), str(out / "html")],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"the documentation build failed:\n{proc.stderr}"
    return out / "html"


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_every_public_name_has_an_entry(html: Path) -> None:
    api = (html / "api.html").read_text(encoding="utf-8")
    public = [name for name in fusco_actor.__all__ if not name.startswith("__")]
    members = [
        "Client.request", "Client.arequest", "Client.stream", "Client.connect",
        "Client.disconnect", "Pool.start", "Pool.request", "Pool.arequest", "Pool.get_client",
        "Pool.free_client", "Pool.client", "Pool.stop", "Supervisor.start",
        "Supervisor.start_client", "Supervisor.children", "Supervisor.restarts",
        "Supervisor.stop", "StreamingResponse.iter_bytes", "Headers.get_all",
    ]  # fmt: skip
    missing = [name for name in public + members if f'id="fusco_actor.{name}"' not in api]
    assert not missing, f"docs/api.rst does not document {missing}"
    for module_name in ("messages.Request", "testing.inject_crash", "server.EmbeddedServer"):
        assert f'id="fusco_actor.{module_name}"' in api


@pytest.mark.slow
@pytest.mark.timeout(BUILD_TIMEOUT + 30)
def test_the_pages_are_there(html: Path) -> None:
    pages = {
        "index.html": "fusco_actor",
        "quickstart.html": "It is not on PyPI",
        "guide.html": "Send-retry",
        "options.html": "max_body_size",
        "server.html": "/set-cookie",
        "cli.html": "--connections",  # from the argparse parser itself
        "lifecycle.html": "Connection and actor lifecycle",
        "engine.html": "one event loop",
        "interop.html": "Interoperability",
        "performance.html": "Performance notes",
        "benchmarks.html": "Benchmarks",
    }
    for page, text in pages.items():
        assert text in (html / page).read_text(encoding="utf-8"), page
