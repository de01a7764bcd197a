"""A pure RFC 6265 cookie jar for a client that talks to one origin host.

No I/O, no threads, no clock: every method takes the current time ``now``
(``time.time()`` seconds) from its caller. Section numbers refer to RFC 6265.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CookieJar"]

_WSP = " \t"  # §5.2: "WSP" is SP / HTAB
_MAX_AGE = re.compile(r"-?[0-9]+", re.ASCII)  # §5.2.2: DIGIT or "-" then DIGITs
# RFC 6265bis §5.6 step 3 (a tightening of §5.2): a name or value holding a CTL
# other than HTAB is ignored, so nothing can smuggle CR/LF into the Cookie header.
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_DELTA = 2**40  # seconds; clamps a huge Max-Age so ``now + delta`` stays a float
# §5.1.1: cookie-date grammar (tokens split on delimiters, each field one pattern).
_DELIMITER = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[^0-9].*)?", re.ASCII | re.DOTALL)
_DAY = re.compile(r"([0-9]{1,2})(?:[^0-9].*)?", re.ASCII | re.DOTALL)
_YEAR = re.compile(r"([0-9]{2,4})(?:[^0-9].*)?", re.ASCII | re.DOTALL)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


@dataclass
class _Cookie:
    """One stored cookie (§5.3); times are ``time.time()`` seconds."""

    name: str
    value: str
    domain: str
    path: str
    host_only: bool
    secure: bool
    http_only: bool
    expiry: float | None  # None: a session cookie (§5.3 step 3, persistent-flag false)
    creation: float
    order: int  # tie-break for equal creation times, keeps arrival order


def _canonical_host(host: str) -> str:
    """Lower-case ``host`` and drop the brackets of an IPv6 literal."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _is_ip(host: str) -> bool:
    """Whether the canonical ``host`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _domain_match(host: str, domain: str) -> bool:
    """§5.1.3 domain-match of canonical ``host`` against canonical ``domain``."""
    # §5.1.3: "The domain string and the string are identical."
    if host == domain:
        return True
    # §5.1.3: the domain string is a suffix of the string, the last character of
    # the string not in the domain string is ".", and the string is a host name
    # (i.e., not an IP address).
    return bool(domain) and host.endswith("." + domain) and not _is_ip(host)


def _uri_path(request_path: str) -> str:
    """Return the path of an origin-form request target, without query or fragment."""
    return request_path.split("?", 1)[0].split("#", 1)[0]


def _default_path(request_path: str) -> str:
    """§5.1.4 default-path of the request path (its "directory")."""
    uri_path = _uri_path(request_path)
    # §5.1.4 step 2: empty or not starting with "/" -> "/".
    # §5.1.4 step 3: no more than one "/" -> "/".
    if not uri_path.startswith("/") or uri_path.count("/") == 1:
        return "/"
    # §5.1.4 step 4: up to, but not including, the right-most "/".
    return uri_path[: uri_path.rindex("/")]


def _path_match(request_path: str, cookie_path: str) -> bool:
    """§5.1.4 path-match of a (query-less) request path against a cookie-path."""
    # §5.1.4: "The cookie-path and the request-path are identical."
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    # §5.1.4: the cookie-path is a prefix and its last character is "/", or the
    # first character of the request-path not included in the cookie-path is "/".
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


def _parse_date(text: str) -> float | None:
    """Parse a §5.1.1 cookie-date into epoch seconds; None when it does not parse."""
    hms: tuple[int, int, int] | None = None
    day = month = year = None
    # §5.1.1 step 2: each date-token fills the first still-missing field it matches,
    # tried in the order time, day-of-month, month, year.
    for token in _DELIMITER.split(text):
        if hms is None and (m := _TIME.fullmatch(token)):
            hms = (int(m[1]), int(m[2]), int(m[3]))
        elif day is None and (m := _DAY.fullmatch(token)):
            day = int(m[1])
        elif month is None and token[:3].lower() in _MONTHS:
            month = _MONTHS.index(token[:3].lower()) + 1
        elif year is None and (m := _YEAR.fullmatch(token)):
            year = int(m[1])
    if hms is None or day is None or month is None or year is None:
        return None  # §5.1.1 step 5: a missing field fails
    # §5.1.1 steps 3-4: two-digit years 70-99 -> 19xx, 00-69 -> 20xx.
    year += 1900 if 70 <= year <= 99 else 2000 if year <= 69 else 0
    hour, minute, second = hms
    # §5.1.1 step 5: out-of-range fields and dates that do not exist fail.
    if year < 1601 or hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second)))


class CookieJar:
    """Cookies of one origin host, stored and matched per RFC 6265."""

    def __init__(self) -> None:
        """Create an empty jar."""
        self._cookies: dict[tuple[str, str, str], _Cookie] = {}
        self._counter = 0

    def __len__(self) -> int:
        """Return the number of stored cookies (expired ones count until evicted)."""
        return len(self._cookies)

    def store(
        self,
        host: str,
        request_path: str,
        is_secure: bool,
        set_cookie_values: Iterable[str],
        now: float,
    ) -> None:
        """Store the cookies of a response's Set-Cookie header values.

        RFC 6265 §5.2 parsing and §5.3 storage model. ``now`` is ``time.time()``
        seconds. Malformed values are ignored, never raised on. ``is_secure`` is
        accepted for symmetry: RFC 6265 lets a Secure cookie be set over http.
        """
        canonical = _canonical_host(host)
        for line in set_cookie_values:
            self._store_one(canonical, request_path, line, now)
        self._evict_expired(now)

    def header_value(self, host: str, path: str, is_secure: bool, now: float) -> str | None:
        """Return the Cookie header value for a request to ``path``, or None if none applies.

        RFC 6265 §5.4: domain-match, path-match (§5.1.4), Secure only when
        ``is_secure``, expired cookies skipped and evicted; longer paths first,
        then earlier creation. ``now`` is ``time.time()`` seconds.
        """
        self._evict_expired(now)
        canonical = _canonical_host(host)
        uri_path = _uri_path(path) or "/"
        chosen = [
            cookie
            for cookie in self._cookies.values()
            # §5.4 step 1: host-only cookies need the canonical host to be
            # identical to the cookie's domain, others need a domain-match.
            if (
                canonical == cookie.domain
                if cookie.host_only
                else _domain_match(canonical, cookie.domain)
            )
            # §5.4 step 1: "The request-uri's path path-matches the cookie's path."
            and _path_match(uri_path, cookie.path)
            # §5.4 step 1: secure-only cookies only over a "secure" protocol.
            and (is_secure or not cookie.secure)
        ]
        if not chosen:
            return None
        # §5.4 step 2: longer paths first; equal lengths, earlier creation first.
        chosen.sort(key=lambda c: (-len(c.path), c.creation, c.order))
        # §5.4 step 4: name "=" value, joined by "; ".
        return "; ".join(f"{c.name}={c.value}" for c in chosen)

    def _evict_expired(self, now: float) -> None:
        """§5.3: evict every cookie whose expiry-time is in the past."""
        expired = [
            key
            for key, cookie in self._cookies.items()
            if cookie.expiry is not None and cookie.expiry <= now
        ]
        for key in expired:
            del self._cookies[key]

    def _store_one(self, host: str, request_path: str, line: str, now: float) -> None:
        """Parse one set-cookie-string (§5.2) and apply the storage model (§5.3)."""
        # §5.2 step 1: the name-value-pair runs up to the first ";".
        pair, _, unparsed = line.partition(";")
        # §5.2 step 2: a name-value-pair without "=" is ignored.
        if "=" not in pair:
            return
        # §5.2 steps 3-4: split at the first "=", strip WSP from both halves.
        name, _, value = pair.partition("=")
        name, value = name.strip(_WSP), value.strip(_WSP)
        # §5.2 step 5: an empty name is ignored.
        if not name or _CTL.search(name) or _CTL.search(value):
            return
        expires: float | None = None
        max_age: float | None = None
        domain: str | None = None
        path: str | None = None
        secure = http_only = False
        # §5.2 (attributes): each cookie-av up to the next ";"; "=" splits name and
        # value; names are case-insensitive; the last occurrence of one wins (§5.3).
        for av in unparsed.split(";"):
            av_name, _, av_value = av.partition("=")
            av_name = av_name.strip(_WSP).lower() if av_name.isascii() else ""
            av_value = av_value.strip(_WSP)
            if av_name == "expires":
                # §5.2.1: an unparsable date ignores the cookie-av.
                when = _parse_date(av_value)
                expires = expires if when is None else when
            elif av_name == "max-age":
                # §5.2.2: DIGITs with an optional leading "-", else ignored;
                # delta-seconds <= 0 means the earliest representable time.
                if _MAX_AGE.fullmatch(av_value):
                    delta = min(int(av_value), _MAX_DELTA)
                    max_age = float("-inf") if delta <= 0 else now + delta
            elif av_name == "domain":
                # §5.2.3: an empty value is ignored; a leading "." is dropped;
                # the value is lower-cased.
                if av_value:
                    domain = _canonical_host(av_value.removeprefix("."))
            elif av_name == "path":
                # §5.2.4: a value not starting with "/" means default-path.
                path = av_value if av_value.startswith("/") else None
            elif av_name == "secure":
                secure = True  # §5.2.5
            elif av_name == "httponly":
                http_only = True  # §5.2.6
        # §5.3 step 3: Max-Age has precedence over Expires.
        expiry = max_age if max_age is not None else expires
        if domain:
            # §5.3 step 6: a Domain the request host does not domain-match
            # ignores the cookie entirely; one that matches is not host-only.
            if not _domain_match(host, domain):
                return
            host_only = False
        else:
            # §5.3 step 6: no (or an empty) Domain -> host-only, domain = host.
            host_only, domain = True, host
        # §5.3 step 7: no valid Path -> default-path of the request-uri.
        cookie_path = path if path is not None else _default_path(request_path)
        key = (name, domain, cookie_path)
        old = self._cookies.pop(key, None)
        # §5.3 step 12 + eviction: a cookie arriving already expired only
        # removes the stored one (step 11.3) and is not kept.
        if expiry is not None and expiry <= now:
            return
        if old is not None:
            # §5.3 step 11.3: keep the old cookie's creation-time.
            creation, order = old.creation, old.order
        else:
            creation, order = now, self._counter
            self._counter += 1
        self._cookies[key] = _Cookie(
            name, value, domain, cookie_path, host_only, secure, http_only, expiry, creation, order
        )
