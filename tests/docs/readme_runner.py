"""Run README snippets in order in one namespace: ``python readme_runner.py < blocks.json``.

The test (``test_readme.py``) starts this script once per README section, in
a fresh interpreter, with a JSON list of ``{"line": N, "code": "..."}`` on
stdin. Each block is compiled under the file name ``README.md`` with its
first line at README line N + 1, so that a traceback points into the README.
After each block no actor may be left running: a snippet that starts a
client, pool or supervisor stops it too (``disconnect``, ``stop`` or a
``with`` block), as a good example does.

Exit status: 0 when every block ran; 1 after the first block that raised or
left actors running, with the traceback or the leak on stderr.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

import pykka

STOP_TIMEOUT = 10.0  # seconds to stop actors a failed snippet left behind


def run(blocks: list[dict[str, Any]]) -> int:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for block in blocks:
        line = int(block["line"])
        code = compile("\n" * line + str(block["code"]), "README.md", "exec")
        print(f"--- README.md:{line + 1}", flush=True)
        try:
            exec(code, namespace)
        except BaseException:
            traceback.print_exc()
            print(f"README.md:{line + 1}: the snippet raised", file=sys.stderr)
            return 1
        left = pykka.ActorRegistry.get_all()
        if left:
            names = sorted({ref.actor_class.__name__ for ref in left})
            print(
                f"README.md:{line + 1}: the snippet left {len(left)} actor(s) running "
                f"({', '.join(names)}): disconnect or stop what it starts",
                file=sys.stderr,
            )
            return 1
    return 0


def main() -> int:
    try:
        return run(json.load(sys.stdin))
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=STOP_TIMEOUT)


if __name__ == "__main__":
    sys.exit(main())
