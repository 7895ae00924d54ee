"""Incremental server-sent-events decoding that keeps every event's exact bytes.

The relay forwards complete events as soon as they complete, so an event's raw bytes go
to the client unchanged unless a guard rewrites it. Line ends may be LF or CRLF.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    raw: bytes
    """The event's bytes including its terminating blank line."""
    event: str | None
    data: str | None
    """Data lines joined with LF; None when the event has no data field (a comment)."""


def parse_event(raw: bytes) -> SSEEvent:
    event: str | None = None
    data: list[str] = []
    for line in raw.splitlines():
        if not line or line.startswith(b":"):
            continue
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return SSEEvent(raw, event, "\n".join(data) if data else None)


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
        while start < size:
            end = _boundary(buffer, start)
            if end < 0:
                break
            events.append(parse_event(buffer[start:end]))
            start = end
        self._buffer = buffer[start:] if start else buffer
        return events


def _boundary(buffer: bytes, start: int) -> int:
    """End (exclusive) of the first complete event at or after ``start``, or -1."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\r\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf + 2 <= lf):
        return crlf + 4
    if lf >= 0:
        return lf + 2
    return -1
