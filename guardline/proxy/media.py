"""Media types, compared as RFC 9110 (8.3.1) says: type and subtype case-insensitively,
parameters after ``;``, whitespace around them ignored."""

from __future__ import annotations

import enum


class Media(enum.Enum):
    JSON = "json"
    SSE = "sse"
    OTHER = "other"
    NONE = "none"
    """No Content-Type at all."""


def media(content_type: bytes | None) -> Media:
    """What a Content-Type value says a body is: JSON (``application/json`` or any
    ``+json`` suffix type), SSE (``text/event-stream``), something else, or nothing."""
    if content_type is None:
        return Media.NONE
    essence = content_type.split(b";", 1)[0].strip().lower()
    if not essence:
        return Media.NONE
    if essence == b"text/event-stream":
        return Media.SSE
    kind, slash, subtype = essence.partition(b"/")
    if slash and (essence == b"application/json" or subtype.endswith(b"+json")) and kind:
        return Media.JSON
    return Media.OTHER
