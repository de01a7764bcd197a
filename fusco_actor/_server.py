"""Embedded loopback HTTP/1.1 server for examples, benchmarks and tests."""

# Theory of operation
# -------------------
# EmbeddedServer runs a private asyncio event loop in a daemon thread. Each
# accepted connection gets an _HttpProtocol (a low-level asyncio.Protocol: no
# streams and no task per request, which is the loop's fast path).
# data_received() appends to a bytearray and _process() drains it: parse one
# request head (bounded to 64 KiB), collect its body (Content-Length or
# chunked), route it and write the whole response with one transport.write().
# Responses go out strictly in request order: a slow route (/delay) marks the
# connection busy and pauses reading; pipelined requests wait in the buffer
# until its timer fires and the drain loop resumes. Write-side flow control
# (pause_writing/resume_writing) stalls the drain loop the same way.
# stop() sets an asyncio.Event inside the loop; the serving coroutine then
# closes the listener, aborts every open connection, waits for their
# connection_lost() and returns, which ends asyncio.run() and the thread.

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import re
import threading
from http import HTTPStatus
from urllib.parse import parse_qsl

__all__ = ["EmbeddedServer"]

MAX_HEAD = 64 * 1024  # bytes of request line + headers (and of chunked trailers)
MAX_BODY = 64 * 1024 * 1024  # bytes of request body and of /bytes, /chunked bodies
MAX_DELAY = 300.0  # seconds, upper bound for /delay/S
CHUNK_SIZE = 16 * 1024  # bytes per chunk of /chunked/N
_TIMEOUT = 5.0  # seconds to wait for the thread to start or stop
_LINE_LIMIT = 4096  # bytes of a chunk-size line

_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/1\.([01])")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CTL = re.compile(rb"[\x00-\x1f\x7f]")
_HEX = b"0123456789abcdefABCDEF"
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_STATUS = {
    n: b"HTTP/1.1 %d %s\r\n" % (n, _REASONS.get(n, "Status").encode()) for n in range(100, 600)
}
_SERVER = b"Server: fusco-embedded\r\n"
_TEXT = b"Content-Type: text/plain\r\n"
_OCTETS = b"Content-Type: application/octet-stream\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
LINGER = 2.0  # seconds a closing connection keeps draining the client's bytes
_CONN = (b"", b"Connection: close\r\n", b"Connection: keep-alive\r\n")  # by _Request.conn
_HELLO = b"Hello, fusco!\n"
_PATTERN = b"0123456789abcdef"


class _HttpError(Exception):
    """A request refused with status ``args[0]``, after which the connection is closed."""


class _Request:
    __slots__ = ("chunked", "conn", "headers", "http10", "length", "method", "path", "query")

    def __init__(self, method: bytes, path: bytes, query: bytes, http10: bool) -> None:
        self.method, self.path, self.query, self.http10 = method, path, query, http10
        self.headers: list[tuple[bytes, bytes]] = []  # (name, value) in wire order
        self.conn = 0  # index into _CONN: 0 keep-alive (1.1), 1 close, 2 keep-alive (1.0)
        self.length = 0
        self.chunked = False

    def header(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]


def _build(
    status: int, body: bytes, extra: bytes, conn: int, *, head: bool, length: bool = True
) -> bytes:
    """Serialise a whole response; `length` False means `body` is already chunk-framed."""
    parts = [_STATUS[status], _SERVER, extra]
    if status < 200 or status in (204, 304):
        body = b""
    elif length:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts += (_CONN[conn], b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)


_ROOT = {(h, c): _build(200, _HELLO, _TEXT, c, head=h) for h in (False, True) for c in (0, 1, 2)}


