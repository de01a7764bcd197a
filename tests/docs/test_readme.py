"""README.md runs as written: every fenced code block is run, or says why not.

How (see :mod:`tests.docs.readme_blocks` for the rules a block follows):

- The ``python`` blocks of each ``##`` section run in order, in one fresh
  interpreter per section (``readme_runner.py``), sharing their globals the
  way a reader pastes them into one session. No block may leave an actor
  running.
- The ``sh``/``console`` blocks' ``fusco``, ``python``, ``uv`` and
  ``.venv/bin/...`` commands run from the repository's root, each bounded in
  time, and must exit 0; in a ``console`` block, the lines after a command
  are what it must print.
- The README's snippets talk to the embedded server at
  ``http://127.0.0.1:8080`` (``python -m fusco_actor.server``, as the README
  tells the reader), to an HTTPS origin at ``localhost:8443`` and to a proxy at
  ``127.0.0.1:3128``. This test starts the same servers on free loopback
  ports (so that it never collides with another run) and replaces those
  three addresses in the code by the real ones.
- Any other block needs ``<!-- not-run: reason -->`` right before it; an
  unmarked block the test cannot run fails :func:`test_every_block_runs_or_says_why`.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusco_actor.server import EmbeddedServer
from tests.docs.readme_blocks import (
    PYTHON_LANGUAGES,
    VENV_PREFIX,
    Block,
    code_blocks,
)
from tests.docs.readme_services import ReadmeServices, readme_services

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RUNNER = Path(__file__).with_name("readme_runner.py")
SECTION_TIMEOUT = 45.0  # seconds for the Python blocks of one section
COMMAND_TIMEOUT = 45.0  # seconds for one command
BLOCKS = code_blocks(README)
SECTIONS = sorted({b.section for b in BLOCKS if b.language in PYTHON_LANGUAGES and not b.not_run})
COMMAND_BLOCKS = [b for b in BLOCKS if b.commands and b.not_run is None and not b.problem()]


@pytest.fixture(scope="module")
def services(
    embedded_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReadmeServices]:
    address = f"{embedded_server.host}:{embedded_server.port}"
    with readme_services(address, tmp_path_factory.mktemp("readme")) as running:
        yield running


def test_every_block_runs_or_says_why() -> None:
    problems = [p for p in (block.problem() for block in BLOCKS) if p]
    assert not problems, "\n".join(problems)
    assert any(b.language in PYTHON_LANGUAGES for b in BLOCKS), "no Python block found"


def _run_python(blocks: list[Block], services: ReadmeServices) -> None:
    payload = [{"line": b.line + 1, "code": services.apply(b.code)} for b in blocks]
    proc = subprocess.run(
        [sys.executable, str(RUNNER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=SECTION_TIMEOUT,
        cwd=services.workdir,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.timeout(SECTION_TIMEOUT + 15)
def test_python_blocks_of_the_section_run(section: str, services: ReadmeServices) -> None:
    blocks = [
        b
        for b in BLOCKS
        if b.section == section and b.language in PYTHON_LANGUAGES and b.not_run is None
    ]
    _run_python(blocks, services)


def _argv(words: list[str]) -> list[str]:
    """The command as the test runs it: the virtual environment's programs, absolute.

    Paths into the clone (``examples/get.py``) become absolute too, since the
    commands run in a scratch directory, where files they write (``-o``) land.
    """
    bin_dir = Path(sys.executable).parent
    program = words[0]
    if program.startswith(VENV_PREFIX):
        program = program.removeprefix(VENV_PREFIX)
    path = sys.executable if program == "python" else str(bin_dir / program)
    args = [str(ROOT / word) if (ROOT / word).is_file() else word for word in words[1:]]
    return [path, *args]


@pytest.mark.parametrize("block", COMMAND_BLOCKS, ids=lambda b: b.where)
@pytest.mark.timeout(COMMAND_TIMEOUT * 2 + 15)
def test_shell_block_runs(block: Block, services: ReadmeServices) -> None:
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # uv: this interpreter, never a download
    env.setdefault("UV_PYTHON", sys.executable)
    for words, expected in zip(block.commands, block.outputs, strict=True):
        argv = _argv([services.apply(word) for word in words])
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            cwd=services.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert proc.returncode == 0, (
            f"{block.where}: `{shlex.join(words)}` exited {proc.returncode}\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
        if expected is not None:
            printed = "\n".join(line.rstrip() for line in proc.stdout.splitlines()).rstrip()
            assert printed == services.apply(expected), f"{block.where}: `{shlex.join(words)}`"
