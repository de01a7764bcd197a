"""RFC 6265 §5.1's rules, pure: cookie dates, host canonicalisation, domain and path matching.

Section numbers refer to RFC 6265; the jar that applies them is ``_cookies``.
"""

from __future__ import annotations

import calendar
import ipaddress
import re

__all__ = [
    "canonical_host",
    "default_path",
    "domain_match",
    "is_ip",
    "parse_date",
    "path_match",
    "uri_path",
]

# §5.1.1: cookie-date grammar (tokens split on delimiters, each field one pattern).
_DELIMITER = re.compile(r"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[^0-9].*)?", re.ASCII | re.DOTALL)
_DAY = re.compile(r"([0-9]{1,2})(?:[^0-9].*)?", re.ASCII | re.DOTALL)
_YEAR = re.compile(r"([0-9]{2,4})(?:[^0-9].*)?", re.ASCII | re.DOTALL)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def canonical_host(host: str) -> str:
    """Lower-case ``host`` and drop the brackets of an IPv6 literal."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_ip(host: str) -> bool:
    """Whether the canonical ``host`` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def domain_match(host: str, domain: str) -> bool:
    """§5.1.3 domain-match of canonical ``host`` against canonical ``domain``."""
    # §5.1.3: "The domain string and the string are identical."
    if host == domain:
        return True
    # §5.1.3: the domain string is a suffix of the string, the last character of
    # the string not in the domain string is ".", and the string is a host name
    # (i.e., not an IP address).
    return bool(domain) and host.endswith("." + domain) and not is_ip(host)


def uri_path(request_path: str) -> str:
    """Return the path of an origin-form request target, without query or fragment."""
    return request_path.split("?", 1)[0].split("#", 1)[0]


def default_path(request_path: str) -> str:
    """§5.1.4 default-path of the request path (its "directory")."""
    request_uri_path = uri_path(request_path)
    # §5.1.4 step 2: empty or not starting with "/" -> "/".
    # §5.1.4 step 3: no more than one "/" -> "/".
    if not request_uri_path.startswith("/") or request_uri_path.count("/") == 1:
        return "/"
    # §5.1.4 step 4: up to, but not including, the right-most "/".
    return request_uri_path[: request_uri_path.rindex("/")]


def path_match(request_path: str, cookie_path: str) -> bool:
    """§5.1.4 path-match of a (query-less) request path against a cookie-path."""
    # §5.1.4: "The cookie-path and the request-path are identical."
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    # §5.1.4: the cookie-path is a prefix and its last character is "/", or the
    # first character of the request-path not included in the cookie-path is "/".
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


def parse_date(text: str) -> float | None:
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
