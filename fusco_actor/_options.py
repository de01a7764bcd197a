"""Every ``start()`` option: its static type and its check before any actor starts.

:class:`ClientOptions` (a ``TypedDict``) is the one list of options: type
checkers read it through ``**options: Unpack[ClientOptions]`` on ``start``,
``start_link``, ``Pool.start`` and ``Supervisor.start_client``, and
:func:`parse_options` takes the names it accepts from it, then checks each
value at run time (fusco's verify_options) → ``BadOption``.

Also parses the destination (URL or ``(host, port, is_ssl)`` tuple) and the
proxy URL, so that the client actor only ever sees checked values.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeAlias, TypedDict
from urllib.parse import unquote, urlsplit

from fusco_actor._connect_parts import ConnectInfo
from fusco_actor._cookies import CookieJar
from fusco_actor._exceptions import BadArgument, BadOption
from fusco_actor._parser import DEFAULT_MAX_HEAD_SIZE
from fusco_actor.messages import check_timeout

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack

__all__ = [
    "OPTION_NAMES",
    "CheckedOptions",
    "ClientOptions",
    "ConnectOptions",
    "Destination",
    "DestinationLike",
    "ProxyConfig",
    "Unpack",
    "parse_destination",
    "parse_options",
]

DEFAULT_SEND_RETRY: Final = 1

#: What ``start`` takes as a destination: ``"http[s]://host[:port]"`` or ``(host, port, is_ssl)``.
DestinationLike: TypeAlias = str | tuple[str, int, bool]


class ConnectOptions(TypedDict, total=False):
    """The ``connect_options`` option: socket-level settings of each new connection.

    Keys (all optional): ``source_address`` ``(ip, port)`` to bind before
    connecting (port 0 = any); ``family`` ``socket.AF_INET`` or
    ``socket.AF_INET6`` (default: either); ``sockopts``
    ``(level, option, value)`` triples for ``setsockopt``; ``tcp_nodelay``
    (default ``True``).
    """

    source_address: tuple[str, int] | None
    family: int
    sockopts: Iterable[tuple[int, int, int | bytes]]
    tcp_nodelay: bool


class ClientOptions(TypedDict, total=False):
    """The keyword options of ``start``, ``start_link``, ``Pool.start`` and ``start_client``.

    Every key is optional; API.md §1 "Options" and the README give defaults
    and meanings (times in seconds). A wrong name or type is an error for a
    type checker, and ``BadOption`` at run time either way. Build a set of
    options once and reuse it::

        opts: fusco_actor.ClientOptions = {"connect_timeout": 2.0, "pipeline": 4}
        client = fusco_actor.start(url, **opts)
    """

    connect_timeout: float | None
    connect_options: ConnectOptions
    ssl_context: ssl.SSLContext | None
    send_retry: int
    proxy: str | None
    proxy_ssl_context: ssl.SSLContext | None
    use_cookies: bool
    on_connect: Callable[[ConnectInfo], object] | None
    max_head_size: int
    max_body_size: int | None
    pipeline: int


#: The names ``start`` accepts: the keys of :class:`ClientOptions`, nothing else.
OPTION_NAMES: Final = ClientOptions.__required_keys__ | ClientOptions.__optional_keys__
_CONNECT_OPTION_KEYS: Final = ConnectOptions.__required_keys__ | ConnectOptions.__optional_keys__


@dataclass(frozen=True, slots=True)
class Destination:
    """The origin a client talks to."""

    host: str
    port: int
    is_ssl: bool

    @property
    def host_field(self) -> bytes:
        """Return the ``Host`` header value: default port omitted, IPv6 in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.is_ssl else 80
        text = host if self.port == default else f"{host}:{self.port}"
        return text.encode("idna" if not text.isascii() else "ascii")

    @property
    def origin(self) -> str:
        """Return ``scheme://host:port``, for messages and the proxy's absolute form."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.is_ssl else 'http'}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """A forward proxy: address and optional Basic credentials (percent-decoded)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class CheckedOptions:
    """Every option of ``start`` after validation; docs/options.md has their meanings."""

    connect_timeout: float | None = None
    source_address: tuple[str, int] | None = None
    family: int = 0
    sockopts: tuple[tuple[int, int, Any], ...] = ()
    tcp_nodelay: bool = True
    ssl_context: ssl.SSLContext | None = None
    send_retry: int = DEFAULT_SEND_RETRY
    proxy: ProxyConfig | None = None
    proxy_ssl_context: ssl.SSLContext | None = None
    use_cookies: bool = False
    on_connect: Callable[[Any], Any] | None = None
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    max_body_size: int | None = None
    pipeline: int = 1
    #: The jar shared by every incarnation of a client (and every client of a pool)
    #: with ``use_cookies``; set by the handle or the pool, never by ``parse_options``.
    cookie_jar: CookieJar | None = None

    def with_own_jar(self, host: str) -> CheckedOptions:
        """Return these options with a new jar for ``host`` if ``use_cookies`` wants one.

        Unchanged when cookies are off or a jar is already set (a pool's).
        """
        if not self.use_cookies or self.cookie_jar is not None:
            return self
        return replace(self, cookie_jar=CookieJar(host))


def _check_port(port: Any, what: str, error: type[Exception]) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise error(f"{what}: port {port!r} is not in 1..65535")
    return port


