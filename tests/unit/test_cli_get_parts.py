"""The pure parts of `fusco get`: URL, proxy choice, redirects, write-out format, data pieces."""

from __future__ import annotations

import io

import pytest

from fusco_actor._cli_proxy import ProxySchemeError, bypasses_proxy, choose_proxy
from fusco_actor._cli_redirects import BadRedirect, Hop, TooManyRedirects, next_hop
from fusco_actor._cli_request import Body, build_body, build_headers, parse_url
from fusco_actor._cli_writeout import Stats, WriteOut
from fusco_actor._headers import Headers

# -- URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "destination", "target", "port"),
    [
        ("127.0.0.1:8080/x?y=1", "http://127.0.0.1:8080", "/x?y=1", 8080),
        ("localhost", "http://localhost", "/", 80),
        ("HTTPS://Example.TEST/a#frag", "https://Example.TEST", "/a", 443),
        ("http://[::1]:9/p", "http://[::1]:9", "/p", 9),
        ("127.0.0.1/?next=http://a/", "http://127.0.0.1", "/?next=http://a/", 80),
    ],
)
def test_parse_url(text: str, destination: str, target: str, port: int) -> None:
    url = parse_url(text)
    assert (url.destination, url.target, url.port) == (destination, target, port)
    assert url.credentials is None


def test_parse_url_takes_credentials_out_of_the_url() -> None:
    url = parse_url("http://al%40ice:p%3Aw@127.0.0.1:81/")
    assert url.credentials == b"al@ice:p:w"
    assert url.text == "http://127.0.0.1:81/"
    assert url.destination == "http://127.0.0.1:81"


@pytest.mark.parametrize("text", ["ftp://h/", "http://", "http://h:99999/", "file:///etc"])
def test_parse_url_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_url(text)


# -- proxies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "no_proxy", "bypass"),
    [
        ("example.test", "example.test", True),
        ("www.example.test", "example.test", True),
        ("www.example.test", ".example.test", True),
        ("badexample.test", "example.test", False),
        ("example.test", "other.test, example.test", True),
        ("anything", "*", True),
        ("anything", "*.test", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.1.2.4", False),
        ("::1", "::1", True),
        ("::1", "[::1]", True),
        ("127.0.0.1", "localhost", False),
        ("host", "", False),
        ("host", None, False),
    ],
)
def test_bypasses_proxy(host: str, no_proxy: str | None, bypass: bool) -> None:
    assert bypasses_proxy(host, no_proxy) is bypass


@pytest.mark.parametrize(
    ("scheme", "environ", "option", "proxy"),
    [
        ("http", {"http_proxy": "http://p:3128"}, None, "http://p:3128"),
        ("http", {"HTTP_PROXY": "http://p:3128"}, None, None),
        ("https", {"HTTPS_PROXY": "p:8"}, None, "http://p:8"),
        ("https", {"https_proxy": "http://a:8", "HTTPS_PROXY": "http://b:8"}, None, "http://a:8"),
        ("https", {"http_proxy": "http://p:3128"}, None, None),
        ("http", {"ALL_PROXY": "http://p"}, None, "http://p:1080"),
        ("http", {"http_proxy": "http://p:1"}, "http://x:2", "http://x:2"),
        ("http", {"http_proxy": "http://p:1"}, "", None),
        ("http", {"http_proxy": "http://p:1", "no_proxy": "h"}, None, None),
        ("http", {"no_proxy": "h"}, "http://x:2", None),
        ("http", {"http_proxy": "http://u:p@p:1/path"}, None, "http://u:p@p:1"),
    ],
)
def test_choose_proxy(
    scheme: str, environ: dict[str, str], option: str | None, proxy: str | None
) -> None:
    assert choose_proxy(scheme, "h", option, None, environ) == proxy


def test_noproxy_option_replaces_the_environment() -> None:
    environ = {"http_proxy": "http://p:1", "NO_PROXY": "*"}
    assert choose_proxy("http", "h", None, "other", environ) == "http://p:1"


def test_a_socks_proxy_is_refused() -> None:
    with pytest.raises(ProxySchemeError, match="all_proxy"):
        choose_proxy("http", "h", None, None, {"all_proxy": "socks5h://p:1080"})


