"""FuscoUser checks run in a child process: ``python -m tests.integration.locust_cases CASE ARG``.

``import locust`` monkey-patches the whole process with gevent, which must not
happen to the pytest process that runs the rest of the suite; so
``test_locust.py`` runs each case here in a fresh interpreter and checks its
exit status. A case raises (an ``AssertionError``, say) to fail; the exit
status is then 1 and the traceback is on stderr.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import locust  # monkey-patches the process, as the locust command does (before fusco_actor)
import pykka
from gevent._hub_local import get_hub_if_exists
from locust import task
from locust.env import Environment
from locust.exception import CatchResponseError, LocustError, ResponseError, StopTest

import fusco_actor
from fusco_actor import BadArgument, BadOption, ConnectError, RequestTimeout
from fusco_actor._native import gevent_patched
from fusco_actor._scheduler import get_scheduler
from fusco_actor.contrib.locust import FuscoSession, FuscoUser, HTTPStatusError

assert locust.__version__

Event = dict[str, Any]
CASES: dict[str, Callable[[list[str]], None]] = {}

#: A wait that blocked the hub for one /delay would stop the ticker this long.
DELAY = 0.5  # seconds: the slow route's delay
USERS = 50


def case(function: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Register a case under its name without the ``case_`` prefix."""
    CASES[function.__name__.removeprefix("case_")] = function
    return function


def recording_environment() -> tuple[Environment, list[Event]]:
    """Return an environment and the list its ``request`` events are appended to."""
    env = Environment()
    events: list[Event] = []

    def record(**kwargs: Any) -> None:
        events.append(kwargs)

    env.events.request.add_listener(record)  # type: ignore[no-untyped-call]
    return env, events


def closed_port() -> int:
    """Return a loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def only(events: list[Event]) -> Event:
    """Return the one event recorded, and forget it."""
    assert len(events) == 1, events
    return events.pop()


def no_actor_left() -> None:
    """Fail if any actor still runs."""
    assert pykka.ActorRegistry.get_all() == [], pykka.ActorRegistry.get_all()


@case
def case_events(args: list[str]) -> None:
    """The request event's fields for successes, statuses, errors and catch_response."""
    url = args[0]
    env, events = recording_environment()

    class Api(FuscoUser):
        host = url

        def context(self) -> dict[str, Any]:
            return {"user": "u1"}

    user = Api(env)
    before = time.time()
    resp = user.client.get("/bytes/100", context={"step": 1})
    assert resp is not None and resp.status == 200 and len(resp.body) == 100
    event = only(events)
    assert event["request_type"] == "GET"
    assert event["name"] == "/bytes/100"
    assert event["response_length"] == 100
    assert event["response_time"] > 0.0
    assert event["exception"] is None
    assert event["response"] is resp
    assert event["context"] == {"user": "u1", "step": 1}
    assert before <= event["start_time"] <= time.time()
    assert event["url"] == url + "/bytes/100"

    user.client.request(b"/bytes/7", b"get", name="/bytes/[n]")
    event = only(events)
    assert (event["name"], event["request_type"], event["response_length"]) == (
        "/bytes/[n]",
        "GET",
        7,
    )

    resp = user.client.post("/echo", b"hello", headers=[("Content-Type", "text/plain")])
    assert resp is not None and resp.body == b"hello"
    event = only(events)
    assert (event["request_type"], event["response_length"]) == ("POST", 5)

    resp = user.client.get("/status/404")
    assert resp is not None and resp.status == 404
    event = only(events)
    assert isinstance(event["exception"], HTTPStatusError)
    assert str(event["exception"]) == "HTTP 404 Not Found"
    assert event["response"] is resp

    assert user.client.get("/delay/2", timeout=0.2) is None
    event = only(events)
    assert isinstance(event["exception"], RequestTimeout)
    assert 150.0 <= event["response_time"] < 1500.0

    try:
        user.client.get("no-slash")
    except BadArgument:
        pass
    else:
        raise AssertionError("a bad path did not raise BadArgument")
    assert events == []  # nothing was sent, nothing is reported

    refused = FuscoSession(f"http://127.0.0.1:{closed_port()}", env.events.request)
    assert refused.get("/") is None
    event = only(events)
    assert isinstance(event["exception"], ConnectError)
    assert event["response"] is None
    assert event["response_length"] == 0
    assert event["response_time"] > 0.0
    refused.close()

    user.client.close()
    no_actor_left()


