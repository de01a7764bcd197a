"""``fusco get -L``: which request follows a redirect, as curl (and RFC 9110 §15.4) decide.

- 301, 302, 303, 307 and 308 with a ``Location`` are followed; the location
  is resolved against the URL that was asked for (RFC 3986 §5).
- 303 turns any method but HEAD into GET without a body; 301 and 302 turn
  POST into GET without a body (what browsers and curl do); 307 and 308 keep
  the method and the body. A body dropped takes its ``Content-Type``,
  ``Content-Length`` and ``Transfer-Encoding`` headers with it.
- ``Authorization`` and ``Cookie`` headers go to the first URL's origin
  (scheme, host and port) only, unless ``--location-trusted``.
- More than ``--max-redirs`` redirects (default 50; -1 = no limit) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final
from urllib.parse import urljoin

from fusco_actor._cli_request import Body, Url, basic_authorization, parse_url

if TYPE_CHECKING:
    from fusco_actor._headers import Headers

__all__ = [
    "DEFAULT_MAX_REDIRS",
    "REDIRECT_STATUSES",
    "BadRedirect",
    "Hop",
    "TooManyRedirects",
    "location_of",
    "next_hop",
]

DEFAULT_MAX_REDIRS: Final = 50  # as curl
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "cookie"})
#: header names whose meaning belongs to the body (dropped with it on a 301/302/303)
_BODY_HEADERS: Final = frozenset({"content-type", "content-length", "transfer-encoding"})


class TooManyRedirects(Exception):
    """Raised when a redirect would pass ``--max-redirs``."""


class BadRedirect(Exception):
    """Raised when a ``Location`` is not an http or https URL."""


@dataclass(frozen=True, slots=True)
class Hop:
    """One request of a ``fusco get`` run (the first, or one that follows a redirect).

    Attributes:
        url: where it goes.
        method: its method.
        headers: the headers it sends (the first request's, adjusted).
        body: its body, or None.
        first_origin: the origin of the first request, which alone gets credentials.
        credentials_headers: the first request's ``Authorization``/``Cookie`` headers.
        redirects: how many redirects led to it.
    """

    url: Url
    method: str
    headers: list[tuple[str, str]]
    body: Body | None
    first_origin: tuple[str, str, int]
    credentials_headers: list[tuple[str, str]]
    redirects: int = 0

    @classmethod
    def first(cls, url: Url, method: str, headers: list[tuple[str, str]], body: Body | None) -> Hop:
        """Return the first request."""
        kept = [(n, v) for n, v in headers if n.lower() in _CREDENTIAL_HEADERS]
        return cls(url, method, headers, body, url.origin, kept)


def _without(headers: list[tuple[str, str]], names: frozenset[str]) -> list[tuple[str, str]]:
    """Return ``headers`` without those whose lower-cased name is in ``names``."""
    return [(n, v) for n, v in headers if n.lower() not in names]


def location_of(status: int, headers: Headers) -> str | None:
    """Return the ``Location`` of a redirect response, or None when it is no redirect."""
    if status not in REDIRECT_STATUSES:
        return None
    location = headers.get("location")
    return location.strip() if location and location.strip() else None


def next_hop(hop: Hop, status: int, location: str, max_redirs: int, trusted: bool) -> Hop:
    """Return the request that follows ``hop``'s redirect response.

    Args:
        hop: the request that was answered with a redirect.
        status: the response's status (301, 302, 303, 307 or 308).
        location: the response's ``Location`` value.
        max_redirs: redirects allowed in all; -1 = no limit.
        trusted: ``--location-trusted``: credentials go to any origin.

    Raises:
        TooManyRedirects: ``max_redirs`` redirects were already followed.
        BadRedirect: the location is not an http or https URL.
    """
    if 0 <= max_redirs <= hop.redirects:
        raise TooManyRedirects(f"maximum ({max_redirs}) redirects followed")
    try:
        url = parse_url(urljoin(hop.url.text, location), guess_scheme=False)
    except ValueError as exc:
        raise BadRedirect(f"cannot follow the redirect to {location!r}: {exc}") from None
    method, body, headers = hop.method, hop.body, hop.headers
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body, headers = "GET", None, _without(headers, _BODY_HEADERS)
    headers = _without(headers, _CREDENTIAL_HEADERS)
    if trusted or url.origin == hop.first_origin:
        headers = hop.credentials_headers + headers
    elif url.credentials is not None:  # user-info in the Location itself
        headers = [("Authorization", basic_authorization(url.credentials)), *headers]
    return replace(hop, url=url, method=method, headers=headers, body=body,
                   redirects=hop.redirects + 1)  # fmt: skip