def _pattern(n: int) -> bytes:
    return (_PATTERN * (n // len(_PATTERN) + 1))[:n]


def _chunk_frame(data: bytes) -> bytes:
    parts: list[bytes] = []
    for i in range(0, len(data), CHUNK_SIZE):
        piece = data[i : i + CHUNK_SIZE]
        parts += (b"%x\r\n" % len(piece), piece, b"\r\n")
    parts.append(b"0\r\nX-Trailer: done\r\n\r\n")
    return b"".join(parts)


def _parse_head(head: bytes) -> _Request:
    """Parse a request head (without its final blank line) or raise _HttpError."""
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        raise _HttpError(400)  # bare CR or LF
    lines = head.split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise _HttpError(400)
    method, target, minor = match.groups()
    if not target.startswith(b"/") and target != b"*":
        raise _HttpError(400)
    path, _, query = target.partition(b"?")
    req = _Request(method, path, query, minor == b"0")
    length: int | None = None
    codings: list[bytes] = []
    close = keep = False
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or _TOKEN.fullmatch(name) is None:
            raise _HttpError(400)
        value = value.strip(b" \t")
        req.headers.append((name, value))
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit() or len(value) > 18 or length not in (None, int(value)):
                raise _HttpError(400)
            length = int(value)
        elif lname == b"transfer-encoding":
            codings += (c.strip(b" \t").lower() for c in value.split(b","))
        elif lname == b"connection":
            tokens = {t.strip(b" \t").lower() for t in value.split(b",")}
            close = close or b"close" in tokens
            keep = keep or b"keep-alive" in tokens
    if codings:
        if length is not None or req.http10:
            raise _HttpError(400)
        if codings != [b"chunked"]:
            raise _HttpError(501)
        req.chunked = True
    elif length is not None:
        if length > MAX_BODY:
            raise _HttpError(413)
        req.length = length
    if close or (req.http10 and not keep):
        req.conn = 1
    elif req.http10:
        req.conn = 2
    return req


class _State:
    """State shared by the server object and its connections (touched in the loop thread)."""

    def __init__(self) -> None:
        self.conns: set[_HttpProtocol] = set()
        self.served = 0


class _HttpProtocol(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self._state = state
        self._transport: asyncio.Transport  # set by connection_made()
        self._buf = bytearray()
        self._req: _Request | None = None
        self._body = bytearray()  # chunked request body so far
        self._chunk_left = -1  # -1: expect a size line, -2: trailers, 0: CRLF after data
        self._busy = self._paused = self._closing = self._eof = False
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._state.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state.conns.discard(self)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._buf += data
        if not (self._busy or self._paused):
            self._process()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._closing:
            return None  # the lingering close is over: close now
        return True if self._busy or self._paused else None  # None: close after flushing

    def pause_writing(self) -> None:
        self._paused = True
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._paused = False
        # Not re-entrantly: closing the transport inside this callback confuses it.
        asyncio.get_running_loop().call_soon(self._resume)

    def abort(self) -> None:
        self._transport.abort()

    # -- request handling ---------------------------------------------------------------
    def _resume(self) -> None:
        if self._busy or self._paused or self._closing:
            return
        if not self._eof:
            self._transport.resume_reading()
        self._process()

    def _process(self) -> None:
        buf = self._buf
        try:
            while not (self._busy or self._paused or self._closing):
                req = self._req
                if req is None:
                    while buf.startswith(b"\r\n"):
                        del buf[:2]  # tolerated empty lines between requests
                    end = buf.find(b"\r\n\r\n")
                    if end < 0 or end + 4 > MAX_HEAD:
                        if len(buf) > MAX_HEAD:
                            raise _HttpError(431)
                        break
                    req = self._req = _parse_head(bytes(buf[:end]))
                    del buf[: end + 4]
                    body_due = (req.length or req.chunked) and not buf and not req.http10
                    if body_due and b"100-continue" in map(bytes.lower, req.header(b"expect")):
                        self._transport.write(_CONTINUE)  # the client waits for it
                if req.chunked:
                    if not self._read_chunked():
                        break
                    body, self._body = bytes(self._body), bytearray()
                elif req.length:
                    if len(buf) < req.length:
                        break
                    body = bytes(buf[: req.length])
                    del buf[: req.length]
                else:
                    body = b""
                self._req = None
                self._dispatch(req, body)
        except _HttpError as exc:
            status: int = exc.args[0]
            reason = _REASONS[status].lower().encode() + b"\n"
            self._write(None, _build(status, reason, _TEXT, 1, head=False))
        if self._eof and not (self._busy or self._paused or self._closing):
            self._close()

    def _read_chunked(self) -> bool:
        """Move chunked body bytes from the buffer to self._body; True once complete."""
        buf = self._buf
        while True:
            if self._chunk_left > 0:
                if not buf:
                    return False
                piece = buf[: self._chunk_left]
                self._body += piece
                del buf[: len(piece)]
                self._chunk_left -= len(piece)
                if len(self._body) > MAX_BODY:
                    raise _HttpError(413)
                continue
            end = buf.find(b"\r\n")
            if self._chunk_left == 0:  # CRLF after the chunk data
                if len(buf) < 2:
                    return False
                if end != 0:
                    raise _HttpError(400)
                del buf[:2]
                self._chunk_left = -1
            elif end < 0:
                if len(buf) > _LINE_LIMIT:
                    raise _HttpError(400)
                return False
            elif self._chunk_left == -1:  # chunk-size [; extensions]
                size = bytes(buf[:end]).split(b";", 1)[0].strip(b" \t")
                if not size or size.strip(_HEX) or len(size) > 16:
                    raise _HttpError(400)
                del buf[: end + 2]
                self._chunk_left = int(size, 16) or -2
            else:  # trailer fields (ignored) up to an empty line
                del buf[: end + 2]
                if end == 0:
                    self._chunk_left = -1
                    return True

    def _dispatch(self, req: _Request, body: bytes) -> None:
        path = req.path
        head = req.method == b"HEAD"
        if path == b"/":
            self._write(req, _ROOT[head, req.conn])
            return
        try:
            if path.startswith(b"/bytes/"):
                data = _pattern(_int_param(path[7:], 0, MAX_BODY))
                self._send(req, 200, data, _OCTETS)
            elif path.startswith(b"/chunked/"):
                data = _pattern(_int_param(path[9:], 0, MAX_BODY))
                if req.http10:  # HTTP/1.0 clients cannot decode chunked
                    self._send(req, 200, data, _OCTETS)
                else:
                    extra = _OCTETS + b"Transfer-Encoding: chunked\r\nTrailer: X-Trailer\r\n"
                    resp = _build(200, _chunk_frame(data), extra, req.conn, head=head, length=False)
                    self._write(req, resp)
            elif path == b"/echo":
                ctype = req.header(b"content-type")
                self._send(req, 200, body, b"Content-Type: %s\r\n" % ctype[0] if ctype else b"")
            elif path == b"/headers":
                pairs = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in req.headers]
                data = json.dumps(pairs).encode()
                self._send(req, 200, data, b"Content-Type: application/json\r\n")
            elif path.startswith(b"/status/"):
                self._send(req, _int_param(path[8:], 100, 599))
            elif path.startswith(b"/delay/"):
                delay = float(path[7:])
                if not (math.isfinite(delay) and 0.0 <= delay <= MAX_DELAY):
                    raise ValueError(delay)
                self._busy = True
                self._transport.pause_reading()
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(delay, self._delayed, req)
            elif path == b"/close":
                req.conn = 1
                self._send(req, 200, b"closing\n", _TEXT)
            elif path == b"/set-cookie":
                cookies = []
                for name, value in parse_qsl(req.query.decode("latin-1"), keep_blank_values=True):
                    cookie = f"{name}={value}".encode()
                    if _CTL.search(cookie):
                        raise ValueError(cookie)
                    cookies.append(b"Set-Cookie: %s; Path=/\r\n" % cookie)
                self._send(req, 200, b"ok\n", _TEXT + b"".join(cookies))
            elif path == b"/cookies":
                self._send(req, 200, b"; ".join(req.header(b"cookie")), _TEXT)
            else:
                self._send(req, 404, b"not found\n", _TEXT)
        except ValueError:
            self._send(req, 400, b"bad parameter\n", _TEXT)

    def _delayed(self, req: _Request) -> None:
        self._timer = None
        self._busy = False
        self._send(req, 200, b"delayed\n", _TEXT)
        self._resume()

    # -- output -------------------------------------------------------------------------
    def _send(self, req: _Request, status: int, body: bytes = b"", extra: bytes = b"") -> None:
        self._write(req, _build(status, body, extra, req.conn, head=req.method == b"HEAD"))

    def _write(self, req: _Request | None, data: bytes) -> None:
        """Write one final response; close afterwards if `req` is None or not keep-alive."""
        self._state.served += 1  # before the write, so a client that got the reply sees it
        if not self._transport.is_closing():
            self._transport.write(data)
        if req is None or req.conn == 1:
            self._close()

    def _close(self) -> None:
        if self._closing:
            return
        self._closing = True
        transport = self._transport
        if transport.can_write_eof():
            # Lingering close (RFC 9112 §9.6): send FIN after the pending writes but keep
            # reading, so unread pipelined requests cause no RST that would destroy the
            # responses still in flight to the client.
            transport.write_eof()
            self._timer = asyncio.get_running_loop().call_later(LINGER, transport.close)
        else:
            transport.close()  # flushes pending writes first


def _int_param(raw: bytes, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(raw)
    return int(raw)


def _loopback(host: str) -> str:
    """Return the address to bind for `host`, or raise ValueError if it is not loopback."""
    if host == "localhost":
        return "127.0.0.1"  # one address, so that port 0 yields a single port
    try:
        addr = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        raise ValueError(f"not a loopback address: {host!r}") from None
    if not addr.is_loopback:  # 127.0.0.0/8 or ::1
        raise ValueError(f"not a loopback address: {host!r}")
    return str(addr)


class EmbeddedServer:
    """A loopback HTTP/1.1 server running its own event loop in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for `host` (loopback only) and `port` (0: pick a free port)."""
        if not 0 <= port <= 65535:
            raise ValueError(f"invalid port: {port!r}")
        self._host = _loopback(host)
        self._port = port
        self._state = _State()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        """The bound IP address."""
        return self._host

    @property
    def port(self) -> int:
        """The bound port once started (the requested port before)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080`` or ``http://[::1]:8080``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    @property
    def requests_served(self) -> int:
        """Number of final responses written so far."""
        return self._state.served

    def start(self) -> EmbeddedServer:
        """Bind and start serving; return once listening (within 5 seconds)."""
        if self._thread is not None:
            raise RuntimeError("EmbeddedServer can only be started once")
        self._thread = threading.Thread(target=self._run, name="fusco-embedded-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_TIMEOUT):
            raise RuntimeError("embedded server did not start")
        if self._error is not None:
            self._thread.join(_TIMEOUT)
            raise self._error
        return self

    def stop(self) -> None:
        """Close the listener and all connections, then join the thread (within 5 seconds)."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None or not thread.is_alive():
            return
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already been closed
                loop.call_soon_threadsafe(event.set)
        thread.join(_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("embedded server did not stop within 5 s")

    def __enter__(self) -> EmbeddedServer:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(); never escapes the thread
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        state = self._state
        server = await loop.create_server(
            lambda: _HttpProtocol(state), self._host, self._port, backlog=1024
        )
        self._port = server.sockets[0].getsockname()[1]
        self._loop = loop
        self._ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            await asyncio.sleep(0)  # let accepted connections reach connection_made()
            for proto in list(state.conns):
                proto.abort()
            for _ in range(100):  # connection_lost() callbacks run on the next loop turns
                if not state.conns:
                    break
                await asyncio.sleep(0)
            await server.wait_closed()