@case
def case_catch_response(args: list[str]) -> None:
    """A with-block decides: success(), failure(), the default rule, exceptions in the block."""
    url = args[0]
    env, events = recording_environment()
    session = FuscoSession(url, env.events.request)

    with session.request("/status/404", catch_response=True) as resp:
        assert resp.status == 404
        assert events == []  # reported on leaving the block
        resp.success()
    assert only(events)["exception"] is None

    with session.request("/bytes/3", catch_response=True) as resp:
        assert resp.body == b"\x00\x01\x02" or len(resp.body) == 3
        resp.failure("not what I wanted")
    failure = only(events)["exception"]
    assert isinstance(failure, CatchResponseError) and str(failure) == "not what I wanted"

    with session.request("/status/500", catch_response=True):
        pass  # no decision: the default rule
    assert isinstance(only(events)["exception"], HTTPStatusError)

    with session.request("/", catch_response=True) as resp:
        assert resp.status == 200 and resp.version == "HTTP/1.1"
    assert only(events)["exception"] is None

    try:
        with session.request("/", catch_response=True):
            raise ValueError("a bug in the block")
    except ValueError:
        pass
    assert events == []  # propagated, not reported (as Locust's own clients do)

    with session.request("/", catch_response=True):
        raise ResponseError("bad content")
    failure = only(events)["exception"]
    assert isinstance(failure, ResponseError) and str(failure) == "bad content"

    refused = FuscoSession(f"http://127.0.0.1:{closed_port()}", env.events.request)
    with refused.request("/", catch_response=True) as resp:
        assert resp.status == 0 and resp.response is None
        assert isinstance(resp.error, ConnectError)
        resp.success()
    assert only(events)["exception"] is None

    outside = session.request("/", catch_response=True)
    try:
        outside.success()
    except LocustError:
        pass
    else:
        raise AssertionError("success() outside the with-block was accepted")
    refused.close()
    session.close()
    no_actor_left()


@case
def case_options(args: list[str]) -> None:
    """start() options as attributes, a base path in the host, a missing host, a bad option."""
    url = args[0]
    env, events = recording_environment()

    class Piped(FuscoUser):
        host = url + "/status"
        pipeline = 4
        connect_timeout = 2.0
        send_retry = 0

    user = Piped(env)
    assert user.client.options == {"connect_timeout": 2.0, "pipeline": 4, "send_retry": 0}
    resp = user.client.get("/201")  # the host's path goes first: /status/201
    assert resp is not None and resp.status == 201
    event = only(events)
    assert event["name"] == "/201" and event["url"] == url + "/status/201"
    options = user.client.client._options
    assert (options.pipeline, options.connect_timeout, options.send_retry) == (4, 2.0, 0)
    user.client.close()

    class Bad(FuscoUser):
        host = url
        pipeline = 0

    try:
        Bad(env)
    except BadOption as exc:
        assert "pipeline" in str(exc)
    else:
        raise AssertionError("pipeline = 0 was accepted")

    class Hostless(FuscoUser):
        pass

    try:
        Hostless(env)
    except StopTest:
        pass
    else:
        raise AssertionError("a user without a host was accepted")
    no_actor_left()


@case
def case_greenlets_yield(args: list[str]) -> None:
    """50 users waiting on a slow route overlap, and the hub keeps ticking meanwhile."""
    url = args[0]
    env, events = recording_environment()
    sessions = [FuscoSession(url, env.events.request) for _ in range(USERS)]
    for session in sessions:  # connected first: the measurement is the waiting
        session.client.connect()
    gaps: list[float] = []
    running = True

    def tick() -> None:
        last = time.monotonic()
        while running:
            gevent.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = gevent.spawn(tick)
    started = time.monotonic()
    greenlets = [gevent.spawn(s.get, f"/delay/{DELAY}", timeout=10.0) for s in sessions]
    gevent.joinall(greenlets, timeout=30.0, raise_error=True)
    elapsed = time.monotonic() - started
    running = False
    ticker.join(timeout=5.0)
    assert all(g.successful() and g.value is not None for g in greenlets)
    assert len(events) == USERS and all(e["exception"] is None for e in events)
    # One after the other would take USERS * DELAY = 25 s.
    assert elapsed < 5 * DELAY, f"{USERS} waits of {DELAY} s took {elapsed:.2f} s"
    # A wait that blocked the OS thread would stop the ticker for a whole DELAY.
    assert len(gaps) >= 10 and max(gaps) < DELAY / 2, f"longest tick gap {max(gaps):.3f} s"
    print(f"{USERS} users x /delay/{DELAY}: {elapsed:.3f} s; longest tick {max(gaps):.3f} s")
    for session in sessions:
        session.close()
    no_actor_left()


