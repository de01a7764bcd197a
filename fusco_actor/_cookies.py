"""An RFC 6265 cookie jar for the clients that talk to one origin host.

No I/O. The methods the client actors call (``store``, ``header_value``) take
the current time ``now`` (``time.time()`` seconds) from their caller; the
user-facing ones (``iter``, ``get``, ``set``, ``clear``) read the clock. Every
method takes the jar's lock: the clients of a pool share one jar, and with
the threaded engine they run on threads of their own. Section numbers refer
to RFC 6265.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from fusco_actor import _native
from fusco_actor._cookie_rules import (
    canonical_host,
    default_path,
    domain_match,
    parse_date,
    path_match,
    uri_path,
)
from fusco_actor._exceptions import BadArgument

__all__ = ["Cookie", "CookieJar"]

_WSP = " \t"  # §5.2: "WSP" is SP / HTAB
_MAX_AGE = re.compile(r"-?[0-9]+", re.ASCII)  # §5.2.2: DIGIT or "-" then DIGITs
# RFC 6265bis §5.6 step 3 (a tightening of §5.2): a name or value holding a CTL
# other than HTAB is ignored, so nothing can smuggle CR/LF into the Cookie header.
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_MAX_DELTA = 2**40  # seconds; clamps a huge Max-Age so ``now + delta`` stays a float
# §4.1.1: what a server may send, and so what ``CookieJar.set`` takes: a token name
# and cookie-octets (optionally in DQUOTEs) as the value.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OCTETS = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_COOKIE_VALUE = re.compile(f'{_OCTETS}|"{_OCTETS}"')
_BAD_PATH = re.compile(r"[\x00-\x1f\x7f;]")


@dataclass(frozen=True, slots=True)
class Cookie:
    """One cookie of a :class:`CookieJar`, as ``iter(jar)`` shows it (a snapshot).

    ``domain`` is the host (``host_only``) or the domain it is sent to;
    ``expires`` is in ``time.time()`` seconds, None for a session cookie.
    """

    name: str
    value: str
    domain: str
    path: str
    host_only: bool
    secure: bool
    http_only: bool
    expires: float | None


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


class CookieJar:
    """Cookies of one origin host, stored and matched per RFC 6265 (thread-safe).

    A client started with ``use_cookies=True`` has one (``client.cookies``); the
    clients of a pool share the pool's (``pool.cookies``). Users read it
    (``iter(jar)`` gives :class:`Cookie` snapshots, ``jar.get(name)``,
    ``len(jar)``), seed it (``jar.set(name, value)``) and empty it
    (``jar.clear()``); the clients store ``Set-Cookie`` values and send the
    ``Cookie`` header from it.

    Example:
        >>> jar = CookieJar("example.com")
        >>> jar.set("session", "abc123")
        >>> jar.get("session")
        'abc123'
    """

    def __init__(self, host: str | None = None) -> None:
        """Create an empty jar; ``host``, the origin's, is where :meth:`set` cookies go."""
        self._host = None if host is None else canonical_host(host)
        self._cookies: dict[tuple[str, str, str], _Cookie] = {}
        self._counter = 0
        # A real lock even under gevent: the scheduler thread takes it too, and no
        # holder waits on anything while it holds it (see _native).
        self._lock = _native.allocate_lock()

    def __len__(self) -> int:
        """Return the number of stored cookies (expired ones count until evicted)."""
        return len(self._cookies)

    def __iter__(self) -> Iterator[Cookie]:
        """Iterate over a snapshot of the live cookies, in the order they are sent (§5.4)."""
        now = time.time()
        with self._lock:
            self._evict_expired(now)
            stored = sorted(self._cookies.values(), key=_send_order)
        return iter([_snapshot(c) for c in stored])

    def __repr__(self) -> str:
        """Show the host and the number of cookies."""
        return f"<CookieJar {self._host or '(no host)'}: {len(self._cookies)} cookie(s)>"

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the value of the live cookie ``name``, or ``default``.

        When several cookies have that name (other paths or domains), the one
        sent first (longest path) wins.
        """
        for cookie in self:
            if cookie.name == name:
                return cookie.value
        return default

    def set(
        self,
        name: str,
        value: str,
        *,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        max_age: float | None = None,
    ) -> None:
        """Store a cookie as if the origin had sent it (it replaces one of same name, domain, path).

        Args:
            name: a token (RFC 6265 §4.1.1).
            value: cookie-octets, optionally in double quotes: no space, control,
                ``"``, ``,``, ``;`` or backslash inside.
            path: the path it is sent on and below; ``/`` = every request.
            domain: None = the jar's host only; a domain the host is in (or equals)
                sends it to that domain and its subdomains.
            secure: send it only over https.
            max_age: seconds it lives; None = for the session; ``<= 0`` removes it.

        Raises:
            BadArgument: a bad name, value, path, domain or max_age, or no ``domain``
                for a jar made without a host.
        """
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise BadArgument(f"cookie name {name!r} is not a token")
        if not isinstance(value, str) or not _COOKIE_VALUE.fullmatch(value):
            raise BadArgument(f"cookie value {value!r} has a byte a cookie value may not hold")
        if not isinstance(path, str) or not path.startswith("/") or _BAD_PATH.search(path):
            raise BadArgument(f"cookie path {path!r} is not '/'-rooted without ';' or controls")
        if max_age is not None and (
            isinstance(max_age, bool)
            or not isinstance(max_age, (int, float))
            or math.isnan(max_age)
        ):
            raise BadArgument(f"cookie max_age {max_age!r} is not a number of seconds")
        host = self._host
        if domain is None:
            if host is None:
                raise BadArgument("this cookie jar has no host: give the cookie a domain")
            cookie_domain, host_only = host, True
        else:
            cookie_domain, host_only = canonical_host(str(domain).removeprefix(".")), False
            if not cookie_domain or (host is not None and not domain_match(host, cookie_domain)):
                raise BadArgument(f"cookie domain {domain!r} does not cover the host {host!r}")
        now = time.time()
        expiry = None if max_age is None else now + min(max_age, _MAX_DELTA)
        with self._lock:
            self._put(name, value, cookie_domain, path, host_only, secure, False, expiry, now)

    def clear(self) -> None:
        """Remove every cookie."""
        with self._lock:
            self._cookies.clear()

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
        canonical = canonical_host(host)
        with self._lock:
            for line in set_cookie_values:
                self._store_one(canonical, request_path, line, now)
            self._evict_expired(now)

    def header_value(self, host: str, path: str, is_secure: bool, now: float) -> str | None:
        """Return the Cookie header value for a request to ``path``, or None if none applies.

        RFC 6265 §5.4: domain-match, path-match (§5.1.4), Secure only when
        ``is_secure``, expired cookies skipped and evicted; longer paths first,
        then earlier creation. ``now`` is ``time.time()`` seconds.
        """
        canonical = canonical_host(host)
        request_uri_path = uri_path(path) or "/"
        with self._lock:
            self._evict_expired(now)
            chosen = [
                cookie
                for cookie in self._cookies.values()
                # §5.4 step 1: host-only cookies need the canonical host to be
                # identical to the cookie's domain, others need a domain-match.
                if (
                    canonical == cookie.domain
                    if cookie.host_only
                    else domain_match(canonical, cookie.domain)
                )
                # §5.4 step 1: "The request-uri's path path-matches the cookie's path."
                and path_match(request_uri_path, cookie.path)
                # §5.4 step 1: secure-only cookies only over a "secure" protocol.
                and (is_secure or not cookie.secure)
            ]
        if not chosen:
            return None
        chosen.sort(key=_send_order)  # §5.4 step 2
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
        expiry, domain, path, secure, http_only = _attributes(unparsed, now)
        if domain:
            # §5.3 step 6: a Domain the request host does not domain-match
            # ignores the cookie entirely; one that matches is not host-only.
            if not domain_match(host, domain):
                return
            host_only = False
        else:
            # §5.3 step 6: no (or an empty) Domain -> host-only, domain = host.
            host_only, domain = True, host
        # §5.3 step 7: no valid Path -> default-path of the request-uri.
        cookie_path = path if path is not None else default_path(request_path)
        self._put(name, value, domain, cookie_path, host_only, secure, http_only, expiry, now)

    def _put(
        self,
        name: str,
        value: str,
        domain: str,
        path: str,
        host_only: bool,
        secure: bool,
        http_only: bool,
        expiry: float | None,
        now: float,
    ) -> None:
        """Store one cookie, replacing one of the same name, domain and path (lock held)."""
        key = (name, domain, path)
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
            name, value, domain, path, host_only, secure, http_only, expiry, creation, order
        )


class _Attributes(NamedTuple):
    """The cookie-avs of one set-cookie-string that the storage model (§5.3) uses."""

    expiry: float | None  # Max-Age over Expires; None: a session cookie
    domain: str | None  # canonical; None: no (or an empty) Domain
    path: str | None  # None: no valid Path (default-path applies)
    secure: bool
    http_only: bool


def _attributes(unparsed: str, now: float) -> _Attributes:
    """Parse the cookie-avs after a set-cookie-string's name-value-pair (§5.2).

    Unparsable or unknown attributes are ignored; ``now`` is ``time.time()``
    seconds, the base of Max-Age.
    """
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
            when = parse_date(av_value)
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
                domain = canonical_host(av_value.removeprefix("."))
        elif av_name == "path":
            # §5.2.4: a value not starting with "/" means default-path.
            path = av_value if av_value.startswith("/") else None
        elif av_name == "secure":
            secure = True  # §5.2.5
        elif av_name == "httponly":
            http_only = True  # §5.2.6
    # §5.3 step 3: Max-Age has precedence over Expires.
    expiry = max_age if max_age is not None else expires
    return _Attributes(expiry, domain, path, secure, http_only)


def _send_order(cookie: _Cookie) -> tuple[int, float, int]:
    """§5.4 step 2: longer paths first; equal lengths, earlier creation (then arrival) first."""
    return (-len(cookie.path), cookie.creation, cookie.order)


def _snapshot(cookie: _Cookie) -> Cookie:
    """Return the public, immutable view of a stored cookie."""
    return Cookie(
        cookie.name,
        cookie.value,
        cookie.domain,
        cookie.path,
        cookie.host_only,
        cookie.secure,
        cookie.http_only,
        cookie.expiry,
    )
