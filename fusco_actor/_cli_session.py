"""The clients of one ``fusco get`` run: one per origin, and one exchange at a time.

Each origin (scheme, host, port) gets its own client, started with the
run's options and the proxy :func:`~fusco_actor._cli_proxy.choose_proxy`
picks for it; a redirect back to an origin reuses its client (and its
kept-alive connection). :meth:`Session.exchange` connects first (so ``-v``
and ``-w`` can tell the connect apart), then streams the request and returns
the response once its head arrived. Every client is stopped by
:meth:`Session.close`.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

import fusco_actor
from fusco_actor._cli_common import STOP_TIMEOUT, Failure, stop_within, tls_options
from fusco_actor._cli_proxy import ProxySchemeError, choose_proxy
from fusco_actor._connect_parts import tunnel_request
from fusco_actor._inbox import Call
from fusco_actor._options import parse_destination, parse_options
from fusco_actor._wire import Origin
from fusco_actor.messages import Request

if TYPE_CHECKING:
    import argparse

    from fusco_actor._cli_output import Trace
    from fusco_actor._cli_redirects import Hop
    from fusco_actor._cli_request import Url
    from fusco_actor._cli_writeout import Stats
    from fusco_actor._connect_parts import ConnectInfo

__all__ = ["Session"]


class _Peer:
    """One origin's client and what ``-v`` needs to show its requests as sent."""

    __slots__ = ("client", "origin", "proxy", "tunnel")

    def __init__(self, url: Url, options: dict[str, Any]) -> None:
        destination = parse_destination(url.destination)
        parsed = parse_options(options)
        self.origin = Origin(destination, parsed)
        self.proxy = parsed.proxy
        tunnelled = parsed.proxy is not None and url.scheme == "https"
        self.tunnel = tunnel_request(destination, parsed) if tunnelled else b""
        self.client = fusco_actor.start(url.destination, **options)


class Session:
    """The clients, deadline and connect log of one ``fusco get`` run.

    Args:
        args: the parsed command line (``connect_timeout``, ``timeout`` =
            ``--max-time``, ``proxy``, ``noproxy``, ``insecure``, ``cacert``).
        trace: the ``-v`` trace.
        started: ``time.monotonic()`` at the start of the run.

    Raises:
        Failure: the TLS options cannot be used (a CA file that does not load).
    """

    def __init__(self, args: argparse.Namespace, trace: Trace, started: float) -> None:
        """Prepare the options every client of the run shares."""
        self._args = args
        self._trace = trace
        self._deadline: float | None = None if args.timeout is None else started + args.timeout
        self._options = tls_options(args)  # the proxy is chosen for each origin
        if args.connect_timeout is not None:
            self._options["connect_timeout"] = args.connect_timeout
        self._infos: list[ConnectInfo] = []
        self._options["on_connect"] = self._infos.append  # list.append: safe from any thread
        self._peers: dict[tuple[str, str, int], _Peer] = {}
        self._files = contextlib.ExitStack()
        self.stop_wait = STOP_TIMEOUT

    def remaining(self) -> float | None:
        """Return the seconds left of ``--max-time`` (None = no limit)."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def _peer(self, url: Url) -> _Peer:
        peer = self._peers.get(url.origin)
        if peer is None:
            options = dict(self._options)
            try:
                proxy = choose_proxy(
                    url.scheme, url.host, self._args.proxy, self._args.noproxy, os.environ
                )
            except ProxySchemeError as exc:
                raise Failure(exc) from None
            if proxy is not None:
                options["proxy"] = proxy
                self._trace.note(f"Using proxy {proxy.rpartition('@')[2]}")
            peer = self._peers[url.origin] = _Peer(url, options)
        return peer

    def _connected(self, seen: int, url: Url, peer: _Peer, stats: Stats) -> int:
        """Record the connects made since ``seen``; return the new count."""
        infos = self._infos[seen:]
        for info in infos:
            if not info.ok or info.address is None:
                continue
            stats.num_connects += 1
            stats.connect_time = info.connect_time
            stats.remote = info.address
            host = peer.proxy.host if peer.proxy is not None else url.host
            self._trace.note(f"Connected to {host} ({info.address[0]}) port {info.address[1]}")
            if peer.tunnel:
                self._trace.sent(peer.tunnel)
                self._trace.note(f"CONNECT tunnel to {url.host}:{url.port} established")
        return seen + len(infos)

    def exchange(self, hop: Hop, stats: Stats) -> fusco_actor.StreamingResponse:
        """Send ``hop``'s request; return its response once the head arrived.

        Fills ``stats`` with the request's side (start, connect, sizes) and
        the head's (status, version, headers, when it came).

        Raises:
            FuscoError: the connect or the request failed.
            OSError: the body's file cannot be opened (named).
            Failure: the proxy chosen is not an ``http://`` proxy.
        """
        url = hop.url
        peer = self._peer(url)
        stats.request_started = time.monotonic()
        if hop.redirects == 0:  # -w's clock starts here, the client started, as curl's
            stats.started = stats.request_started
        stats.connect_time, stats.head_at, stats.ended_at = None, None, None
        stats.url_effective, stats.method, stats.scheme = url.text, hop.method, url.scheme
        stats.size_download = 0
        body: Any = b""
        if hop.body is not None:
            opened = hop.body.open()
            body = opened if isinstance(opened, bytes) else self._files.enter_context(opened)
        request = Request(url.target, hop.method, hop.headers, body)  # BadArgument: no connect
        before = len(self._infos)
        peer.client.connect(timeout=self.remaining())
        seen = self._connected(before, url, peer, stats)
        if seen == before:
            self._trace.note(f"Re-using the connection to {url.host} port {url.port}")
        head = peer.origin.head(Call(request))
        size = 0 if hop.body is None else hop.body.size
        stats.size_request, stats.size_upload = len(head) + size, size
        self._trace.sent(head)
        response = peer.client.stream(
            url.target, hop.method, hop.headers, body, self.remaining()
        ).get()
        stats.head_at = time.monotonic()
        self._connected(seen, url, peer, stats)  # a reconnect while sending (send_retry)
        stats.status, stats.version, stats.headers = (
            response.status, response.version, response.headers
        )  # fmt: skip
        return response

    def close(self) -> None:
        """Stop every client (waiting ``stop_wait`` seconds at most) and close body files."""
        for peer in self._peers.values():
            stop_within(peer.client.disconnect, self.stop_wait)
        self._files.close()
