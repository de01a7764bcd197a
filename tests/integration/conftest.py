"""Fixtures for the integration tests: trustme certificates, uvicorn over TLS, proxy.py.

The servers are session-scoped subprocesses, started the first time a test
asks for them and terminated at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.integration import interop_servers
from tests.integration.realservers import Certificates, ProxyPyServer, UvicornServer

if TYPE_CHECKING:
    import ssl

PROXY_USER = "alice"
PROXY_PASSWORD = "p@ss w:0rd"  # a test credential that needs percent-encoding in a URL
PROXY_CREDENTIALS = "alice:p%40ss%20w%3A0rd"  # the same, as URL user-info


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """trustme CA, server certificates (good, expired, other name) and a client certificate."""
    return Certificates.create(tmp_path_factory.mktemp("certs"))


def _uvicorn(
    tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: object
) -> Iterator[UvicornServer]:
    log = tmp_path_factory.mktemp(name) / "uvicorn.log"
    server = UvicornServer(log, **kwargs)  # type: ignore[arg-type]
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates
) -> Iterator[UvicornServer]:
    """uvicorn over TLS with a certificate for 127.0.0.1, ::1 and localhost."""
    yield from _uvicorn(tmp_path_factory, "tls", key_and_cert=certs.key_and_cert("server"))


@pytest.fixture(scope="session")
def expired_tls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates
) -> Iterator[UvicornServer]:
    """uvicorn over TLS with a certificate that expired yesterday."""
    yield from _uvicorn(tmp_path_factory, "expired", key_and_cert=certs.key_and_cert("expired"))


@pytest.fixture(scope="session")
def wrong_name_tls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates
) -> Iterator[UvicornServer]:
    """uvicorn over TLS with a trusted certificate for other.example.test only."""
    yield from _uvicorn(
        tmp_path_factory, "wrongname", key_and_cert=certs.key_and_cert("wrong_name")
    )


@pytest.fixture(scope="session")
def mtls_server(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates
) -> Iterator[UvicornServer]:
    """uvicorn over TLS that requires a client certificate from the client CA."""
    yield from _uvicorn(
        tmp_path_factory,
        "mtls",
        key_and_cert=certs.key_and_cert("server"),
        client_ca=certs.directory / "client-ca.pem",
    )


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornServer]:
    """uvicorn over plain HTTP."""
    yield from _uvicorn(tmp_path_factory, "plain")


def _proxy(
    tmp_path_factory: pytest.TempPathFactory, basic_auth: str | None
) -> Iterator[ProxyPyServer]:
    directory = tmp_path_factory.mktemp("proxy")
    proxy = ProxyPyServer(directory / "proxy.log", directory, basic_auth)
    try:
        yield proxy.start()
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyPyServer]:
    """proxy.py requiring ``Proxy-Authorization: Basic`` for PROXY_USER:PROXY_PASSWORD."""
    yield from _proxy(tmp_path_factory, f"{PROXY_USER}:{PROXY_PASSWORD}")


@pytest.fixture(scope="session")
def open_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyPyServer]:
    """proxy.py without authentication."""
    yield from _proxy(tmp_path_factory, None)


@pytest.fixture
def trusting_context(certs: Certificates) -> ssl.SSLContext:
    """A fresh verifying client context that trusts the test CA."""
    return certs.client_context()


# The interop results table (INTEROP_TABLE=FILE): hooks defined beside the interop launchers.
pytest_runtest_logreport = interop_servers.pytest_runtest_logreport
pytest_terminal_summary = interop_servers.pytest_terminal_summary
