"""LoopActor: pykka actors served in turns on the one scheduler thread.

What must hold: pykka's whole surface works from any thread (tell, ask,
proxy, stop, the registry, the hooks); every actor runs on the scheduler
thread and no actor adds a thread; mail is served in order per sender and
no actor starves another; no mail is ever left unanswered, even when it
lands while the actor stops; blocking on a future on the scheduler thread
raises instead of freezing every actor.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from typing import Any

import pykka
import pytest

from fusco_actor._future import ReplyFuture, SchedulerBlockedError
from fusco_actor._scheduler import LOOP_ENV, LoopActor, get_scheduler
from tests.conftest import LONG_TIMEOUT, SHORT_TIMEOUT
from tests.helpers import join_all, start_thread, wait_for


class Recorder(LoopActor):
    """Records what it receives, and on which thread."""

    def __init__(self, log: list[Any] | None = None) -> None:
        super().__init__()
        self.log: list[Any] = [] if log is None else log
        self.threads: set[int] = set()
        self.started = False
        self.stopped = False
        self.failures: list[BaseException | None] = []

    def on_start(self) -> None:
        self.started = True
        self.threads.add(threading.get_ident())

    def on_receive(self, message: Any) -> Any:
        self.threads.add(threading.get_ident())
        if message == "fail":
            raise ValueError("asked to fail")
        if message == "exit":
            raise SystemExit
        self.log.append(message)
        return message

    def on_stop(self) -> None:
        self.stopped = True
        self.log.append("on_stop")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.failures.append(exception_value)
        self.log.append(exception_type)

    def add(self, a: int, b: int) -> int:
        return a + b

    def count(self) -> int:
        return len(self.log)


class Asker(LoopActor):
    """Blocks on another actor's reply inside its handler: forbidden on the loop."""

    def __init__(self, other: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.other = other

    def on_receive(self, message: Any) -> Any:
        return self.other.ask(message)  # block=True: a blocking get on the scheduler


def test_asks_from_many_threads_are_answered_in_order_on_the_scheduler_thread() -> None:
    ref = Recorder.start()
    per_thread, threads = 300, 8
    answers: dict[int, list[Any]] = {}

    def sender(n: int) -> None:
        futures = [ref.ask((n, i), block=False) for i in range(per_thread)]
        answers[n] = [f.get(timeout=LONG_TIMEOUT) for f in futures]

    join_all([start_thread(sender, n) for n in range(threads)])
    for n in range(threads):
        assert answers[n] == [(n, i) for i in range(per_thread)]
    actor = ref.proxy()
    assert actor.count().get(timeout=LONG_TIMEOUT) == per_thread * threads
    log: list[tuple[int, int]] = actor.log.get(timeout=LONG_TIMEOUT)
    for n in range(threads):  # each sender's mail in the order it was sent
        assert [i for m, i in log if m == n] == list(range(per_thread))
    assert actor.threads.get(timeout=LONG_TIMEOUT) == {get_scheduler().thread.ident}
    assert isinstance(ref.ask("x", block=False), ReplyFuture)
    assert ref.stop(block=True, timeout=LONG_TIMEOUT) is True


def test_hooks_registry_and_proxy_work_as_for_thread_actors() -> None:
    log: list[Any] = []
    ref = Recorder.start(log)
    proxy = ref.proxy()
    assert proxy.started.get(timeout=LONG_TIMEOUT) is True  # on_start ran first
    assert proxy.add(2, 3).get(timeout=LONG_TIMEOUT) == 5
    assert ref in pykka.ActorRegistry.get_all()
    ref.tell("told")
    assert ref.ask("asked", timeout=LONG_TIMEOUT) == "asked"
    assert ref.stop(block=True, timeout=LONG_TIMEOUT) is True
    assert log == ["told", "asked", "on_stop"]
    assert not ref.is_alive()
    assert ref not in pykka.ActorRegistry.get_all()
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")


def test_an_ask_that_raises_goes_back_to_the_caller_and_the_actor_lives_on() -> None:
    ref = Recorder.start()
    with pytest.raises(ValueError, match="asked to fail"):
        ref.ask("fail", timeout=LONG_TIMEOUT)
    assert ref.ask("still here", timeout=LONG_TIMEOUT) == "still here"
    ref.stop(block=True, timeout=LONG_TIMEOUT)


def test_a_tell_that_raises_calls_on_failure_and_stops_the_actor() -> None:
    log: list[Any] = []
    ref = Recorder.start(log)
    ref.tell("fail")
    assert ref.actor_stopped.wait(LONG_TIMEOUT)
    assert log == [ValueError]  # on_failure, and not on_stop
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=SHORT_TIMEOUT)


def test_a_base_exception_in_a_handler_stops_every_actor_without_blocking_the_loop() -> None:
    refs = [Recorder.start() for _ in range(3)]
    refs[0].tell("exit")
    assert wait_for(lambda: not any(r.is_alive() for r in refs))
    survivor = Recorder.start()  # the scheduler still serves new actors
    assert survivor.ask("ok", timeout=LONG_TIMEOUT) == "ok"
    survivor.stop(block=True, timeout=LONG_TIMEOUT)


def test_mail_that_lands_while_the_actor_stops_is_always_answered() -> None:
    """pykka's drained-inbox race: a put after the last drain must not be lost."""
    for _ in range(20):
        ref = Recorder.start()
        futures: list[Any] = []
        go = threading.Event()

        def sender(
            ref: pykka.ActorRef[Any] = ref,
            futures: list[Any] = futures,
            go: threading.Event = go,
        ) -> None:
            go.wait(LONG_TIMEOUT)
            for i in range(200):
                try:
                    futures.append(ref.ask(i, block=False))
                except pykka.ActorDeadError:
                    return

        threads = [start_thread(sender) for _ in range(4)]
        go.set()
        ref.stop(block=False)
        join_all(threads)
        for future in futures:
            try:
                future.get(timeout=LONG_TIMEOUT)
            except pykka.ActorDeadError:
                pass
            except pykka.Timeout:  # pragma: no cover - the failure this test is about
                pytest.fail("a message sent to a stopping actor was never answered")


