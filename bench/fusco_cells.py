"""The ways of driving fusco_actor that issue 10's table measures, on an engine chosen per cell.

Every function has the :mod:`harness` client signature. :func:`on_engine`
wraps one so that its clients start on the loop engine or on the threaded
one: it sets ``FUSCO_ACTOR_ENGINE`` for the cell (the variable is read when a
client starts), checks which actor class that selects, and restores the
variable when the cell ends. Names: ``loop`` for the loop engine; ``thread``
(or ``threaded``) for the threaded one, which is also what an unset variable
gives until the loop engine becomes the default.

* :func:`bench_lanes`: what ``fusco bench -c N [--pipeline P]`` does: a
  ``Pool(max_clients=N)`` kept busy by done-callbacks, each sending its lane's
  next request; with a pipeline each client is checked out and gets P lanes.
* :func:`pool_tasks`: 4 x N asyncio tasks awaiting ``pool.arequest`` over a
  ``Pool(max_clients=N)``, on a uvloop of their own in a thread, or on the
  scheduler's own loop (no thread hop).
* :func:`one_client_futures`: one client with ``pipeline=16``, one thread
  keeping 16 futures outstanding (``get()`` the oldest, send one more).
* ``fusco_pool_threads`` and ``fusco_clients_blocking`` (in :mod:`clients`):
  N threads over one pool, and N threads each calling ``fusco_actor.request``.
"""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from harness import TIMEOUT, BenchError, Finish, Meter, Scenario, check, join_threads, then_close
from peers import on_new_loop

__all__ = ["ENGINES", "bench_lanes", "chains", "on_engine", "one_client_futures", "pool_tasks"]

ENGINE_ENV: Final = "FUSCO_ACTOR_ENGINE"
#: engine -> (values of FUSCO_ACTOR_ENGINE to try, the client actor class it must select)
ENGINES: Final = {
    "loop": (("loop",), "LoopClientActor"),
    "thread": (("thread", "threaded"), "ClientActor"),
}
PIPELINE: Final = 16
TASKS_PER_CLIENT: Final = 4  # 64 tasks over a pool of 16

Client = Callable[[str, Scenario, int, Meter], Finish]


def _select_engine(engine: str) -> str | None:
    """Set ``FUSCO_ACTOR_ENGINE`` so new clients run on ``engine``; return the old value."""
    from fusco_actor import _handle  # noqa: PLC0415 - to check which class is selected

    values, wanted = ENGINES[engine]
    old = os.environ.get(ENGINE_ENV)
    for value in values:
        os.environ[ENGINE_ENV] = value
        if _handle._actor_class().__name__ == wanted:
            return old
    _restore(old)
    raise BenchError(f"no value of {ENGINE_ENV} selects {wanted} (tried {', '.join(values)})")


def _restore(old: str | None) -> None:
    if old is None:
        os.environ.pop(ENGINE_ENV, None)
    else:
        os.environ[ENGINE_ENV] = old


