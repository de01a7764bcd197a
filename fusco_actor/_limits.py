"""The process's open-file limit: raised to its hard limit when the scheduler starts.

Every connection is a file descriptor, and Linux starts most processes with a
soft ``RLIMIT_NOFILE`` of 1,024 although the hard limit is usually far
higher (524,288 or 1,048,576 under systemd). A process that runs thousands
of clients on the scheduler would fail its 1,021st connect with
``ConnectError`` (``EMFILE``). So, as Go's runtime, nginx
(``worker_rlimit_nofile``) and most servers do, the scheduler raises the
soft limit up to the hard limit once, when it starts. It never lowers a
limit, and never needs privileges (only root may raise the hard limit).

The raised soft limit is inherited by child processes. Set
``FUSCO_ACTOR_RAISE_NOFILE=0`` to keep the limit as it is (for instance when
the process hands descriptors to ``select.select``, which cannot take a
number of 1,024 or more).
"""

from __future__ import annotations

import logging
import os
from typing import Final, NamedTuple

__all__ = ["RAISE_NOFILE_ENV", "NoFileLimit", "open_file_limit", "raise_open_file_limit"]

logger = logging.getLogger(__name__)

#: Set to "0" to keep the process's open-file soft limit as it is.
RAISE_NOFILE_ENV: Final = "FUSCO_ACTOR_RAISE_NOFILE"
#: Where the hard limit is "unlimited" (macOS), the soft limit is raised to this.
UNLIMITED_CAP: Final = 1 << 20


class NoFileLimit(NamedTuple):
    """``RLIMIT_NOFILE``: soft and hard (None where unknown, e.g. on Windows)."""

    soft: int | None
    hard: int | None


def open_file_limit() -> NoFileLimit:
    """Return the process's open-file limits (``NoFileLimit(None, None)`` without ``resource``)."""
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:
        return NoFileLimit(None, None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return NoFileLimit(soft, hard)


def raise_open_file_limit(wanted: int | None = None) -> NoFileLimit:
    """Raise the open-file soft limit to ``wanted`` (None = the hard limit); never lower it.

    Honours ``FUSCO_ACTOR_RAISE_NOFILE=0`` only when ``wanted`` is None (the
    scheduler's call). A limit the system refuses is logged and left as it was.

    Returns:
        the limits in force afterwards.
    """
    try:
        import resource  # noqa: PLC0415 - POSIX only
    except ImportError:
        return NoFileLimit(None, None)
    if wanted is None and os.environ.get(RAISE_NOFILE_ENV, "").strip() == "0":
        return open_file_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    target = ceiling if wanted is None else min(wanted, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as error:  # e.g. macOS's kern.maxfilesperproc
            logger.debug("cannot raise the open-file soft limit to %d: %s", target, error)
        else:
            logger.debug("raised the open-file soft limit from %d to %d", soft, target)
    return open_file_limit()
