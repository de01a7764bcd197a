"""Request bodies the loop engine sends piece by piece: iterables, files, ``Expect: 100-continue``.

Theory of operation
-------------------
A request whose body is not fixed bytes (an iterable, a generator, a file
object), or that asks ``Expect: 100-continue``, is written alone (it is never
pipelinable, see ``Call.pipelinable``): ``LoopClientActor._pump`` writes its
head and hands the body to an :class:`Upload`, which the actor keeps until the
response completes or the connection closes::

    head written --begin--> WAITING --100, or 1 s--> SENDING --last piece written--> finished
                               |--final status--> SKIPPED (body never sent; connection closes)

Sending is paced by the transport: a piece is handed to the transport only
while it is below its high-water mark, and the next piece is pulled only once
the previous one was handed over; ``on_writable`` starts again. So an upload
holds at most the transport's buffer (its high-water mark plus the last piece)
and one piece pulled ahead, whatever the body size. The body is whole once its
last byte is handed over (the last chunk, or the declared length reached). A
final response that completes before that (a server answering early) resolves
the call and closes the connection, whose server waits for the rest.
The wire bytes come from ``_wire._stream_frames``, as on the threaded engine:
chunk framing, or exactly the declared ``Content-Length`` (a longer stream
fails before its surplus reaches the wire, a shorter one fails when it ends).

Where the pieces are read: a caller's iterator or file is pulled on a *reader
thread* (a few daemon threads shared by every upload), never on the loop.
Reading a regular file is usually a few microseconds from the page cache, but
it can block for milliseconds on a cold disk and indefinitely on a network
file system; and an iterator may do anything, including wait for another
client of the same scheduler (a download piped into an upload), which on the
loop thread would freeze every client or raise ``SchedulerBlockedError``. The
hop costs tens of microseconds per piece (64 KiB for a file). Only the
in-memory lists the encoder makes itself (a fixed body sent chunked) and a
fixed body after ``Expect`` are taken on the loop. At most one pull per upload
is under way; one that ends after its upload ended is dropped, and the stream
is then closed on a reader thread (a caller's ``finally`` never runs on the
loop). A pull that never returns holds its reader thread: the request still
ends at its deadline, but that thread stays blocked in the caller's code, and
once ``READER_THREADS`` are held so, further pulls wait for one of them. The
reader threads are daemons, started on demand; each ends after ``READER_IDLE``
seconds without work, so idle clients cost none.

Failures: the stream raising (or breaking its ``Content-Length``) fails the
request with that exception and closes the connection, so the server never
sees a complete request; a write on a connection found closed is a failed send
(README "Send-retry"). Whether a call goes again after its connection closed is
``Call.may_go_again``'s, as on the threaded engine: never for a one-shot
iterator (a generator, a file), pulled or not, as it cannot be replayed; an
iterable whose ``iter()`` starts afresh (a list) goes again like a fixed body,
through a new :class:`Upload`. The call's deadline timer, owned by the actor,
ends a slow upload like any other exchange: closing the connection ends the
upload. Every loop callback of an upload (its start, the 100 or the 1 s timer,
a pull's return) runs through the actor's crash-guarded ``upload_step``: a bug
there is the actor's crash, as anywhere else (``_loop_failure``).
"""

from __future__ import annotations

import logging
import os
import queue
from typing import TYPE_CHECKING, Any, Final, Protocol

from fusco_actor import _native
from fusco_actor._encoder import LAST_CHUNK
from fusco_actor._events import Informational, ResponseHead
from fusco_actor._exceptions import ConnectionClosed
from fusco_actor._scheduler import get_scheduler
from fusco_actor._wire import EXPECT_CONTINUE_WAIT, BodyStreamFailed, _stream_frames

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterator

    from fusco_actor._aio_transport import LoopConnection
    from fusco_actor._encoder import PreparedRequest
    from fusco_actor._inbox import Call

__all__ = ["Upload", "UploadOwner", "needs_upload"]

logger = logging.getLogger(__name__)

READER_THREADS: Final = 8  # at most this many reader threads, started as pulls need them
READER_IDLE: Final = 1.0  # seconds a reader thread waits for work before it ends
_WAITING, _SENDING, _SKIPPED, _ENDED = "waiting", "sending", "skipped", "ended"
_PIECE, _END, _FAILED = 0, 1, 2


