r"""``fusco get -w FORMAT``: curl's ``--write-out`` variables, measured by fusco_actor.

``FORMAT`` is text with ``%{variable}``, ``%header{name}`` (a response
header's value), ``%%`` (a ``%``) and the escapes ``\n``, ``\r``, ``\t`` and
``\\``; ``@FILE`` reads it from a file (``@-``: stdin). An unknown variable is
a usage error (exit status 2) before anything is sent: curl prints a warning
and nothing in its place, which hides typos in scripts. ``%{stdout}`` and
``%{stderr}`` switch where the rest goes; ``%{json}`` is every variable as
one JSON object.

Times are seconds (``%.6f``) from the start of the first request (the
client started, before it connects). They come from
the client's :class:`~fusco_actor.ConnectInfo` (``connect_time``: TCP, proxy
tunnel and TLS together) and the moments the head and the end of the body
arrived. fusco_actor does not time TCP and TLS apart: for ``https``,
``time_connect`` equals ``time_appconnect``; for ``http``,
``time_appconnect`` is 0, as in curl. A request on a kept-alive connection
connects in no time. With ``-L`` the times are those of the last request,
``time_redirect`` the time the redirects before it took.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

    from fusco_actor._headers import Headers

__all__ = ["VARIABLES", "Stats", "WriteOut", "write_out_argument"]


@dataclass
class Stats:
    """What one ``fusco get`` run measured (times: ``time.monotonic()`` seconds).

    Only the last request's fields are kept, as curl reports them.
    """

    url: str  #: the URL as given
    started: float  #: the first request's start
    url_effective: str = ""
    method: str = ""
    scheme: str = ""
    request_started: float = 0.0  #: the last request's start
    connect_time: float | None = None  #: ``ConnectInfo.connect_time`` when it connected
    head_at: float | None = None
    ended_at: float | None = None
    status: int = 0
    version: str = ""
    headers: Headers | None = None
    size_download: int = 0
    size_upload: int = 0
    size_request: int = 0
    remote: tuple[Any, ...] | None = None  #: the address of the last connection made
    num_connects: int = 0
    num_redirects: int = 0
    redirect_url: str = ""
    exitcode: int = 0
    errormsg: str = ""
    filename: str = ""

    def since_start(self, moment: float | None) -> float:
        """Return seconds from the run's start to ``moment`` (0 when it never came)."""
        return 0.0 if moment is None else max(0.0, moment - self.started)


def _connected(s: Stats) -> float:
    return s.since_start(s.request_started) + (s.connect_time or 0.0)


def _speed(s: Stats, size: int) -> int:
    total = s.since_start(s.ended_at)
    return int(size / total) if total > 0 else 0


def _header(s: Stats, name: str) -> str:
    return "" if s.headers is None else str(s.headers.get(name, ""))


VARIABLES: Final[dict[str, Callable[[Stats], str | int | float]]] = {
    "content_type": lambda s: _header(s, "content-type"),
    "errormsg": lambda s: s.errormsg,
    "exitcode": lambda s: s.exitcode,
    "filename_effective": lambda s: s.filename,
    "http_code": lambda s: s.status,
    "http_version": lambda s: s.version.removeprefix("HTTP/") if s.status else "0",
    "method": lambda s: s.method,
    "num_connects": lambda s: s.num_connects,
    "num_headers": lambda s: 0 if s.headers is None else len(s.headers),
    "num_redirects": lambda s: s.num_redirects,
    "redirect_url": lambda s: s.redirect_url,
    "remote_ip": lambda s: "" if s.remote is None else str(s.remote[0]),
    "remote_port": lambda s: "" if s.remote is None else int(s.remote[1]),
    "response_code": lambda s: s.status,
    "scheme": lambda s: s.scheme,
    "size_download": lambda s: s.size_download,
    "size_request": lambda s: s.size_request,
    "size_upload": lambda s: s.size_upload,
    "speed_download": lambda s: _speed(s, s.size_download),
    "speed_upload": lambda s: _speed(s, s.size_upload),
    "time_appconnect": lambda s: _connected(s) if s.scheme == "https" else 0.0,
    "time_connect": _connected,
    "time_pretransfer": _connected,
    "time_redirect": lambda s: s.since_start(s.request_started) if s.num_redirects else 0.0,
    "time_starttransfer": lambda s: s.since_start(s.head_at),
    "time_total": lambda s: s.since_start(s.ended_at),
    "url": lambda s: s.url,
    "url_effective": lambda s: s.url_effective,
}
_STREAMS: Final = ("stdout", "stderr")
_TOKEN: Final = re.compile(r"%%|%\{([^}]*)\}|%header\{([^}]*)\}|\\[nrt\\]")
_ESCAPES: Final = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\"}


def _text(value: str | int | float, name: str) -> str:
    if name in {"http_code", "response_code"}:
        return f"{int(value):03d}"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


class WriteOut:
    """A parsed ``-w`` format.

    Raises:
        ValueError: (from the constructor) an unknown variable, named.
    """

    def __init__(self, text: str) -> None:
        """Parse ``text``."""
        self.parts: list[tuple[str, str]] = []  # (kind, value): text, var, header, stream
        at = 0
        for match in _TOKEN.finditer(text):
            self._text(text[at : match.start()])
            at = match.end()
            token = match.group(0)
            if match.group(1) is not None:
                name = match.group(1)
                if name in _STREAMS:
                    self.parts.append(("stream", name))
                elif name == "json" or name in VARIABLES:
                    self.parts.append(("var", name))
                else:
                    raise ValueError(f"unknown --write-out variable {name!r}")
            elif match.group(2) is not None:
                self.parts.append(("header", match.group(2)))
            else:
                self._text("%" if token == "%%" else _ESCAPES[token])
        self._text(text[at:])

    def _text(self, text: str) -> None:
        if text:
            self.parts.append(("text", text))

    def write(
        self, stats: Stats, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        """Write the format with ``stats``'s values (to stdout, or where it switches to)."""
        streams = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        out = streams["stdout"]
        for kind, value in self.parts:
            if kind == "text":
                out.write(value)
            elif kind == "stream":
                out.flush()
                out = streams[value]
            elif kind == "header":
                out.write(_header(stats, value))
            elif value == "json":
                out.write(json.dumps({name: get(stats) for name, get in VARIABLES.items()}))
            else:
                out.write(_text(VARIABLES[value](stats), value))
        out.flush()


def write_out_argument(text: str) -> WriteOut:
    """Parse ``-w``'s value (argparse type); ``@FILE`` reads the format from a file."""
    if text.startswith("@"):
        name = text[1:]
        try:
            if name == "-":
                text = sys.stdin.read()
            else:
                with open(name, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"cannot read the format: {exc}") from None
    try:
        return WriteOut(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
