"""The third-party peers, each written the way its documentation recommends for speed.

urllib3 and httpx: one pool / ``Client`` shared by the threads (both are
documented thread-safe). aiohttp: one ``ClientSession`` whose connector allows
``conns`` connections, ``conns`` concurrent tasks, on uvloop when installed.
pycurl: a reused ``Curl`` handle for one connection, ``CurlMulti`` with one
easy handle per connection otherwise; ``Expect:`` is cleared so a POST does not
wait for ``100 Continue``. Functions have the :mod:`harness` client signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from harness import (
    TIMEOUT,
    BenchError,
    Finish,
    Meter,
    Scenario,
    check,
    host_port,
    join_thread,
    run_threads,
    then_close,
)

__all__ = ["aiohttp_session", "httpx_client", "new_loop", "pycurl_client", "urllib3_pool"]


def urllib3_pool(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """urllib3: one ``HTTPConnectionPool(maxsize=conns, block=True)`` shared by the threads."""
    import urllib3  # noqa: PLC0415

    host, port = host_port(url)
    pool = urllib3.HTTPConnectionPool(host, port, maxsize=conns, block=True, timeout=TIMEOUT)
    method, path, body = scenario.method, scenario.path, scenario.body or None

    def make() -> Callable[[], int]:
        def one() -> int:
            response = pool.request(method, path, body=body)
            check(response.status, len(response.data), scenario)
            return 1

        return one

    return then_close(run_threads(make, conns, meter), pool.close)


def httpx_client(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """httpx: one ``httpx.Client`` (thread-safe, pooled) shared by the threads."""
    import httpx  # noqa: PLC0415

    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    client = httpx.Client(base_url=url, limits=limits, timeout=TIMEOUT)
    method, path, body = scenario.method, scenario.path, scenario.body or None

    def make() -> Callable[[], int]:
        def one() -> int:
            response = client.request(method, path, content=body)
            check(response.status_code, len(response.content), scenario)
            return 1

        return one

    return then_close(run_threads(make, conns, meter), client.close)


def new_loop() -> asyncio.AbstractEventLoop:
    """Return a new uvloop event loop when uvloop is installed, else an asyncio one."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()  # type: ignore[no-any-return]


def on_new_loop(main: Callable[[], Coroutine[Any, Any, None]], meter: Meter) -> Finish:
    """Run ``main()`` on a new loop (uvloop if installed) in a thread; a failure ends the cell."""

    def run() -> None:
        loop = new_loop()
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # reported by measure()
            meter.fail(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return join_thread(thread, meter)


def aiohttp_session(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """aiohttp: one ``ClientSession`` (connector limit=conns), ``conns`` tasks, uvloop if any."""
    import aiohttp  # noqa: PLC0415

    meter.slots(conns)
    method, path, body = scenario.method, scenario.path, scenario.body or None

    async def task(session: aiohttp.ClientSession, slot: int) -> None:
        while not meter.stop:
            async with session.request(method, path, data=body) as response:
                check(response.status, len(await response.read()), scenario)
            meter.counts[slot] += 1

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=conns)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(task(session, i) for i in range(conns)))

    return on_new_loop(main, meter)


def _curl_handle(url: str, scenario: Scenario) -> Any:
    import pycurl  # noqa: PLC0415

    handle = pycurl.Curl()
    handle.setopt(pycurl.URL, url + scenario.path)
    handle.setopt(pycurl.TIMEOUT, int(TIMEOUT))
    handle.setopt(pycurl.HTTPHEADER, ["Expect:"])  # no 100-continue round trip
    if scenario.body:
        handle.setopt(pycurl.POSTFIELDS, scenario.body)  # referenced, not copied, per request
    handle.buf = io.BytesIO()
    handle.setopt(pycurl.WRITEDATA, handle.buf)
    return handle


def _curl_check(handle: Any, scenario: Scenario) -> None:
    import pycurl  # noqa: PLC0415

    buf = handle.buf
    check(handle.getinfo(pycurl.RESPONSE_CODE), buf.tell(), scenario)
    buf.seek(0)
    buf.truncate()


def pycurl_client(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """pycurl: a reused ``Curl`` handle (1 connection) or ``CurlMulti`` with ``conns`` handles."""
    if conns == 1:

        def make() -> Callable[[], int]:
            handle = _curl_handle(url, scenario)

            def one() -> int:
                handle.perform()
                _curl_check(handle, scenario)
                return 1

            return one

        return run_threads(make, 1, meter)
    meter.slots(1)
    thread = threading.Thread(target=_curl_multi, args=(url, scenario, conns, meter), daemon=True)
    thread.start()
    return join_thread(thread, meter)


def _curl_multi(url: str, scenario: Scenario, conns: int, meter: Meter) -> None:
    import pycurl  # noqa: PLC0415

    multi = pycurl.CurlMulti()
    handles = [_curl_handle(url, scenario) for _ in range(conns)]
    try:
        for handle in handles:
            multi.add_handle(handle)
        while not meter.stop:
            while multi.perform()[0] == pycurl.E_CALL_MULTI_PERFORM:
                pass
            while True:
                queued, done, failed = multi.info_read()
                if failed:
                    raise BenchError(f"pycurl: {failed[0][2]}")
                for handle in done:
                    multi.remove_handle(handle)
                    _curl_check(handle, scenario)
                    multi.add_handle(handle)
                meter.counts[0] += len(done)
                if not queued:
                    break
            multi.select(1.0)
    except BaseException as exc:  # reported by the caller
        meter.fail(exc)
    finally:
        for handle in handles:
            with contextlib.suppress(pycurl.error):
                multi.remove_handle(handle)
            handle.close()
        multi.close()