# -- redirects -------------------------------------------------------------------------


def first_hop(method: str = "POST", url: str = "http://a.test/x/y") -> Hop:
    headers = [("Authorization", "Basic Zm9vOmJhcg=="), ("Accept", "*/*"),
               ("Content-Type", "text/plain")]  # fmt: skip
    return Hop.first(parse_url(url), method, headers, Body(data=b"body"))


def test_redirect_resolves_relative_locations() -> None:
    hop = next_hop(first_hop("GET"), 301, "../z?q", 50, trusted=False)
    assert hop.url.text == "http://a.test/z?q"
    assert hop.redirects == 1


def test_redirect_to_another_origin_drops_credentials_and_a_return_restores_them() -> None:
    away = next_hop(first_hop(), 307, "http://a.test:8080/", 50, trusted=False)
    assert [n for n, _ in away.headers] == ["Accept", "Content-Type"]
    assert away.body == Body(data=b"body")
    back = next_hop(away, 307, "http://a.test/", 50, trusted=False)
    assert back.headers[0] == ("Authorization", "Basic Zm9vOmJhcg==")


def test_redirect_limits() -> None:
    hop = first_hop("GET")
    for _ in range(3):
        hop = next_hop(hop, 302, "/again", 3, trusted=False)
    with pytest.raises(TooManyRedirects, match=r"maximum \(3\)"):
        next_hop(hop, 302, "/again", 3, trusted=False)
    for _ in range(100):
        hop = next_hop(hop, 302, "/again", -1, trusted=False)
    with pytest.raises(BadRedirect):
        next_hop(hop, 302, "mailto:x@a.test", -1, trusted=False)


def test_head_stays_head_on_303() -> None:
    assert next_hop(first_hop("HEAD"), 303, "/", 50, trusted=False).method == "HEAD"


# -- write-out -------------------------------------------------------------------------


def render(fmt: str, stats: Stats) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    WriteOut(fmt).write(stats, out, err)
    return out.getvalue(), err.getvalue()


def test_write_out_escapes_and_literals() -> None:
    stats = Stats(url="u", started=0.0, status=7)
    assert render(r"a\tb\\n%%{http_code}%{http_code}\n% \q", stats) == (
        "a\tb\\n%{http_code}007\n% \\q", ""
    )  # fmt: skip


def test_write_out_headers_and_streams() -> None:
    stats = Stats(url="u", started=0.0, headers=Headers([("x-a", "1"), ("x-a", "2")]))
    assert render("%header{X-A}%{stderr}%header{missing}|%{stdout}!", stats) == ("1, 2!", "|")


def test_write_out_times_are_relative_to_the_start() -> None:
    stats = Stats(url="u", started=10.0, request_started=10.5, connect_time=0.25,
                  head_at=11.0, ended_at=12.0, scheme="https", size_download=500)  # fmt: skip
    text, _ = render(
        "%{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total} "
        "%{time_redirect} %{speed_download}", stats,
    )  # fmt: skip
    assert text == "0.750000 0.750000 1.000000 2.000000 0.000000 250"


def test_an_unknown_variable_is_refused() -> None:
    with pytest.raises(ValueError, match="'time_namelookup'"):
        WriteOut("%{time_namelookup}")


# -- body and headers ------------------------------------------------------------------


def test_urlencode_forms() -> None:
    body = build_body([("urlencode", "a b"), ("urlencode", "=c&d"), ("urlencode", "n=ü/"),
                       ("urlencode", "x@=y")])  # fmt: skip
    assert body == Body(data=b"a%20b&c%26d&n=%C3%BC%2F&x@=y")


def test_json_pieces_are_appended_without_separator() -> None:
    assert build_body([("json", "[1,"), ("json", "2]")]) == Body(data=b"[1,2]", json=True)


def test_headers_order_and_replacement() -> None:
    headers = build_headers([("accept", "text/html"), ("X-Empty", ""), ("X-A", "ä")],
                            b"u:p", None, Body(data=b"x"))  # fmt: skip
    assert headers == [
        ("Authorization", "Basic dTpw"),
        ("User-Agent", headers[1][1]),
        ("accept", "text/html"),
        ("X-A", "Ã¤"),  # the UTF-8 bytes of the command line, as latin-1 text
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]
