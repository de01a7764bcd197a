"""Helpers shared by the parser's unit and property tests."""

from __future__ import annotations

from collections.abc import Sequence

from fusco_actor._events import NEED_DATA, BodyChunk, PeerClosed
from fusco_actor._parser import ResponseParser


def drain(parser: ResponseParser) -> list[object]:
    """Pull events until NEED_DATA or PeerClosed (which repeats forever)."""
    events: list[object] = []
    for _ in range(100_000):
        event = parser.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, PeerClosed):
            return events
    raise AssertionError("parser never asked for more data")


def merge_chunks(events: Sequence[object]) -> list[object]:
    """Join consecutive BodyChunks so that differently sliced input compares equal."""
    out: list[object] = []
    for event in events:
        if isinstance(event, BodyChunk):
            assert event.data, "the parser must never emit an empty BodyChunk"
            if out and isinstance(out[-1], BodyChunk):
                out[-1] = BodyChunk(out[-1].data + event.data)
                continue
        out.append(event)
    return out
