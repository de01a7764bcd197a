"""Tests of fusco_actor._cookies: the RFC 6265 cookie jar."""

from __future__ import annotations

import calendar
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fusco_actor._cookie_rules import default_path, domain_match, parse_date, path_match
from fusco_actor._cookies import CookieJar

HOST = "example.com"
NOW = 1_700_000_000.0
PAST = "Thu, 01 Jan 1970 00:00:00 GMT"
FUTURE = "Fri, 31 Dec 9999 23:59:59 GMT"


def jar_with(*values: str, path: str = "/", host: str = HOST, now: float = NOW) -> CookieJar:
    jar = CookieJar()
    jar.store(host, path, False, values, now)
    return jar


def sent(jar: CookieJar, path: str = "/", host: str = HOST, secure: bool = False) -> str | None:
    return jar.header_value(host, path, secure, NOW)


# --- §5.1.4 default-path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("request_path", "expected"),
    [
        ("", "/"),
        ("/", "/"),
        ("/a", "/"),
        ("/a/", "/a"),
        ("/a/b", "/a"),
        ("/a/b/", "/a/b"),
        ("/a/b/c.html", "/a/b"),
        ("a/b/c", "/"),  # does not start with "/"
        ("*", "/"),
        ("/a/b?x=1", "/a"),  # query stripped
        ("/a?x=/y/z", "/"),  # slashes in the query do not count
        ("/a/b#frag/x", "/a"),
        ("?x=/y/z", "/"),
    ],
)
def test_default_path(request_path: str, expected: str) -> None:
    assert default_path(request_path) == expected


def test_default_path_used_when_no_path_attribute() -> None:
    jar = jar_with("a=1", path="/docs/page.html")
    assert sent(jar, "/docs") == "a=1"
    assert sent(jar, "/docs/other") == "a=1"
    assert sent(jar, "/") is None
    assert sent(jar, "/docsx") is None


# --- §5.1.4 path-match ------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_path", "cookie_path", "expected"),
    [
        ("/", "/", True),
        ("/foo", "/", True),
        ("/foo", "/foo", True),  # identical
        ("/foo/", "/foo", True),  # next char of the request path is "/"
        ("/foo/bar", "/foo", True),
        ("/foo/bar", "/foo/", True),  # cookie-path is a prefix ending in "/"
        ("/foo/", "/foo/", True),
        ("/foobar", "/foo", False),  # prefix but not at a "/" boundary
        ("/fo", "/foo", False),
        ("/bar", "/foo", False),
        ("/", "/foo", False),
        ("/foo", "/foo/", False),
        ("/FOO", "/foo", False),  # paths are case-sensitive
    ],
)
def test_path_match(request_path: str, cookie_path: str, expected: bool) -> None:
    assert path_match(request_path, cookie_path) is expected
    jar = jar_with(f"a=1; Path={cookie_path}")
    assert (sent(jar, request_path) == "a=1") is expected


# --- §5.1.3 domain-match ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "domain", "expected"),
    [
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", True),
        ("a.b.example.com", "example.com", True),
        ("example.com", "www.example.com", False),
        ("badexample.com", "example.com", False),  # no "." before the suffix
        ("example.com", "com", True),
        ("192.168.0.1", "192.168.0.1", True),
        ("192.168.0.1", "168.0.1", False),  # IP addresses only match exactly
        ("::1", "::1", True),
        ("fe80::1", "1", False),
    ],
)
def test_domain_match(host: str, domain: str, expected: bool) -> None:
    assert domain_match(host, domain) is expected


