"""The provider adapter protocol: where everything provider-specific is declared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from guardline.errors import GuardlineError, UpstreamProtocolError
from guardline.exchange import Endpoint, Reply
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider

ChannelKey = tuple[Any, ...]
"""Identifies one text stream inside an SSE stream: a choice's content, a content block,
a tool call's arguments. Closing a prefix closes every channel under it; ``()`` closes all."""


@dataclass(slots=True)
class TextRef:
    """Where one string lives in a parsed JSON body: ``holder[key]``."""

    holder: Any
    key: str | int
    signed: bool = False
    """The vendor signs this text (Anthropic thinking): rewriting it breaks the call that
    sends it back, so guard mode follows ``policy.signed_thinking`` instead."""

    def get(self) -> str:
        value = self.holder[self.key]
        return value if isinstance(value, str) else ""

    def set(self, value: str) -> None:
        self.holder[self.key] = value


class Text(Protocol):
    """Anything guard mode can read as text and rewrite: a string in a body, an object
    key, the tokens of a logprobs list."""

    signed: bool

    def get(self) -> str: ...

    def set(self, value: str) -> None: ...


def text_at(holder: Any, key: str | int) -> list[TextRef]:
    """A ref to ``holder[key]`` if it is a non-empty string."""
    try:
        value = holder[key]
    except (KeyError, IndexError, TypeError):
        return []
    return [TextRef(holder, key)] if isinstance(value, str) and value else []


def string_leaves(value: Any) -> list[TextRef]:
    """Every string inside a JSON value (tool-call inputs are scanned field by field)."""
    out: list[TextRef] = []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        if isinstance(item, str):
            if item:
                out.append(TextRef(value, key))
        else:
            out += string_leaves(item)
    return out


def parts_text(holder: Any, key: str, text_types: tuple[str, ...] = ("text",)) -> list[TextRef]:
    """``holder[key]`` when it is a string, or the text of each text part when it is a list."""
    value = holder.get(key) if isinstance(holder, dict) else None
    if isinstance(value, str):
        return text_at(holder, key)
    out: list[TextRef] = []
    for part in value if isinstance(value, list) else ():
        if isinstance(part, dict) and part.get("type", "text") in text_types:
            out += text_at(part, "text")
    return out


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(slots=True)
class StreamState:
    """What an adapter remembers across the events of one stream."""

    terminal: bool = False
    sequence_number: int = -1
    last: dict[str, Any] | None = None
    """The parsed data of the last event inspected (None for comments and [DONE])."""


class Adapter(Protocol):
    """Everything provider-specific. Which texts guard mode scans is not the adapter's
    choice (every string is, see ``fields``), nor how a stream's texts continue across
    events (``channels``, by the events' shape); adapters say which conversation texts
    samples keep, what telemetry reads, and how errors look."""

    provider: Provider

    def auth_header(self, key: str) -> tuple[bytes, bytes]:
        """The header that carries an injected upstream key."""
        ...

    def error_body(self, err: GuardlineError, request_id: str) -> bytes: ...

    def stream_error_event(
        self, err: GuardlineError, request_id: str, endpoint: Endpoint, state: StreamState
    ) -> bytes: ...

    def inspect_event(self, endpoint: Endpoint, event: SSEEvent, state: StreamState) -> None:
        """Parse and check one upstream event, updating ``state``.

        Raises UpstreamProtocolError for an event the SDKs could not parse.
        """
        ...

    def request_texts(self, endpoint: Endpoint, body: dict[str, Any]) -> list[TextRef]:
        """The conversation the client sends (samples and records keep these): all roles,
        all text parts, tool-call arguments and results."""
        ...

    def response_texts(self, endpoint: Endpoint, body: dict[str, Any]) -> list[TextRef]:
        """The answer's texts in a non-streamed response (samples and records)."""
        ...

    def observe_response(self, endpoint: Endpoint, body: dict[str, Any], reply: Reply) -> None:
        """Model, usage, finish reason and output size of a non-streamed response."""
        ...

    def observe_event(
        self, endpoint: Endpoint, data: dict[str, Any], reply: Reply, now: float
    ) -> None:
        """The same, accumulated over a stream's events (``now``: when this one arrived)."""
        ...

    def usage_only(self, data: dict[str, Any]) -> bool:
        """Whether a stream event is the usage chunk Guardline asked for on a client's
        behalf (it is dropped for that client)."""
        ...

    def strip_usage(self, payload: bytes) -> bytes:
        """Stream bytes as a client that did not ask for usage would have received them
        (the rest of what asking adds). Applied to whole runs of events, not each one."""
        ...


def count(value: Any) -> int:
    """A token count from a usage object: non-negative ints only (anything else is 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def text_len(holder: Any, key: str) -> int:
    value = holder.get(key) if isinstance(holder, dict) else None
    return len(value) if isinstance(value, str) else 0


def json_object(data: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamProtocolError(
            "upstream sent a malformed stream event (invalid JSON)"
        ) from None
    if not isinstance(parsed, dict):
        raise UpstreamProtocolError("upstream sent a malformed stream event (not a JSON object)")
    return parsed


def atom(value: Any) -> str | int | None:
    """A value usable in a channel key (an upstream may send anything as an index)."""
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None
