"""The embedded server in a child process, and that child's ``main``.

``fusco bench`` runs the embedded server (:mod:`fusco_actor._server`) in a
child process, so that the server has an interpreter lock and a CPU of its
own. This module starts that child, makes sure it never outlives its parent,
and is the child's entry point.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from fusco_actor._server import EmbeddedServer

_TIMEOUT = 5.0  # seconds to wait for the child to start or stop

__all__ = ["ServerProcess", "main", "serve_until_interrupted"]

_PR_SET_PDEATHSIG = 1  # prctl(2) option, from <linux/prctl.h>


class ServerProcess:
    """The embedded server in a child process, so that it has a GIL (and a CPU) of its own.

    ``fusco bench`` uses it: in the benchmarking process the server would compete
    with the client threads for the interpreter lock and measure itself.

    The child never outlives this process. Its stdin is a pipe whose write end
    only this process holds (Python opens pipes close-on-exec, so no program
    this process runs inherits it), and the child stops when it reads end of
    file there: when :meth:`stop` closes the pipe, and also when this process
    dies without cleaning up (even by SIGKILL), since the kernel then closes
    the pipe. On Linux, when started from the main thread, the child also asks
    for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``, which fires when
    the *thread* that forked exits, hence the main thread only); that covers
    a process forked from this one without exec, which would hold the pipe.
    """

    def __init__(self, start_timeout: float = 10.0) -> None:
        """Prepare; :meth:`start` runs ``python -m fusco_actor._server_process``.

        Args:
            start_timeout: seconds to wait for the child to report its address.
        """
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs under this object, else None."""
        return None if self._proc is None else self._proc.pid

    def start(self) -> ServerProcess:
        """Start the child and return once it listens.

        Whatever interrupts the start (an exception, a signal handler raising
        ``KeyboardInterrupt``) stops the child before it propagates.

        Raises:
            RuntimeError: the child did not report its address in time.
            OSError: the child could not be started.
        """
        command = [sys.executable, "-m", __name__, "--port", "0", "--parent-pipe"]
        if sys.platform == "linux" and threading.current_thread() is threading.main_thread():
            command.append("--parent-death-signal")
        try:
            self._proc = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.PIPE,  # the lifeline: EOF there stops the child
                text=True,
                start_new_session=True,  # a terminal's Ctrl-C goes to the benchmark alone
            )
            assert self._proc.stdout is not None
            with selectors.DefaultSelector() as selector:  # not select(): fds above 1023
                selector.register(self._proc.stdout, selectors.EVENT_READ)
                ready = selector.select(self._start_timeout)
            line = self._proc.stdout.readline() if ready else ""
            if not line.startswith("serving on "):
                raise RuntimeError("the embedded server process did not start")
            self.url = line.split()[2]
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the child and wait for it; never raises.

        Closes the lifeline pipe and sends SIGTERM (either stops the child),
        then SIGKILL if it is still running after 5 s.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> ServerProcess:
        """Start the child."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the child."""
        self.stop()


def _raise_interrupt(signum: int, frame: object) -> None:
    """Signal handler: end the serving loop of :func:`main` as Ctrl-C would, once.

    Later SIGINT and SIGTERM are ignored, so that they cannot interrupt the
    stop (which is bounded by ``_TIMEOUT``).

    Raises:
        KeyboardInterrupt: always.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _watch_parent_pipe() -> None:
    """Stop this process once stdin reaches end of file (the parent closed it or died).

    Runs in a daemon thread: reads and discards stdin until EOF, then sends
    this process SIGTERM, which :func:`main` turns into a clean stop. If the
    process is still alive ``2 * _TIMEOUT`` seconds later, it exits at once.
    """
    with contextlib.suppress(OSError):
        while os.read(0, 4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)
    threading.Event().wait(2 * _TIMEOUT)  # a bounded grace, not a synchronisation
    os._exit(1)


def _set_parent_death_signal() -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies (best effort)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def main(argv: list[str] | None = None) -> int:
    """Serve on 127.0.0.1:--port (default 8080) until Ctrl-C or SIGTERM; return the exit status.

    With ``--parent-pipe`` the server also stops when stdin reaches end of
    file; with ``--parent-death-signal`` (Linux) when the parent process dies.
    Prints ``serving on URL ...`` on stdout once listening.

    Returns:
        0 after a stop by SIGINT, SIGTERM or the end of stdin; 1 when the
        server could not start (a one-line ``error: ...`` on stderr).
    """
    parser = argparse.ArgumentParser(prog="python -m fusco_actor._server_process")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (0: any free port)")
    parser.add_argument(
        "--parent-pipe", action="store_true",
        help="stop at end of file on stdin (a pipe whose write end the parent process holds)",
    )  # fmt: skip
    parser.add_argument(
        "--parent-death-signal", action="store_true",
        help="Linux: get SIGTERM when the parent process (its forking thread) ends",
    )  # fmt: skip
    args = parser.parse_args(argv)

    def prepare() -> None:
        signal.signal(signal.SIGINT, _raise_interrupt)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        if args.parent_death_signal and sys.platform == "linux":
            _set_parent_death_signal()
        if args.parent_pipe:
            threading.Thread(
                target=_watch_parent_pipe, name="fusco-parent-pipe", daemon=True
            ).start()

    return serve_until_interrupted("127.0.0.1", args.port, prepare)


def serve_until_interrupted(
    host: str, port: int, prepare: Callable[[], object] | None = None
) -> int:
    """Serve the embedded server on ``host:port`` in this thread until ``KeyboardInterrupt``.

    Once it listens, prints ``serving on URL (Ctrl-C to stop)`` on stdout. The
    caller turns the signals it wants to stop on into ``KeyboardInterrupt``;
    ``prepare`` (if given) runs first, under the same interrupt handling, so an
    interrupt during it is a clean stop too. The server is stopped on the way out.

    Returns:
        0 after the interrupt; 1 when the server could not start (a port in
        use, a host that is not loopback), with a one-line ``error: ...`` on stderr.
    """
    server: EmbeddedServer | None = None
    try:
        if prepare is not None:
            prepare()
        server = EmbeddedServer(host, port).start()
        print(f"serving on {server.url} (Ctrl-C to stop)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