# --- §5.1.1 dates -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),  # RFC 1123
        ("Sunday, 06-Nov-94 08:49:37 GMT", (1994, 11, 6, 8, 49, 37)),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", (1994, 11, 6, 8, 49, 37)),  # asctime
        ("Wed, 09 Jun 2021 10:18:14 GMT", (2021, 6, 9, 10, 18, 14)),
        ("09-jun-2021 10:18:14", (2021, 6, 9, 10, 18, 14)),
        ("Thu, 01 Jan 1970 00:00:00 GMT", (1970, 1, 1, 0, 0, 0)),
        ("Wed, 31 Dec 1969 23:59:59 GMT", (1969, 12, 31, 23, 59, 59)),
        ("Tue, 01 Jan 30 00:00:00 GMT", (2030, 1, 1, 0, 0, 0)),  # 00-69 -> 20xx
        ("Fri, 31 Dec 9999 23:59:59 GMT", (9999, 12, 31, 23, 59, 59)),
        ("Mon, 29 Feb 2016 1:2:3 GMT", (2016, 2, 29, 1, 2, 3)),
    ],
)
def test_parse_date(text: str, expected: tuple[int, int, int, int, int, int]) -> None:
    assert parse_date(text) == calendar.timegm(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "Wed, 09 Jun 2021",  # no time
        "09 Jun 10:18:14",  # no year
        "Wed, 31 Feb 2021 10:18:14 GMT",  # no such day
        "Wed, 09 Jun 2021 24:00:00 GMT",
        "Wed, 09 Jun 2021 10:60:00 GMT",
        "Wed, 09 Xyz 2021 10:18:14 GMT",
        "Wed, 09 Jun 1600 10:18:14 GMT",  # before 1601
        "Sun, 31 Dec 1600 23:59:59 GMT",
        "Wed, 32 Jun 2021 10:18:14 GMT",
    ],
)
def test_parse_date_rejects(text: str) -> None:
    assert parse_date(text) is None


# --- §5.2 parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("set_cookie", "expected"),
    [
        ("a=1", "a=1"),
        ("  a = b c ; Path=/", "a=b c"),  # WSP around name and value stripped
        ("a=b=c", "a=b=c"),  # split at the first "="
        ("a=", "a="),  # empty value is fine
        ('a="quoted"', 'a="quoted"'),
        ("a=1; Foo=bar; SameSite=Lax", "a=1"),  # unknown attributes ignored
        ("a=1;;; ;Path=/", "a=1"),
        ("noequals", None),  # no "=" -> ignored
        ("noequals; a=1", None),
        ("=x", None),  # empty name -> ignored
        ("  =x", None),
        ("", None),
        ("a=1\x00", None),  # CTL in the value (RFC 6265bis)
        ("a\x1b=1", None),
    ],
)
def test_name_value_parsing(set_cookie: str, expected: str | None) -> None:
    assert sent(jar_with(set_cookie)) == expected


@pytest.mark.parametrize(
    ("set_cookie", "sent_for", "not_sent_for"),
    [
        ("a=1; PATH=/x", "/x", "/"),  # attribute names are case-insensitive
        ("a=1; path = /x ", "/x", "/"),
        ("a=1; Path=/x; Path=/y", "/y", "/x"),  # the last attribute wins
        ("a=1; Path=relative", "/d", "/"),  # bad Path -> default-path /d
        ("a=1; Path=", "/d", "/"),
        ("a=1; Path=/x; Path=bad", "/d", "/x"),  # §5.2.4 appends default-path
    ],
)
def test_path_attribute(set_cookie: str, sent_for: str, not_sent_for: str) -> None:
    jar = jar_with(set_cookie, path="/d/page")
    assert sent(jar, sent_for) == "a=1"
    assert sent(jar, not_sent_for) is None


@pytest.mark.parametrize(
    "set_cookie",
    [
        "a=1; Expires=garbage",
        "a=1; Max-Age=abc",
        "a=1; Max-Age=1.5",
        "a=1; Max-Age=+5",
        "a=1; Max-Age=",
        "a=1; Max-Age=-",
        "a=1; Max-Age=\u0662",  # a non-ASCII digit
        "a=1; Domain=",
        "a=1; Secure=no; HttpOnly=yes",  # flags ignore their values
        "a=1; Expires",
    ],
)
def test_unparsable_attributes_ignored(set_cookie: str) -> None:
    jar = jar_with(set_cookie)
    assert len(jar) == 1
    assert jar.header_value(HOST, "/", True, NOW + 10**9) == "a=1"  # a session cookie


# --- §5.3 storage -----------------------------------------------------------------


def test_replace_same_name_domain_path_keeps_creation_time() -> None:
    jar = CookieJar()
    jar.store(HOST, "/", False, ["a=1", "b=2"], NOW)
    jar.store(HOST, "/", False, ["a=3"], NOW + 5)
    assert len(jar) == 2
    assert sent(jar) == "a=3; b=2"  # a keeps its earlier creation time


def test_same_name_other_path_is_another_cookie() -> None:
    jar = jar_with("a=1; Path=/", "a=2; Path=/x")
    assert len(jar) == 2
    assert sent(jar, "/x") == "a=2; a=1"
    assert sent(jar, "/") == "a=1"