def test_blocking_on_a_future_on_the_scheduler_thread_raises_instead_of_freezing() -> None:
    other = Recorder.start()
    asker = Asker.start(other)
    with pytest.raises(SchedulerBlockedError, match="scheduler"):
        asker.ask("ping", timeout=LONG_TIMEOUT)
    # Nothing froze: both still answer.
    assert other.ask("pong", timeout=LONG_TIMEOUT) == "pong"
    assert asker.is_alive()
    asker.stop(block=True, timeout=LONG_TIMEOUT)
    other.stop(block=True, timeout=LONG_TIMEOUT)


def test_a_flooded_actor_does_not_starve_another() -> None:
    order: list[str] = []
    busy = Recorder.start(order)
    quiet = Recorder.start(order)
    for ref in (busy, quiet):  # both past their first turn (on_start)
        assert ref.proxy().started.get(timeout=LONG_TIMEOUT)
    holding, gate = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(LONG_TIMEOUT)

    # Hold the loop so that all the mail is queued before any turn runs.
    get_scheduler().call_soon(hold)
    assert holding.wait(LONG_TIMEOUT)
    for i in range(1000):
        busy.tell(f"busy-{i}")
    quiet.tell("quiet")
    gate.set()
    assert wait_for(lambda: len(order) == 1001)
    assert order.index("quiet") < order.index("busy-999")  # turns are bounded (TURN_LIMIT)
    assert order.index("quiet") == LoopActor.TURN_LIMIT  # right after busy's first turn
    busy.stop(block=True, timeout=LONG_TIMEOUT)
    quiet.stop(block=True, timeout=LONG_TIMEOUT)


def test_ten_thousand_actors_add_no_thread() -> None:
    get_scheduler()
    before = threading.active_count()
    refs = [Recorder.start() for _ in range(10_000)]
    futures = [ref.ask("hello", block=False) for ref in refs]
    assert all(f.get(timeout=LONG_TIMEOUT) == "hello" for f in futures)
    assert threading.active_count() <= before  # (threads of earlier tests may still be ending)
    stops = [ref.stop(block=False) for ref in refs]
    for stop in stops:
        stop.get(timeout=LONG_TIMEOUT)
    assert not any(ref.is_alive() for ref in refs)


def test_futures_are_awaited_from_any_loop_and_from_the_scheduler_loop() -> None:
    ref = Recorder.start()

    async def ask(message: str) -> Any:
        return await ref.ask(message, block=False)

    assert asyncio.run(ask("from a loop of our own")) == "from a loop of our own"
    on_scheduler = asyncio.run_coroutine_threadsafe(ask("on the scheduler"), get_scheduler().loop)
    assert on_scheduler.result(LONG_TIMEOUT) == "on the scheduler"
    ref.stop(block=True, timeout=LONG_TIMEOUT)


def test_the_scheduler_falls_back_to_asyncios_loop_when_asked() -> None:
    script = (
        "from fusco_actor._scheduler import get_scheduler\n"
        "from tests.actors.test_scheduler import Recorder\n"
        "ref = Recorder.start()\n"
        "print(get_scheduler().loop_name, ref.ask('hi', timeout=10))\n"
        "ref.stop()\n"
    )
    env = {**os.environ, LOOP_ENV: "asyncio"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=LONG_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["asyncio", "hi"]
    default = get_scheduler().loop_name
    assert default == ("asyncio" if os.environ.get(LOOP_ENV) == "asyncio" else "uvloop")


# -- found in review ------------------------------------------------------------------------


class Slow(LoopActor):
    """Answers only once released, so that its caller can give up first."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        if message == "wait":
            # Holds the loop: acceptable in a test, as a stand-in for a slow answer.
            self.release.wait(LONG_TIMEOUT)
        if message == "exit":
            raise SystemExit
        return message


class ExitsOnStart(LoopActor):
    def on_start(self) -> None:
        raise SystemExit(3)


def test_a_cancelled_ask_does_not_kill_the_actor_that_answers_it() -> None:
    release = threading.Event()
    ref = Slow.start(release)
    future = ref.ask("wait", block=False)
    assert isinstance(future, ReplyFuture)
    assert future.cancel()
    release.set()
    assert ref.ask("still here", timeout=LONG_TIMEOUT) == "still here"
    with pytest.raises(asyncio.CancelledError):
        future.get(timeout=SHORT_TIMEOUT)
    ref.stop(block=True, timeout=LONG_TIMEOUT)


def test_an_ask_whose_handler_raises_a_base_exception_is_answered() -> None:
    ref = Slow.start(threading.Event())
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("exit", timeout=LONG_TIMEOUT)


def test_a_base_exception_in_on_start_never_kills_the_scheduler_thread() -> None:
    scheduler = get_scheduler()
    ref = ExitsOnStart.start()
    assert ref.actor_stopped.wait(LONG_TIMEOUT)
    assert scheduler.thread.is_alive()
    survivor = Recorder.start()
    assert survivor.ask("served", timeout=LONG_TIMEOUT) == "served"
    survivor.stop(block=True, timeout=LONG_TIMEOUT)


def test_a_pykka_derived_future_can_be_awaited() -> None:
    ref = Recorder.start()

    async def stop() -> Any:
        return await ref.stop(block=False)

    assert asyncio.run(stop()) is True
    assert not ref.is_alive()
