"""``fusco get``'s proxy choice: ``-x``, ``--noproxy`` and the environment, as curl reads them.

Rules (curl's ``detect_proxy`` and ``check_noproxy``):

- ``--noproxy LIST`` (or else ``no_proxy``, then ``NO_PROXY``) names hosts that
  are reached directly, even when ``-x`` names a proxy: ``*`` alone matches
  every host; a name matches itself and its subdomains (a leading dot is
  optional); an IP address or CIDR block matches the addresses in it. Ports
  are not compared.
- ``-x URL`` otherwise wins over the environment; ``-x ""`` turns proxies off.
- From the environment: ``http_proxy`` for ``http://`` URLs (lower case only:
  a CGI program's ``HTTP_PROXY`` may come from a request's ``Proxy:`` header,
  "httpoxy"), ``https_proxy`` or ``HTTPS_PROXY`` for ``https://``, then
  ``all_proxy`` or ``ALL_PROXY``.
- A proxy without a scheme is ``http://``; without a port, port 1080, as in
  curl. fusco_actor speaks to HTTP proxies only: another scheme is an error.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_PROXY_PORT", "ProxySchemeError", "bypasses_proxy", "choose_proxy"]

DEFAULT_PROXY_PORT: Final = 1080  # curl's port for a proxy URL that names none


class ProxySchemeError(ValueError):
    """Raised when a proxy URL names a scheme other than ``http``."""


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value is not None:
            return value
    return None


def bypasses_proxy(host: str, no_proxy: str | None) -> bool:
    """Return whether ``host`` (a name or an IP address, no brackets) matches ``no_proxy``."""
    if not no_proxy:
        return False
    entries = [e.strip() for e in no_proxy.replace(" ", ",").split(",") if e.strip()]
    if entries == ["*"]:
        return True
    host = host.strip("[]").rstrip(".").lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in entries:
        entry = raw.strip("[]").lower()
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _normalise(proxy: str, source: str) -> str:
    """Return ``proxy`` as ``http://[user:pass@]host:port``.

    Raises:
        ProxySchemeError: the proxy's scheme is not ``http``.
    """
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urlsplit(proxy)
    if parts.scheme.lower() != "http":
        raise ProxySchemeError(f"{source}: {proxy!r}: fusco_actor speaks to http:// proxies only")
    netloc = parts.netloc
    try:
        port = parts.port
    except ValueError:
        return f"http://{netloc}"  # start() names the bad port
    if port is None:
        netloc += f"{'' if netloc.endswith(':') else ':'}{DEFAULT_PROXY_PORT}"
    return f"http://{netloc}"


def choose_proxy(
    scheme: str,
    host: str,
    option: str | None,
    noproxy: str | None,
    environ: Mapping[str, str],
) -> str | None:
    """Return the proxy URL for a request to ``scheme://host``, or None to go direct.

    Args:
        scheme: ``"http"`` or ``"https"``.
        host: the URL's host (a name or an IP address).
        option: ``-x``'s value (None when not given; ``""`` = no proxy).
        noproxy: ``--noproxy``'s value (None when not given).
        environ: the environment to read (``os.environ``).

    Raises:
        ProxySchemeError: the chosen proxy is not an ``http://`` proxy.
    """
    if noproxy is None:
        noproxy = _env(environ, "no_proxy", "NO_PROXY")
    if bypasses_proxy(host, noproxy):
        return None
    if option is not None:
        return _normalise(option, "-x/--proxy") if option else None
    names = ("http_proxy",) if scheme == "http" else (f"{scheme}_proxy", f"{scheme.upper()}_PROXY")
    for name in (*names, "all_proxy", "ALL_PROXY"):
        value = environ.get(name)
        if value:
            return _normalise(value, name)
    return None
