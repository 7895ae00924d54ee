"""Incremental server-sent-events decoding that keeps every event's exact bytes.

The relay forwards complete events as soon as they complete, so an event's raw bytes go
to the client unchanged unless a guard rewrites it. Lines may end with LF, CRLF or a lone
CR, as the SSE specification allows; blank lines before an event belong to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EOL = re.compile(rb"\r\n?|\n")


@dataclass(slots=True)
class SSEEvent:
    raw: bytes
    """The event's bytes including its terminating blank line."""
    event: str | None
    data: str | None
    """Data lines joined with LF; None when the event has no data field (a comment)."""
    extra: bool = False
    """The event has lines besides ``event`` and ``data``: comments, ``id``, ``retry`` or
    unknown fields (a guard re-renders such an event without them)."""


def parse_event(raw: bytes) -> SSEEvent:
    event: str | None = None
    data: list[str] = []
    extra = False
    for line in raw.splitlines():
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        else:
            extra = True
    return SSEEvent(raw, event, "\n".join(data) if data else None, extra)


class SSEDecoder:
    """Feed bytes; get back the events they complete. ``pending`` is what is left."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    @property
    def pending(self) -> bytes:
        return self._buffer

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SSEEvent] = []
        start = 0
        size = len(buffer)
        boundary = _lf_boundary if b"\r" not in buffer else _boundary
        while start < size:
            end = boundary(buffer, start)
            if end < 0:
                break
            events.append(parse_event(buffer[start:end]))
            start = end
        self._buffer = buffer[start:] if start else buffer
        return events


def _lf_boundary(buffer: bytes, start: int) -> int:
    """The common case, LF line ends only: the end of the first blank line after the
    event's first line."""
    first = start
    while first < len(buffer) and buffer[first] == 0x0A:
        first += 1
    end = buffer.find(b"\n\n", first)
    return -1 if end < 0 else end + 2


def _boundary(buffer: bytes, start: int) -> int:
    """End (exclusive) of the first complete event at or after ``start``, or -1. A lone
    CR as the buffer's last byte could be the first half of a CRLF: it ends the event
    only when it ends a blank line (a following LF then begins the next event, as a
    blank line before it)."""
    pos = start
    seen_line = False
    size = len(buffer)
    while True:
        match = _EOL.search(buffer, pos)
        if match is None:
            return -1
        blank = match.start() == pos
        end = match.end()
        if end == size and buffer[end - 1] == 0x0D and not (blank and seen_line):
            return -1
        if blank and seen_line:
            return end
        seen_line = seen_line or not blank
        pos = end