def test_domain_and_host_only_with_same_domain_replace() -> None:
    jar = jar_with("a=1", "a=2; Domain=example.com")
    assert len(jar) == 1
    assert sent(jar) == "a=2"


@pytest.mark.parametrize(
    "deleting",
    [
        "a=x; Max-Age=0",
        "a=x; Max-Age=-1",
        "a=x; max-age=-99999999999999999999999",
        f"a=x; Expires={PAST}",
        "a=x; Expires=Wed, 31 Dec 1969 23:59:59 GMT",
        f"a=x; Expires={FUTURE}; Max-Age=0",  # Max-Age beats Expires
        f"a=x; Max-Age=0; Expires={FUTURE}",  # ... whatever the order
    ],
)
def test_expired_cookie_deletes_the_stored_one(deleting: str) -> None:
    jar = jar_with("a=1", "b=2")
    jar.store(HOST, "/", False, [deleting], NOW + 1)
    assert len(jar) == 1
    assert sent(jar) == "b=2"


def test_expired_cookie_alone_is_not_stored() -> None:
    assert len(jar_with("a=1; Max-Age=0", f"b=2; Expires={PAST}")) == 0


@pytest.mark.parametrize(
    "set_cookie",
    [f"a=1; Max-Age=100; Expires={PAST}", f"a=1; Expires={PAST}; Max-Age=100"],
)
def test_max_age_beats_past_expires(set_cookie: str) -> None:
    jar = jar_with(set_cookie)
    assert jar.header_value(HOST, "/", False, NOW + 99) == "a=1"
    assert jar.header_value(HOST, "/", False, NOW + 100) is None


def test_expiry_evicts_on_header_value() -> None:
    jar = jar_with("a=1; Max-Age=10", f"b=2; Expires={formatdate(NOW + 20, usegmt=True)}", "c=3")
    assert jar.header_value(HOST, "/", False, NOW + 9) == "a=1; b=2; c=3"
    assert jar.header_value(HOST, "/", False, NOW + 10) == "b=2; c=3"
    assert len(jar) == 2
    assert jar.header_value(HOST, "/", False, NOW + 25) == "c=3"
    assert len(jar) == 1


def test_huge_max_age_is_kept() -> None:
    jar = jar_with("a=1; Max-Age=" + "9" * 400)
    assert jar.header_value(HOST, "/", False, NOW + 10**12) == "a=1"


# --- §5.3 step 6 Domain -----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("example.com", "other.com"),
        ("example.com", "www.example.com"),  # a subdomain of the request host
        ("example.com", "ample.com"),
        ("192.168.0.1", "168.0.1"),
        ("[::1]", "::2"),
    ],
)
def test_domain_for_another_host_ignored(host: str, domain: str) -> None:
    jar = jar_with(f"a=1; Domain={domain}", "b=2", host=host)
    assert len(jar) == 1
    assert sent(jar, host=host) == "b=2"


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("example.com", "example.com"),
        ("example.com", ".example.com"),  # leading "." stripped
        ("Example.COM", "EXAMPLE.com"),  # case-insensitive
        ("www.example.com", "example.com"),
        ("192.168.0.1", "192.168.0.1"),
        ("[::1]", "::1"),
        ("[::1]", "[::1]"),
    ],
)
def test_domain_for_the_same_host_accepted(host: str, domain: str) -> None:
    jar = jar_with(f"a=1; Domain={domain}", host=host)
    assert len(jar) == 1
    assert sent(jar, host=host) == "a=1"


def test_domain_cookie_applies_to_subdomains_host_only_does_not() -> None:
    jar = jar_with("a=1; Domain=example.com", "b=2")
    assert sent(jar) == "a=1; b=2"
    assert sent(jar, host="www.example.com") == "a=1"
    assert sent(jar, host="other.com") is None


@pytest.mark.parametrize("host", ["EXAMPLE.com", "example.COM"])
def test_host_is_case_insensitive(host: str) -> None:
    assert sent(jar_with("a=1"), host=host) == "a=1"


def test_bracketed_ipv6_host() -> None:
    jar = jar_with("a=1", host="[::1]")
    assert sent(jar, host="[::1]") == "a=1"
    assert sent(jar, host="::1") == "a=1"


# --- §5.4 Cookie header -----------------------------------------------------------


def test_secure_not_sent_over_http() -> None:
    jar = jar_with("a=1; Secure", "b=2", "c=3; secure")
    assert jar.header_value(HOST, "/", False, NOW) == "b=2"
    assert jar.header_value(HOST, "/", True, NOW) == "a=1; b=2; c=3"


