"""`fusco get` through the real proxy.py: `-x`, `--noproxy` and the proxy environment variables.

The authenticating proxy tells the routes apart: through it with the wrong
credentials the answer is its 407; straight to the server it is the server's
200. Every URL and proxy is on 127.0.0.1.
"""

from __future__ import annotations

import json

import pytest

from fusco_actor._server import EmbeddedServer
from tests.cli.get_helpers import clean_env, fusco_get, one_line, trace
from tests.integration.conftest import PROXY_CREDENTIALS
from tests.integration.realservers import Certificates, ProxyPyServer, UvicornServer

pytestmark = pytest.mark.integration

HELLO = b"Hello, fusco!\n"


def status_of(stdout: bytes) -> int:
    return int(stdout.split(b" ", 2)[1])


def test_http_proxy_variable_is_used(
    auth_proxy: ProxyPyServer, embedded_server: EmbeddedServer
) -> None:
    wrong = fusco_get("-i", embedded_server.url + "/",
                      env=clean_env(http_proxy=auth_proxy.url("alice:nope")))  # fmt: skip
    assert wrong.returncode == 0, wrong.stderr
    assert status_of(wrong.stdout) == 407
    right = fusco_get(embedded_server.url + "/",
                      env=clean_env(http_proxy=auth_proxy.url(PROXY_CREDENTIALS)))  # fmt: skip
    assert (right.returncode, right.stdout) == (0, HELLO)


def test_a_proxy_without_scheme_is_http(
    auth_proxy: ProxyPyServer, embedded_server: EmbeddedServer
) -> None:
    proxy = f"alice:nope@127.0.0.1:{auth_proxy.port}"
    proc = fusco_get("-i", embedded_server.url + "/", env=clean_env(http_proxy=proxy))
    assert status_of(proc.stdout) == 407


def test_upper_case_http_proxy_is_ignored_as_curl_does(
    auth_proxy: ProxyPyServer, embedded_server: EmbeddedServer
) -> None:
    env = clean_env(HTTP_PROXY=auth_proxy.url("alice:nope"))
    proc = fusco_get(embedded_server.url + "/", env=env)
    assert (proc.returncode, proc.stdout) == (0, HELLO)


@pytest.mark.parametrize(
    ("name", "value"),
    [("no_proxy", "127.0.0.1"), ("NO_PROXY", "localhost, 127.0.0.0/8"), ("no_proxy", "*")],
)
def test_no_proxy_reaches_the_server_directly(
    auth_proxy: ProxyPyServer, embedded_server: EmbeddedServer, name: str, value: str
) -> None:
    env = clean_env(http_proxy=auth_proxy.url("alice:nope"), **{name: value})
    proc = fusco_get(embedded_server.url + "/", env=env)
    assert (proc.returncode, proc.stdout) == (0, HELLO)
    through_x = fusco_get("-x", auth_proxy.url("alice:nope"), embedded_server.url + "/", env=env)
    assert through_x.stdout == HELLO  # no_proxy applies to -x too, as in curl


def test_noproxy_option_replaces_the_variable(
    auth_proxy: ProxyPyServer, embedded_server: EmbeddedServer
) -> None:
    env = clean_env(http_proxy=auth_proxy.url("alice:nope"), NO_PROXY="*")
    proc = fusco_get("-i", "--noproxy", "other.test", embedded_server.url + "/", env=env)
    assert status_of(proc.stdout) == 407
    direct = fusco_get("--noproxy", "127.0.0.1", embedded_server.url + "/",
                       env=clean_env(http_proxy=auth_proxy.url("alice:nope")))  # fmt: skip
    assert direct.stdout == HELLO


def test_proxy_option_wins_over_the_environment(
    auth_proxy: ProxyPyServer, embedded_server: EmbeddedServer
) -> None:
    env = clean_env(http_proxy=auth_proxy.url("alice:nope"))
    proc = fusco_get("-x", auth_proxy.url(PROXY_CREDENTIALS), embedded_server.url + "/", env=env)
    assert (proc.returncode, proc.stdout) == (0, HELLO)
    off = fusco_get("-x", "", embedded_server.url + "/", env=env)
    assert (off.returncode, off.stdout) == (0, HELLO)


@pytest.mark.parametrize("name", ["https_proxy", "HTTPS_PROXY", "all_proxy"])
def test_https_proxy_variable_tunnels_to_an_https_server(
    auth_proxy: ProxyPyServer, tls_server: UvicornServer, certs: Certificates, name: str
) -> None:
    cacert = str(certs.directory / "ca.pem")
    env = clean_env(**{name: auth_proxy.url(PROXY_CREDENTIALS)})
    proc = fusco_get("-v", "--cacert", cacert, tls_server.url + "/echo?via=tunnel", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["scheme"], report["query"]) == ("https", "via=tunnel")
    sent = trace(proc.stderr, ">")
    assert sent[0] == f"CONNECT 127.0.0.1:{tls_server.port} HTTP/1.1"
    assert f"Connected to 127.0.0.1 (127.0.0.1) port {auth_proxy.port}" in trace(proc.stderr, "*")
    refused = fusco_get("--cacert", cacert, tls_server.url + "/echo",
                        env=clean_env(**{name: auth_proxy.url("alice:nope")}))  # fmt: skip
    assert refused.returncode == 1
    assert one_line(refused).startswith("fusco: ProxyError: ")


def test_http_proxy_is_not_used_for_https(
    auth_proxy: ProxyPyServer, tls_server: UvicornServer, certs: Certificates
) -> None:
    env = clean_env(http_proxy=auth_proxy.url("alice:nope"))
    proc = fusco_get("--cacert", str(certs.directory / "ca.pem"), tls_server.url + "/echo",
                     env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scheme"] == "https"


def test_a_socks_proxy_is_refused_with_a_clear_message(embedded_server: EmbeddedServer) -> None:
    env = clean_env(http_proxy="socks5://127.0.0.1:1080")
    proc = fusco_get(embedded_server.url + "/", env=env)
    assert proc.returncode == 1
    assert one_line(proc) == (
        "fusco: ProxySchemeError: http_proxy: 'socks5://127.0.0.1:1080': "
        "fusco_actor speaks to http:// proxies only"
    )
