"""Sphinx configuration of the fusco_actor documentation (``make docs``).

The pages are Markdown (myst-parser) beside the existing ``docs/*.md``, so
that those stay readable on GitHub; the API reference is autodoc over the
docstrings (Google style, read by napoleon); the command line is read from
its argparse parser at build time (sphinx-argparse), so it cannot drift.
``make docs`` builds with ``-W --keep-going -n``: a warning, an unresolved
reference included, fails the build.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "docs"))  # this file, as module `conf`, for the cli page

import fusco_actor  # noqa: E402
import fusco_actor.cli  # noqa: E402

project = "fusco_actor"
author = "the fusco_actor authors"
copyright = "the fusco_actor authors"  # noqa: A001
release = version = fusco_actor.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

highlight_language = "text"  # a block with no language is output or a synopsis

# -- Markdown ---------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4  # README links such as [Send-retry](#send-retry-fusco-semantics)

# -- API reference ------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_class_signature = "separated"
autodoc_default_options = {"exclude-members": "__init__, __new__"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# -- References ---------------------------------------------------------------------------
# Nitpicky: every cross-reference must resolve. There is no network at build
# time (so no intersphinx): names from the standard library, pykka and
# typing stay plain text, and so do the private types that public signatures
# name (fusco_actor._future.ReplyFuture and the like, documented where used).
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(collections\.abc|types|typing|ssl|socket|asyncio)\..*"),
    (r"py:.*", r"pykka(\..*)?"),
    (r"py:.*", r"fusco_actor\._.*"),  # private modules, named in some docstrings
    # Private types that public signatures name; each is documented on the API page.
    (r"py:class", r"ReplyFuture"),
    (r"py:exc", r"SchedulerBlockedError"),
]

# -- HTML ---------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"fusco_actor {release}"
html_static_path: list[str] = []

# The pages include README.md's sections under titles of their own, so a
# section may start at ### under a page's #.
suppress_warnings = ["myst.header"]


# -- Command line page --------------------------------------------------------------------


def cli_parser() -> argparse.ArgumentParser:
    """Return ``fusco``'s parser with each subcommand's epilog as a literal block.

    The epilogs are laid out for a terminal (indented tables of exit codes and
    examples), which reStructuredText would read as misplaced block quotes.
    """
    parser = fusco_actor.cli._build_parser()
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for sub in getattr(action, "choices", {}).values():
            if sub.epilog:
                sub.epilog = "::\n\n" + textwrap.indent(sub.epilog, "    ")
    return parser