def _split_url(url: str, what: str, error: type[Exception]) -> tuple[str, str, int, Any]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise error(f"{what}: {url!r} is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise error(f"{what}: {url!r} is not an http or https URL")
    host = parts.hostname
    if not host:
        raise error(f"{what}: {url!r} has no host")
    default = 443 if scheme == "https" else 80
    return scheme, host, _check_port(port if port is not None else default, what, error), parts


def _check_host(host: Any, error: type[Exception], what: str) -> str:
    if not isinstance(host, str) or not host or any(c in host for c in " /\\@#?\r\n\x00"):
        raise error(f"{what}: host {host!r} is not valid")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise error(f"{what}: {host!r} is not a valid IPv6 address") from exc
    return str(host).lower()


def parse_destination(destination: Any) -> Destination:
    """Return the checked destination of ``start``.

    Accepts ``http://host[:port]``, ``https://host[:port]`` (IPv6 as ``[::1]``;
    user-info and path ignored) or a ``(host, port, is_ssl)`` tuple.

    Raises:
        BadArgument: anything else.
    """
    if isinstance(destination, tuple):
        if len(destination) != 3 or not isinstance(destination[2], bool):
            raise BadArgument(f"destination {destination!r} is not (host, port, is_ssl)")
        host = _check_host(destination[0], BadArgument, "destination")
        port = _check_port(destination[1], "destination", BadArgument)
        return Destination(host, port, destination[2])
    if not isinstance(destination, str):
        raise BadArgument(f"destination {destination!r} is not a URL or (host, port, is_ssl)")
    scheme, host, port, _ = _split_url(destination, "destination", BadArgument)
    return Destination(_check_host(host, BadArgument, "destination"), port, scheme == "https")


def _parse_proxy(value: Any) -> ProxyConfig | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadOption(f"proxy: {value!r} is not a URL string")
    scheme, host, port, parts = _split_url(value, "proxy", BadOption)
    if scheme != "http":
        raise BadOption(f"proxy: {value!r} must be an http:// URL")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyConfig(_check_host(host, BadOption, "proxy"), port, user, password)


def _timeout_option(name: str, value: Any) -> float | None:
    try:
        return check_timeout(value, name)
    except BadArgument as exc:
        raise BadOption(str(exc)) from None


def _int_option(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadOption(f"{name}: {value!r} is not an int >= {minimum}")
    return value


def _optional_int_option(name: str, value: Any, minimum: int) -> int | None:
    return None if value is None else _int_option(name, value, minimum)


def _ssl_option(name: str, value: Any) -> ssl.SSLContext | None:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise BadOption(f"{name}: {value!r} is not an ssl.SSLContext")
    return value


def _connect_options(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadOption(f"connect_options: {value!r} is not a mapping")
    unknown = set(value) - _CONNECT_OPTION_KEYS
    if unknown:
        raise BadOption(f"connect_options: unknown key(s) {sorted(unknown)}")
    out: dict[str, Any] = {}
    source = value.get("source_address")
    if source is not None:
        if (
            not isinstance(source, tuple)
            or len(source) != 2
            or not isinstance(source[0], str)
            or isinstance(source[1], bool)
            or not isinstance(source[1], int)
            or not 0 <= source[1] < 65536
        ):
            raise BadOption(f"connect_options: source_address {source!r} is not (ip, port)")
        out["source_address"] = source
    family = value.get("family", 0)
    if family not in (0, socket.AF_INET, socket.AF_INET6):
        raise BadOption(f"connect_options: family {family!r} is not AF_INET or AF_INET6")
    out["family"] = int(family)
    sockopts = value.get("sockopts", ())
    try:
        opts = tuple(tuple(o) for o in sockopts)
    except TypeError as exc:
        raise BadOption("connect_options: sockopts must be (level, option, value) triples") from exc
    for opt in opts:
        if len(opt) != 3 or not isinstance(opt[0], int) or not isinstance(opt[1], int):
            raise BadOption(f"connect_options: sockopt {opt!r} is not (level, option, value)")
    out["sockopts"] = opts
    nodelay = value.get("tcp_nodelay", True)
    if not isinstance(nodelay, bool):
        raise BadOption(f"connect_options: tcp_nodelay {nodelay!r} is not a bool")
    out["tcp_nodelay"] = nodelay
    return out


def parse_options(options: Mapping[str, Any]) -> CheckedOptions:
    """Return checked :class:`CheckedOptions` for ``start(**options)``.

    Raises:
        BadOption: an unknown option name, or a wrong type or value; the
            message names the option.
    """
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise BadOption(f"unknown option(s): {', '.join(sorted(unknown))}")
    conn = _connect_options(options.get("connect_options", {}))
    use_cookies = options.get("use_cookies", False)
    if not isinstance(use_cookies, bool):
        raise BadOption(f"use_cookies: {use_cookies!r} is not a bool")
    on_connect = options.get("on_connect")
    if on_connect is not None and not callable(on_connect):
        raise BadOption(f"on_connect: {on_connect!r} is not callable")
    return CheckedOptions(
        connect_timeout=_timeout_option("connect_timeout", options.get("connect_timeout")),
        ssl_context=_ssl_option("ssl_context", options.get("ssl_context")),
        send_retry=_int_option("send_retry", options.get("send_retry", DEFAULT_SEND_RETRY), 0),
        proxy=_parse_proxy(options.get("proxy")),
        proxy_ssl_context=_ssl_option("proxy_ssl_context", options.get("proxy_ssl_context")),
        use_cookies=use_cookies,
        on_connect=on_connect,
        max_head_size=_int_option(
            "max_head_size", options.get("max_head_size", DEFAULT_MAX_HEAD_SIZE), 1024
        ),
        max_body_size=_optional_int_option("max_body_size", options.get("max_body_size"), 0),
        pipeline=_int_option("pipeline", options.get("pipeline", 1), 1),
        **conn,
    )
