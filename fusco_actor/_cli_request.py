"""What ``fusco get`` sends: its URL, method, headers and body, built from curl's options.

Rules, as curl has them:

- A URL without ``scheme://`` is ``http://``; user-info in it is Basic
  authentication (``-u`` wins over it).
- ``-d``/``--data``, ``--data-binary``, ``--data-raw``, ``--data-urlencode``
  and ``--json`` may be repeated and mixed: the pieces are joined with ``&``
  (a ``--json`` piece is appended as it is). ``@FILE`` reads a file (``@-``:
  stdin); ``-d @FILE`` drops its CR and LF bytes, ``--data-binary @FILE``
  and ``--json @FILE`` keep them; ``--data-raw`` never reads a file.
  ``--data-file FILE`` is ``--data-binary @FILE``. A body that is one
  regular file is streamed from it, not read into memory.
- Default headers: ``Authorization`` (from ``-u``), ``User-Agent:
  fusco_actor/<version>`` (``-A``), ``Accept: */*`` and, with a body,
  ``Content-Type: application/x-www-form-urlencoded`` (``--json``:
  ``application/json`` for both). A ``-H`` header of the same name replaces
  the default; ``-H 'Name:'`` (empty value) removes it and sends nothing.
- The method is ``-X``, else ``HEAD`` for ``-I``, else ``POST`` with a body,
  else ``GET``.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import os
import re
import stat
import sys
from dataclasses import dataclass
from typing import BinaryIO, Final
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

import fusco_actor

__all__ = [
    "DEFAULT_USER_AGENT",
    "Body",
    "Url",
    "basic_authorization",
    "basic_credentials",
    "build_body",
    "build_headers",
    "choose_method",
    "get_url_argument",
    "parse_url",
    "read_data",
    "wire_text",
]

DEFAULT_USER_AGENT: Final = f"fusco_actor/{fusco_actor.__version__}"
FORM: Final = "application/x-www-form-urlencoded"
JSON: Final = "application/json"
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def wire_text(text: str) -> str:
    """Return ``text`` as the latin-1 ``str`` whose bytes are its command-line bytes (UTF-8)."""
    return os.fsencode(text).decode("latin-1")


@dataclass(frozen=True, slots=True)
class Url:
    """A checked ``http``/``https`` URL.

    Attributes:
        text: the URL without user-info (what ``url_effective`` shows).
        scheme: ``"http"`` or ``"https"``.
        host: the host name or IP address (no brackets).
        port: the port, the scheme's default when the URL names none.
        destination: ``scheme://host[:port]`` for :func:`fusco_actor.start`.
        target: the request target, ``path?query`` (``/`` at least).
        credentials: ``user:password`` bytes from the user-info, or None.
    """

    text: str
    scheme: str
    host: str
    port: int
    destination: str
    target: str
    credentials: bytes | None

    @property
    def origin(self) -> tuple[str, str, int]:
        """Return ``(scheme, host, port)``: requests to one origin share one client."""
        return self.scheme, self.host, self.port


def parse_url(text: str, *, guess_scheme: bool = True) -> Url:
    """Parse a ``fusco get`` URL; no ``scheme://`` means ``http://`` when ``guess_scheme``.

    Raises:
        ValueError: not an http or https URL with a host and a valid port.
    """
    if guess_scheme and not _SCHEME.match(text):
        text = "http://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has a bad port") from None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    credentials = None
    if userinfo:
        user, _, password = userinfo.partition(":")
        credentials = unquote_to_bytes(user) + b":" + unquote_to_bytes(password)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Url(
        text=f"{scheme}://{hostport}{target}",
        scheme=scheme,
        host=parts.hostname,
        port=port if port is not None else (443 if scheme == "https" else 80),
        destination=f"{scheme}://{hostport}",
        target=target,
        credentials=credentials,
    )


def get_url_argument(text: str) -> str:
    """Check a URL argument of ``fusco get`` (argparse type); return it unchanged."""
    try:
        parse_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# -- the body --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Body:
    """A request body: bytes, or a regular file streamed as it is.

    Attributes:
        data: the body's bytes (unused when ``path`` is set).
        path: a regular file sent as it is, opened anew for each send.
        json: whether ``--json`` made it (its ``Content-Type`` and ``Accept``).
    """

    data: bytes = b""
    path: str | None = None
    json: bool = False

    def open(self) -> bytes | BinaryIO:
        """Return what to pass as a request body (a file object the caller closes).

        Raises:
            OSError: the file cannot be opened (the message names it).
        """
        if self.path is None:
            return self.data
        return open(self.path, "rb")

    @property
    def size(self) -> int:
        """Return the body's size in bytes (a file's current size)."""
        return len(self.data) if self.path is None else os.stat(self.path).st_size


def read_data(name: str) -> bytes:
    """Return the contents of the file ``name`` (``-``: stdin), as ``@FILE`` reads it.

    Raises:
        OSError: the file cannot be read (the error names it).
    """
    if name == "-":
        return sys.stdin.buffer.read()
    with open(name, "rb") as file:
        return file.read()


def _urlencoded(value: str) -> bytes:
    """Return one ``--data-urlencode`` piece.

    curl's forms: ``content``, ``=content``, ``name=content``, ``@file`` and
    ``name@file``; only the content is encoded (RFC 3986 unreserved kept).
    """
    name, sep, content = value.partition("=")
    if sep:
        data = os.fsencode(content)
    else:
        name, sep, file = value.partition("@")
        if not sep:
            name, data = "", os.fsencode(value)
        else:
            data = read_data(file)
    encoded = quote_from_bytes(data, safe="").encode("ascii")
    return os.fsencode(name) + b"=" + encoded if name else encoded


def _piece(kind: str, value: str) -> bytes:
    if kind == "raw":
        return os.fsencode(value)
    if kind == "urlencode":
        return _urlencoded(value)
    if kind == "file":
        return read_data(value)
    if not value.startswith("@"):
        return os.fsencode(value)
    data = read_data(value[1:])
    return data.replace(b"\r", b"").replace(b"\n", b"") if kind == "data" else data


def _regular_file(name: str) -> bool:
    try:
        return name != "-" and stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return False  # _read will raise the error that names it


def build_body(parts: list[tuple[str, str]] | None) -> Body | None:
    """Return the body made of the data options in command-line order, or None for none.

    Args:
        parts: ``(kind, value)`` with kind ``data``, ``binary``, ``raw``,
            ``urlencode``, ``json`` or ``file`` (``--data-file``).

    Raises:
        OSError: a file named with ``@`` cannot be read (the message names it).
    """
    if not parts:
        return None
    is_json = any(kind == "json" for kind, _ in parts)
    if len(parts) == 1:
        kind, value = parts[0]
        name = value if kind == "file" else value[1:] if value.startswith("@") else None
        if kind in ("binary", "json", "file") and name is not None and _regular_file(name):
            return Body(path=name, json=is_json)
    chunks: list[bytes] = []
    for kind, value in parts:
        if chunks and kind != "json":
            chunks.append(b"&")
        chunks.append(_piece(kind, value))
    return Body(data=b"".join(chunks), json=is_json)


# -- headers and method ----------------------------------------------------------------


def basic_credentials(user: str) -> bytes:
    """Return ``user:password`` bytes for ``-u``; ask for the password when none is given."""
    name, sep, password = user.partition(":")
    if not sep:
        password = getpass.getpass(f"Enter host password for user '{name}':")
    return os.fsencode(name) + b":" + os.fsencode(password)


def basic_authorization(credentials: bytes) -> str:
    """Return the ``Authorization`` value for ``user:password`` bytes: ``Basic <base64>``."""
    return "Basic " + base64.b64encode(credentials).decode()


def build_headers(
    given: list[tuple[str, str]],
    credentials: bytes | None,
    user_agent: str | None,
    body: Body | None,
) -> list[tuple[str, str]]:
    """Return the request headers: fusco's defaults, then ``-H`` headers in their order.

    Args:
        given: the ``-H`` headers; an empty value removes the default of that name.
        credentials: ``user:password`` for Basic authentication, or None.
        user_agent: ``-A``'s value; None = the default, ``""`` = none.
        body: the body, which chooses ``Content-Type`` and ``Accept``.
    """
    names = {name.lower() for name, _ in given}
    defaults: list[tuple[str, str]] = []
    if credentials is not None:
        defaults.append(("Authorization", basic_authorization(credentials)))
    agent = DEFAULT_USER_AGENT if user_agent is None else wire_text(user_agent)
    if agent:
        defaults.append(("User-Agent", agent))
    defaults.append(("Accept", JSON if body is not None and body.json else "*/*"))
    headers = [pair for pair in defaults if pair[0].lower() not in names]
    headers += [(name, wire_text(value)) for name, value in given if value]
    if body is not None and "content-type" not in names:
        headers.append(("Content-Type", JSON if body.json else FORM))
    return headers


def choose_method(args: argparse.Namespace, body: Body | None) -> str:
    """Return ``-X``'s method, else HEAD for ``-I``, else POST with a body, else GET."""
    if args.method:
        return str(args.method)
    if args.head:
        return "HEAD"
    return "POST" if body is not None else "GET"
