"""Find the fenced code blocks of a Markdown file and tell how each one is checked.

A block is *run* when its language says how:

- ``python`` (or ``py``): Python, executed with the other Python blocks of
  its ``##`` section, in order, in one fresh interpreter;
- ``sh``, ``shell``, ``bash``: every line is a command; ``console``: every
  line that starts with ``$`` is a command, and the lines after it, when
  there are any, are its expected output (compared with what it prints on
  stdout, trailing white space aside). A command is run when it starts with
  ``fusco``, ``python``, ``uv`` or ``.venv/bin/...`` (those of the virtual
  environment that runs the tests).

Any other block — output, a usage synopsis, a command that installs or runs
for ever — must say why it is not run, in an HTML comment right before it
(invisible on GitHub and in the documentation site)::

    <!-- not-run: sample output -->

The Markdown is parsed with markdown-it-py, the parser behind myst-parser,
so a block is found exactly where the documentation build finds it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

PYTHON_LANGUAGES = frozenset({"python", "py"})
SHELL_LANGUAGES = frozenset({"sh", "shell", "bash"})
CONSOLE_LANGUAGES = frozenset({"console"})
RUNNABLE_PROGRAMS = frozenset({"fusco", "python", "uv"})
VENV_PREFIX = ".venv/bin/"
_NOT_RUN = re.compile(r"\A<!--\s*not-run:(.*?)-->\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    line: int  # 0-based line of the opening fence
    language: str
    code: str
    section: str  # the title of the `##` section it is in ("" before the first)
    not_run: str | None  # the reason given by a `<!-- not-run: ... -->` comment
    commands: list[list[str]] = field(default_factory=list)  # of a shell block
    outputs: list[str | None] = field(default_factory=list)  # expected stdout, per command

    @property
    def where(self) -> str:
        """``README.md:N`` of the opening fence (1-based)."""
        return f"README.md:{self.line + 1}"

    def problem(self) -> str | None:
        """Why this block can neither run nor be skipped, or None when it is fine."""
        if self.not_run is not None:
            return None if self.not_run else f"{self.where}: not-run needs a reason"
        if self.language in PYTHON_LANGUAGES:
            return None
        if self.language in SHELL_LANGUAGES | CONSOLE_LANGUAGES:
            for command in self.commands:
                if not runnable(command):
                    return (
                        f"{self.where}: cannot run `{shlex.join(command)}`; "
                        "put <!-- not-run: reason --> before the block"
                    )
            return None if self.commands else f"{self.where}: a shell block with no command"
        return (
            f"{self.where}: a {self.language or 'plain'} block is not run; "
            "put <!-- not-run: reason --> before it"
        )


def runnable(command: list[str]) -> bool:
    """Whether the test knows how to run ``command``."""
    program = command[0]
    return program in RUNNABLE_PROGRAMS or program.startswith(VENV_PREFIX)


def shell_commands(language: str, code: str) -> tuple[list[list[str]], list[str | None]]:
    """Split a shell or console block into commands (words, comments dropped) and outputs.

    The output of a command is None in a shell block, and in a console block
    when no line follows the command.
    """
    lines: list[str] = []
    outputs: list[list[str]] = []
    pending = ""
    for raw in code.splitlines():
        if language in CONSOLE_LANGUAGES and not pending:
            if not raw.startswith("$"):
                if outputs:
                    outputs[-1].append(raw)
                continue
            raw = raw.removeprefix("$")
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        words = shlex.split(pending + raw, comments=True)
        pending = ""
        if words:
            lines.append(shlex.join(words))
            outputs.append([])
    commands = [shlex.split(line) for line in lines]
    expected = [
        "\n".join(out).rstrip() if language in CONSOLE_LANGUAGES and out else None
        for out in outputs
    ]
    return commands, expected


def code_blocks(path: Path) -> list[Block]:
    """Every fenced code block of the Markdown file at ``path``, in order."""
    tokens = MarkdownIt("commonmark").parse(path.read_text(encoding="utf-8"))
    blocks: list[Block] = []
    section = ""
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            section = tokens[index + 1].content
        if token.type not in ("fence", "code_block"):
            continue
        assert token.map is not None
        language = token.info.split()[0].lower() if token.info.strip() else ""
        previous = tokens[index - 1] if index else None
        not_run = None
        if previous is not None and previous.type == "html_block":
            match = _NOT_RUN.match(previous.content.strip())
            if match:
                not_run = match.group(1).strip()
        commands, outputs = (
            shell_commands(language, token.content)
            if language in SHELL_LANGUAGES | CONSOLE_LANGUAGES
            else ([], [])
        )
        blocks.append(
            Block(token.map[0], language, token.content, section, not_run, commands, outputs)
        )
    return blocks
