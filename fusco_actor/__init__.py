"""fusco_actor: a fast, slim, connection-oriented HTTP/1.1 client built as pykka actors."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
