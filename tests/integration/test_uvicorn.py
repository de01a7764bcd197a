"""Plain HTTP against a real server nobody here wrote: uvicorn, started by a fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import fusco_actor
from tests.integration.realservers import UvicornServer, echo, fetch

integration = pytest.mark.integration


@integration
def test_get_reaches_uvicorn_with_host_and_query(http_server: UvicornServer) -> None:
    with fusco_actor.start(http_server.url) as client:
        report = echo(client, "/echo?q=fusco")
    assert report["scheme"] == "http"
    assert (report["method"], report["path"], report["query"]) == ("GET", "/echo", "q=fusco")
    assert ["host", f"127.0.0.1:{http_server.port}"] in report["headers"]


@integration
def test_post_body_reaches_uvicorn_whole(http_server: UvicornServer) -> None:
    body = b"0123456789abcdefghijklmnopqrstuvwxyz" * 3000  # 108 KiB
    with fusco_actor.start(http_server.url) as client:
        report = echo(client, method="POST", body=body)
    assert report["method"] == "POST"
    assert report["body"] == body.decode()
    assert ["content-length", str(len(body))] in report["headers"]


@integration
def test_chunked_response_from_uvicorn_is_reassembled(http_server: UvicornServer) -> None:
    with fusco_actor.start(http_server.url) as client:
        resp = fetch(client, "/chunked?parts=7")
    assert resp.status == 200
    assert resp.headers["transfer-encoding"] == "chunked"
    assert resp.body == b"".join(b"part-%d;" % i for i in range(7))


@integration
def test_chunked_upload_from_a_generator_is_echoed_by_uvicorn(http_server: UvicornServer) -> None:
    def pieces() -> Iterator[bytes]:
        for i in range(50):
            yield b"%04d" % i

    with fusco_actor.start(http_server.url) as client:
        resp = fetch(client, "/chunked", "POST", body=pieces())
    assert resp.body == b"".join(b"%04d" % i for i in range(50))


@integration
def test_keep_alive_requests_to_uvicorn_share_one_connection(http_server: UvicornServer) -> None:
    infos: list[fusco_actor.ConnectInfo] = []
    with fusco_actor.start(http_server.url, on_connect=infos.append) as client:
        reports = [echo(client), echo(client, method="POST", body=b"x"), echo(client)]
        blocking = fusco_actor.request(client, "/ping", "GET", [], b"", 5.0)
    assert len({tuple(r["client"]) for r in reports}) == 1  # one client port: one connection
    assert blocking.status == 200
    assert len(infos) == 1


@integration
def test_head_to_uvicorn_has_no_body_and_keeps_the_connection(http_server: UvicornServer) -> None:
    with fusco_actor.start(http_server.url) as client:
        head = fetch(client, "/ping", "HEAD")
        after = fetch(client, "/ping")
    assert head.status == after.status == 200
    assert head.body == b""
    assert after.body


@integration
def test_a_pool_spreads_requests_over_uvicorn(http_server: UvicornServer) -> None:
    with fusco_actor.Pool.start(http_server.url, max_clients=4) as pool:
        futures = [pool.request("/echo", timeout=10.0) for _ in range(40)]
        statuses = [f.get(timeout=15.0).status for f in futures]
    assert statuses == [200] * 40