def on_engine(engine: str, client: Client) -> Client:
    """Return ``client`` run with its fusco_actor clients on ``engine`` (``loop`` or ``thread``)."""

    def run(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
        old = _select_engine(engine)
        try:
            finish = client(url, scenario, conns, meter)
        except BaseException:
            _restore(old)
            raise
        return then_close(finish, partial(_restore, old))

    return run


def chains(submits: list[Callable[[], Any]], scenario: Scenario, meter: Meter) -> Finish:
    """Keep one request outstanding per ``submits`` entry; its done-callback sends the next.

    The callbacks run where the future is resolved (the scheduler thread on
    the loop engine, the client's thread on the threaded one).
    """
    meter.slots(len(submits))
    lock = threading.Lock()
    live = [len(submits)]
    ended = threading.Event()

    def on_done(slot: int, future: Any) -> None:
        try:
            response = future.get()  # resolved: does not block
            check(response.status, len(response.body), scenario)
            meter.counts[slot] += 1
            if not meter.stop:
                submits[slot]().add_done_callback(callbacks[slot])
                return
        except BaseException as exc:  # never let an error escape into the actor
            meter.fail(exc)
        with lock:
            live[0] -= 1
            if live[0] == 0:
                ended.set()

    callbacks = [partial(on_done, slot) for slot in range(len(submits))]
    for slot, submit in enumerate(submits):
        submit().add_done_callback(callbacks[slot])

    def finish() -> None:
        meter.stop = True
        if not ended.wait(TIMEOUT):
            meter.fail(BenchError("requests still outstanding after the stop"))

    return finish


def _request_args(scenario: Scenario) -> tuple[Any, ...]:
    return (scenario.path, scenario.method, (), scenario.body, TIMEOUT)


def bench_lanes(
    url: str, scenario: Scenario, conns: int, meter: Meter, pipeline: int = 1
) -> Finish:
    """``fusco bench -c conns --pipeline pipeline``: a pool kept busy by done-callbacks."""
    import fusco_actor  # noqa: PLC0415 - every client library is imported where used

    pool = fusco_actor.Pool.start(url, max_clients=conns, pipeline=pipeline)
    args = _request_args(scenario)
    if pipeline == 1:
        lanes = [partial(pool.request, *args)] * conns
    else:
        clients = [pool.get_client(TIMEOUT) for _ in range(conns)]
        lanes = [partial(c.request, *args) for c in clients for _ in range(pipeline)]
    try:
        finish = chains(lanes, scenario, meter)
    except BaseException:
        pool.stop()
        raise
    return then_close(finish, pool.stop)


def bench_p16(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """``fusco bench -c conns --pipeline 16``."""
    return bench_lanes(url, scenario, conns, meter, PIPELINE)


def _tasks(url: str, scenario: Scenario, conns: int, meter: Meter, on_scheduler: bool) -> Finish:
    import fusco_actor  # noqa: PLC0415
    from fusco_actor._scheduler import get_scheduler  # noqa: PLC0415 - its loop, for no hop

    pool = fusco_actor.Pool.start(url, max_clients=conns)
    args = _request_args(scenario)
    tasks = conns * TASKS_PER_CLIENT
    meter.slots(tasks)

    async def task(slot: int) -> None:
        while not meter.stop:
            response = await pool.arequest(*args)
            check(response.status, len(response.body), scenario)
            meter.counts[slot] += 1

    async def main() -> None:
        try:
            await asyncio.gather(*(task(i) for i in range(tasks)))
        except BaseException as exc:  # reported by measure()
            meter.fail(exc)

    if on_scheduler:
        done = asyncio.run_coroutine_threadsafe(main(), get_scheduler().loop)

        def finish() -> None:
            meter.stop = True
            try:
                done.result(TIMEOUT)
            except TimeoutError:
                meter.fail(BenchError("the tasks did not stop"))

        return then_close(finish, pool.stop)

    return then_close(on_new_loop(main, meter), pool.stop)


def pool_tasks(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """4 x ``conns`` tasks on a uvloop of their own awaiting ``pool.arequest``."""
    return _tasks(url, scenario, conns, meter, on_scheduler=False)


def pool_tasks_scheduler(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """4 x ``conns`` tasks on the scheduler's loop awaiting ``pool.arequest``."""
    return _tasks(url, scenario, conns, meter, on_scheduler=True)


def one_client_futures(url: str, scenario: Scenario, conns: int, meter: Meter) -> Finish:
    """One client per connection, ``pipeline=16``, one thread keeping 16 futures outstanding."""
    import fusco_actor  # noqa: PLC0415

    clients = [fusco_actor.start(url, pipeline=PIPELINE) for _ in range(conns)]
    args = _request_args(scenario)
    meter.slots(conns)

    def run(slot: int, client: Any) -> None:
        try:
            pending = collections.deque(client.request(*args) for _ in range(PIPELINE))
            while pending:
                response = pending.popleft().get()
                check(response.status, len(response.body), scenario)
                meter.counts[slot] += 1
                if not meter.stop:
                    pending.append(client.request(*args))
        except BaseException as exc:  # reported by measure()
            meter.fail(exc)

    threads = [
        threading.Thread(target=run, args=(slot, client), daemon=True)
        for slot, client in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    return then_close(join_threads(threads, meter), *(c.disconnect for c in clients))