def os_threads() -> int:
    """Return how many OS threads this process runs."""
    return len(os.listdir("/proc/self/task"))


@case
def case_runner(args: list[str]) -> None:
    """A local Locust run: requests counted, no failure, no actor or extra thread left."""
    url = args[0]

    class Api(FuscoUser):
        host = url

        @task
        def root(self) -> None:
            self.client.get("/")

        def on_stop(self) -> None:
            """No super(): the client is closed anyway when the user's greenlet ends."""

    get_scheduler()
    threads = os_threads()  # the main thread and the scheduler's
    env = Environment(user_classes=[Api])
    runner = env.create_local_runner()
    runner.start(10, spawn_rate=100)
    gevent.sleep(1.0)
    assert runner.user_count == 10
    runner.quit()
    total = env.stats.total
    assert total.num_requests > 0 and total.num_failures == 0, (total.num_requests, total)
    deadline = time.monotonic() + 10.0  # the greenlets' links close the clients
    while pykka.ActorRegistry.get_all() and time.monotonic() < deadline:
        gevent.sleep(0.01)
    no_actor_left()
    assert os_threads() == threads, (os_threads(), threads)
    print(f"{total.num_requests} requests in 1 s by 10 users")


@case
def case_gevent_core(args: list[str]) -> None:
    """Under gevent the scheduler is an OS thread with no hub; uploads, pools, streams work."""
    url = args[0]
    assert gevent_patched()
    scheduler = get_scheduler()
    assert scheduler.thread.is_alive() and os_threads() == 2
    hubs: list[object] = []

    with fusco_actor.start(url) as client:

        def pieces() -> Iterator[bytes]:
            yield b"abc"
            yield b"def"

        # A streamed upload is pulled on reader threads: greenlets there would never run.
        resp = client.request("/echo", "POST", body=pieces(), timeout=10.0).get()
        assert resp.body == b"abcdef"
        with client.stream("/bytes/5000", "GET", timeout=10.0).get() as streamed:
            assert len(streamed.read()) == 5000
        scheduler.call_soon(lambda: hubs.append(get_hub_if_exists()))
        deadline = time.monotonic() + 10.0
        while not hubs and time.monotonic() < deadline:
            gevent.sleep(0.01)
        assert hubs == [None], "the scheduler thread made a gevent hub"

    pool = fusco_actor.Pool.start(url, max_clients=2)
    try:
        greenlets = [gevent.spawn(lambda: pool.request("/", timeout=10.0).get()) for _ in range(8)]
        gevent.joinall(greenlets, timeout=20.0, raise_error=True)
        assert all(g.value is not None and g.value.status == 200 for g in greenlets)
    finally:
        pool.stop(timeout=5.0)
    no_actor_left()


@case
def case_tls(args: list[str]) -> None:
    """ssl_context as a class attribute, over TLS (uvicorn with trustme certificates)."""
    url, cafile = args
    env, events = recording_environment()

    class Secure(FuscoUser):
        host = url
        ssl_context = ssl.create_default_context(cafile=cafile)

    user = Secure(env)
    resp = user.client.get("/echo?x=1")
    assert resp is not None and resp.status == 200, resp
    assert b'"scheme": "https"' in resp.body or b'"scheme":"https"' in resp.body, resp.body
    assert only(events)["exception"] is None
    user.client.close()
    no_actor_left()


def main(argv: list[str]) -> int:
    """Run the case named ``argv[0]`` with the rest as its arguments; 0 when it passed."""
    CASES[argv[0]](argv[1:])
    print(f"case {argv[0]}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
