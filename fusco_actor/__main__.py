"""``python -m fusco_actor``: the ``fusco`` command line (see :mod:`fusco_actor.cli`)."""

from __future__ import annotations

import sys

from fusco_actor.cli import main

if __name__ == "__main__":
    sys.exit(main())