def test_http_only_is_sent() -> None:
    assert sent(jar_with("a=1; HttpOnly")) == "a=1"


def test_order_longer_path_first_then_earlier_creation() -> None:
    jar = CookieJar()
    jar.store(HOST, "/", False, ["root1=1; Path=/"], NOW)
    jar.store(HOST, "/", False, ["ab=1; Path=/a/b", "a=1; Path=/a"], NOW + 1)
    jar.store(HOST, "/", False, ["root2=1; Path=/"], NOW + 2)
    jar.store(HOST, "/", False, ["ab2=1; Path=/a/b"], NOW + 3)
    jar.store(HOST, "/", False, ["root0=1; Path=/"], NOW + 4)
    assert sent(jar, "/a/b/c") == "ab=1; ab2=1; a=1; root1=1; root2=1; root0=1"
    assert sent(jar, "/a") == "a=1; root1=1; root2=1; root0=1"


def test_same_creation_time_keeps_arrival_order() -> None:
    assert sent(jar_with("z=1", "y=2", "x=3")) == "z=1; y=2; x=3"


def test_query_stripped_when_matching() -> None:
    jar = jar_with("a=1", path="/a/b?x=/y/z")  # default-path /a
    assert sent(jar, "/a?q=1") == "a=1"
    assert sent(jar, "/a/c?q=/") == "a=1"
    assert sent(jar, "/?x=/a/") is None
    assert sent(jar, "/ab#/a/") is None


def test_nothing_applies() -> None:
    assert sent(CookieJar()) is None
    assert len(CookieJar()) == 0


# --- properties ------------------------------------------------------------------

segment = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="/?#;", exclude_categories=["Cc"]),
    min_size=1,
    max_size=5,
).map(str.strip)
cookie_paths = st.lists(segment.filter(bool), max_size=4).map(lambda segs: "/" + "/".join(segs))
request_paths = st.lists(st.sampled_from(["", "a", "b", "ab", "a b"]), max_size=4).map(
    lambda segs: "/" + "/".join(segs)
)


@given(cookie_paths, request_paths)
def test_sent_exactly_where_the_path_matches(cookie_path: str, request_path: str) -> None:
    jar = jar_with(f"a=1; Path={cookie_path}")
    assert sent(jar, cookie_path) == "a=1"
    assert sent(jar, cookie_path.rstrip("/") + "/x") == "a=1"
    assert sent(jar, cookie_path + "?q=1") == "a=1"
    boundary = cookie_path if cookie_path.endswith("/") else cookie_path + "/"
    matches = request_path == cookie_path or request_path.startswith(boundary)
    assert (sent(jar, request_path) == "a=1") is matches


@given(request_paths)
def test_default_path_cookie_sent_back_to_its_request_path(request_path: str) -> None:
    assert sent(jar_with("a=1", path=request_path), request_path) == "a=1"


@given(
    host=st.text(max_size=20),
    request_path=st.text(max_size=20),
    is_secure=st.booleans(),
    values=st.lists(st.text(max_size=60), max_size=5),
    now=st.floats(allow_nan=False),
)
def test_store_never_raises(
    host: str, request_path: str, is_secure: bool, values: list[str], now: float
) -> None:
    jar = CookieJar()
    jar.store(host, request_path, is_secure, values, now)
    header = jar.header_value(host, request_path, is_secure, now)
    assert header is None or ("\r" not in header and "\n" not in header)


attribute_text = st.lists(
    st.sampled_from(
        ["Path", "Domain", "Expires", "Max-Age", "Secure", "HttpOnly", "=", ";", " ", "/", "-"]
    )
    | st.text(max_size=8),
    max_size=12,
).map("".join)


@given(attribute_text)
def test_attributes_never_raise(attributes: str) -> None:
    jar = CookieJar()
    jar.store(HOST, "/a/b", True, ["a=1;" + attributes], NOW)
    assert len(jar) <= 1


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_max_age_sign_decides(delta: int) -> None:
    jar = jar_with(f"a=1; Max-Age={delta}")
    assert len(jar) == (1 if delta > 0 else 0)


@given(st.integers(min_value=-11644473600, max_value=253402300799))  # 1601-01-01 to 9999-12-31
def test_rfc1123_dates_round_trip(timestamp: int) -> None:
    assert parse_date(formatdate(timestamp, usegmt=True)) == timestamp
