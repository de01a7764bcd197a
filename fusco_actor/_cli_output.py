"""Where ``fusco get`` writes: the body's sink (stdout or ``-o FILE``) and the ``-v`` trace.

``-o FILE`` writes into a temporary file beside FILE (``.FILE.XXXXXXXX.part``)
and renames it over FILE once the whole body arrived; a transfer that fails
removes it, so FILE is either complete or as it was before, never a half
file presented as a download (curl leaves the partial file in place unless
``--remove-on-error``). FILE keeps the mode of the file it replaces (or gets
0666 less the umask). A FILE that exists and is not a regular file
(``/dev/null``, a FIFO) is written directly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
from typing import TYPE_CHECKING, BinaryIO, TextIO

if TYPE_CHECKING:
    from fusco_actor._headers import Headers

__all__ = ["Sink", "Trace", "format_head"]


def _naming(exc: OSError, name: str) -> OSError:
    """Return ``exc`` again, naming ``name`` (what the user typed) as its file."""
    if exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), name)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class Sink:
    """The body's destination: stdout, or ``-o FILE`` committed only when complete.

    Args:
        name: the ``-o`` file name; None or ``"-"`` = stdout.

    Raises:
        OSError: FILE's directory cannot take a file, or FILE is a directory
            (the message names FILE).
    """

    def __init__(self, name: str | None) -> None:
        """Open the destination before anything is sent."""
        self.name = None if name in (None, "-") else name
        self.written = 0
        self._temp: str | None = None
        self._file: BinaryIO = sys.stdout.buffer
        if self.name is None:
            return
        # Through a symbolic link, as curl writes: the link stays, its target is replaced.
        self._path = os.path.realpath(self.name)
        try:
            self._file = self._open(self._path)
        except OSError as exc:
            raise _naming(exc, self.name) from None

    def _open(self, name: str) -> BinaryIO:
        try:
            st = os.stat(name)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        else:
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
            if not stat.S_ISREG(st.st_mode):
                return open(name, "wb")
            mode = stat.S_IMODE(st.st_mode)
        directory, base = os.path.split(name)
        fd, self._temp = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=directory or ".")
        try:
            os.fchmod(fd, mode)
            return os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.discard()
            raise

    def write(self, data: bytes) -> None:
        """Write ``data`` now (stdout is flushed, so a pipe sees each piece as it comes).

        Raises:
            OSError: the write failed (the message names FILE).
        """
        try:
            self._file.write(data)
            if self.name is None:
                self._file.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _naming(exc, self.name or "<stdout>") from None
        self.written += len(data)

    def commit(self) -> None:
        """Finish: flush stdout, or close the file and put it in place.

        Raises:
            OSError: the file could not be written or renamed (named).
        """
        if self.name is None:
            self._file.flush()
            return
        try:
            self._file.close()
            if self._temp is not None:
                os.replace(self._temp, self._path)
                self._temp = None
        except OSError as exc:
            self.discard()
            raise _naming(exc, self.name) from None

    def discard(self) -> None:
        """Give up: remove the temporary file (stdout keeps what it was given). Never raises."""
        if self.name is None:
            with contextlib.suppress(OSError, ValueError):
                self._file.flush()
            return
        with contextlib.suppress(OSError):
            self._file.close()
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp)
            self._temp = None


def format_head(version: str, status: int, reason: str, headers: Headers) -> bytes:
    """Return a response head as ``-i`` prints it: status line, ``name: value`` lines, CRLFs.

    Names are lower case (fusco_actor keeps no other case), values trimmed.
    """
    lines = [f"{version} {status} {reason}".rstrip()]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Trace:
    """The ``-v`` trace on stderr: ``*`` notes, ``>`` lines sent and ``<`` lines received.

    Args:
        enabled: ``-v`` was given; otherwise every method does nothing.
        stream: where to write (stderr).
    """

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        """Trace to ``stream`` (default: stderr) when ``enabled``."""
        self.enabled = enabled
        self._stream = stream or sys.stderr

    def note(self, text: str) -> None:
        """Write ``* text``."""
        if self.enabled:
            self._stream.write(f"* {text}\n")
            self._stream.flush()

    def _head(self, prefix: str, head: bytes) -> None:
        if not self.enabled:
            return
        lines = head.decode("latin-1").split("\r\n")
        while lines and lines[-1] == "":
            lines.pop()
        self._stream.write("".join(f"{prefix} {line}\n" for line in lines) + f"{prefix} \n")
        self._stream.flush()

    def sent(self, head: bytes) -> None:
        """Write a request head (as sent, CRLF-separated bytes) as ``> `` lines."""
        self._head(">", head)

    def received(self, head: bytes) -> None:
        """Write a response head (as :func:`format_head` made it) as ``< `` lines."""
        self._head("<", head)