def needs_upload(prepared: PreparedRequest) -> bool:
    """Return whether the body goes piece by piece after the head (a stream, or Expect)."""
    return prepared.stream is not None or prepared.expect_continue


class UploadOwner(Protocol):
    """What an :class:`Upload` reports to: the client actor (scheduler thread)."""

    def upload_failed(self, call: Call, error: BaseException) -> None:
        """Fail ``call`` with the stream's ``error`` and close the connection."""

    def upload_lost(self) -> None:
        """Handle a write that found the connection closed (a failed send)."""

    def upload_step(self, step: Callable[..., None], *args: Any) -> None:
        """Run ``step(*args)``, a loop callback of the upload: what it raises is a crash."""


class Upload:
    """The body of one request going out as the transport accepts it (scheduler thread)."""

    __slots__ = (
        "_frames",
        "_left",
        "_loop",
        "_on_loop",
        "_owner",
        "_pulling",
        "_ready",
        "_started",
        "_state",
        "_timer",
        "began",
        "call",
        "conn",
        "finished",
    )

    def __init__(self, call: Call, conn: LoopConnection, owner: UploadOwner) -> None:
        """Prepare the body of ``call``, whose head goes out on ``conn`` first (not sent yet)."""
        prepared = call.prepared
        self.call = call
        self.conn = conn
        self._owner = owner
        self._loop = get_scheduler().loop
        fixed = prepared.stream is None  # a fixed body behind Expect: 100-continue: one piece
        frames = iter((prepared.body,)) if fixed else _stream_frames(call)
        self._frames: Iterator[Any] | None = frames
        # Bytes of body still to write when its length is known (None: chunked, which
        # ends with the last-chunk frame): the body is whole as soon as they are written,
        # without waiting for the pull that finds the stream's end (the answer may come first).
        self._left = memoryview(prepared.body).nbytes if fixed else prepared.stream_length
        self._on_loop = prepared.stream is None or type(prepared.stream) in (list, tuple)
        self._state = _WAITING if prepared.expect_continue else _SENDING
        self._started = False
        self._pulling = False
        self._ready: Any = None  # the next piece of wire bytes, pulled and not yet written
        self._timer: asyncio.TimerHandle | None = None
        self.began = False  # the body began to go out
        self.finished = False  # every byte of the body was handed to the transport

    @property
    def cut_short(self) -> bool:
        """Return whether the body began to go out and did not end (the request is partial)."""
        return self.began and not self.finished

    def begin(self) -> None:
        """Start once the head was written: wait for 100 (at most 1 s), or send."""
        if self._started or self._state == _ENDED:
            return
        self._started = True
        if self._state == _WAITING:
            # RFC 9110 §10.1.1: a client need not wait for 100 for an indefinite period.
            self._timer = self._loop.call_later(
                EXPECT_CONTINUE_WAIT, self._owner.upload_step, self._stop_waiting
            )
        else:
            self._advance()

    def heard(self, event: Informational | ResponseHead) -> None:
        """Take a response head or a 1xx: a 100 sends the body; a final status skips it."""
        if self._state != _WAITING:
            return
        if isinstance(event, Informational):
            if event.status == 100:
                # Not from inside the parser's loop.
                self._loop.call_soon(self._owner.upload_step, self._stop_waiting)
            return
        self._state = _SKIPPED  # RFC 9110 §10.1.1: the server answered without the body
        self._cancel_timer()

    def on_writable(self) -> None:
        """Go on after the transport drained below its low-water mark."""
        self._advance()

    def end(self) -> bool:
        """Stop sending (the response completed or the connection closed); True if all went out."""
        if self._state != _ENDED:
            self._state = _ENDED
            self._cancel_timer()
            self._ready = None
            if not self._pulling:
                self._close_frames()
        return self.finished

    # -- sending ------------------------------------------------------------------------

    def _stop_waiting(self) -> None:
        if self._state == _WAITING:
            self._state = _SENDING
            self._cancel_timer()
            self._advance()

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _advance(self) -> None:
        """Write what is pulled while the transport takes it; pull the next piece."""
        while self._state == _SENDING and self._started and not self.finished:
            if self._ready is not None:
                if self.conn.write_blocked:
                    return  # on_writable comes back
                data, self._ready = self._ready, None
                self.began = True
                try:
                    self.conn.write(data)
                except ConnectionClosed:
                    self._owner.upload_lost()
                    return
                if self._left is None:
                    self.finished = data == LAST_CHUNK
                else:
                    self._left -= memoryview(data).nbytes
                    self.finished = self._left <= 0
            elif self._frames is None:
                self.finished = True  # the stream ended and its last bytes are written
            elif self._pulling:
                return  # _pulled comes back
            elif self._on_loop:
                if not self._take(_pull(self._frames)):
                    return
            else:
                self._pulling = True
                self.began = True
                _readers.submit(self._pull_off_loop)
                return

    def _take(self, result: tuple[int, Any]) -> bool:
        """Keep a pulled piece, or note the end; False after a failure (the request failed)."""
        kind, value = result
        if kind == _PIECE:
            self._ready = value
        elif kind == _END:
            self._frames = None
        else:
            self._owner.upload_failed(self.call, value)
            return False
        return True

    def _pull_off_loop(self) -> None:
        """Pull the next piece (a reader thread) and hand it to the loop."""
        frames = self._frames
        assert frames is not None
        result = _pull(frames)
        try:
            self._loop.call_soon_threadsafe(self._owner.upload_step, self._pulled, result)
        except RuntimeError:  # the scheduler's loop is gone: nobody waits for this upload
            _close_quietly(frames)

    def _pulled(self, result: tuple[int, Any]) -> None:
        self._pulling = False
        if self._state == _ENDED:
            self._close_frames()  # ended while the pull was under way
            return
        if self._take(result):
            self._advance()

    def _close_frames(self) -> None:
        frames, self._frames = self._frames, None
        if frames is None:
            return
        stream = self.call.prepared.stream
        if self._on_loop or stream is None:
            return  # in-memory pieces: nothing to release
        # A one-shot iterator is never pulled again (it cannot be re-sent): close it too,
        # so its clean-up runs now, on a reader thread, rather than whenever it is collected.
        one_shot = stream if _is_iterator(stream) else None
        _readers.submit(lambda: _close_quietly(frames, one_shot))


