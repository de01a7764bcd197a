"""The pure connect parts shared by both engines: what a lost TLS connection's error maps to."""

from __future__ import annotations

import ssl

import pytest

from fusco_actor import TLSError
from fusco_actor._connect_parts import tls_failure


def test_a_tls_alert_on_a_read_is_a_tls_error_naming_the_alert() -> None:
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    failure = tls_failure(alert)
    assert isinstance(failure, TLSError)
    assert str(failure) == "receive: TLS failure: TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert failure.__cause__ is alert


@pytest.mark.parametrize(
    "exc",
    [
        None,
        ConnectionResetError(104, "Connection reset by peer"),
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
        ssl.SSLZeroReturnError(6, "TLS/SSL connection has been closed (EOF)"),
    ],
    ids=["clean", "reset", "ragged-eof", "close-notify"],
)
def test_a_close_is_no_tls_failure(exc: BaseException | None) -> None:
    assert tls_failure(exc) is None