def _is_iterator(stream: Any) -> bool:
    """Return whether ``stream`` is its own iterator (one-shot); False if ``iter`` raises."""
    try:
        return iter(stream) is stream
    except Exception:
        return False


def _pull(frames: Iterator[Any]) -> tuple[int, Any]:
    """Return the next wire piece of ``frames``, its end, or what it raised."""
    try:
        return _PIECE, next(frames)
    except StopIteration:
        return _END, None
    except BodyStreamFailed as exc:
        return _FAILED, exc.original
    except BaseException as exc:  # e.g. iter() of the body raised: the call fails
        return _FAILED, exc


def _close_quietly(*streams: Any) -> None:
    """Close body streams that will not be read further (their ``finally`` runs here)."""
    for stream in streams:
        close = getattr(stream, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception:
            logger.exception("closing an upload's body stream raised; ignored")


class _Readers:
    """A few daemon threads that run pulls off the loop (daemon: a stuck pull never holds exit)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._reset()
        if hasattr(os, "register_at_fork"):  # a child has none of its parent's threads
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        # Real OS threads and primitives even under gevent (see _native).
        self._jobs: queue.SimpleQueue[Callable[[], None]] = _native.SimpleQueue()
        self._lock = _native.allocate_lock()
        self._threads = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a reader thread (any thread); jobs wait when every reader is busy."""
        with self._lock:  # the put under the lock: a reader leaving sees the job
            start = self._idle == 0 and self._threads < self._limit
            if start:
                self._threads += 1
            else:
                self._idle -= 1 if self._idle else 0
            self._jobs.put(job)
        if start:
            _native.start_thread(self._run, "fusco-upload-reader")

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=READER_IDLE)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():  # idle long enough: leave no thread behind
                        self._idle -= 1 if self._idle else 0
                        self._threads -= 1
                        return
                continue
            try:
                job()
            except BaseException:  # a reader thread never dies of a job
                logger.exception("an upload reader job raised; ignored")
            with self._lock:
                self._idle += 1


_readers = _Readers(READER_THREADS)
