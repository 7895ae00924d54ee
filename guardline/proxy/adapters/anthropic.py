"""Anthropic wire format: messages (and models, when the client says anthropic-version)."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from guardline.errors import GuardlineError
from guardline.exchange import Endpoint
from guardline.proxy.adapters.base import (
    ChannelKey,
    StreamState,
    TextRef,
    dicts,
    json_object,
    parts_text,
    string_leaves,
    text_at,
)
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider


class AnthropicAdapter:
    provider: Provider = "anthropic"
    endpoints: ClassVar[dict[tuple[str, str], Endpoint]] = {
        ("POST", "/v1/messages"): Endpoint.MESSAGES,
        ("GET", "/v1/models"): Endpoint.MODELS,
    }

    def auth_header(self, key: str) -> tuple[bytes, bytes]:
        return b"x-api-key", key.encode()

    def error_body(self, err: GuardlineError, request_id: str) -> bytes:
        return orjson.dumps(
            {
                "type": "error",
                "error": {"type": err.anthropic_type, "message": err.message, "code": err.code},
                "request_id": request_id,
            }
        )

    def stream_error_event(
        self, err: GuardlineError, request_id: str, endpoint: Endpoint, state: StreamState
    ) -> bytes:
        payload = {
            "type": "error",
            "error": {"type": err.anthropic_type, "message": err.message, "code": err.code},
        }
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

    def inspect_event(self, endpoint: Endpoint, event: SSEEvent, state: StreamState) -> None:
        state.last = None
        if event.data is None:
            return
        parsed = json_object(event.data)
        state.last = parsed
        kind = event.event or parsed.get("type")
        if kind in ("message_stop", "error"):
            state.terminal = True

    # text locations ------------------------------------------------------------------

    def request_texts(self, endpoint: Endpoint, body: dict[str, Any]) -> list[TextRef]:
        if endpoint is not Endpoint.MESSAGES:
            return []
        refs = parts_text(body, "system")
        for message in dicts(body.get("messages")):
            content = message.get("content")
            if isinstance(content, str):
                refs += text_at(message, "content")
            for block in dicts(content):
                refs += _block_texts(block)
        return refs

    def response_texts(self, endpoint: Endpoint, body: dict[str, Any]) -> list[TextRef]:
        if endpoint is not Endpoint.MESSAGES:
            return []
        return [r for block in dicts(body.get("content")) for r in _block_texts(block)]

    def event_texts(
        self, endpoint: Endpoint, event: SSEEvent, data: dict[str, Any]
    ) -> list[tuple[ChannelKey, TextRef]]:
        kind = data.get("type")
        index = data.get("index", 0)
        if kind == "content_block_delta":
            delta = data.get("delta")
            return [(("text", index), r) for r in text_at(delta, "text")] + [
                (("json", index), r) for r in text_at(delta, "partial_json")
            ]
        if kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "text":
                return [(("text", index), r) for r in text_at(block, "text")]
        return []

    def event_closes(
        self, endpoint: Endpoint, event: SSEEvent, data: dict[str, Any]
    ) -> list[ChannelKey]:
        kind = data.get("type")
        if kind == "content_block_stop":
            index = data.get("index", 0)
            return [("text", index), ("json", index)]
        if kind in ("message_stop", "error"):
            return [()]
        return []

    def final_texts(
        self, endpoint: Endpoint, event: SSEEvent, data: dict[str, Any]
    ) -> list[tuple[ChannelKey, TextRef]]:
        return []

    def splittable(self, endpoint: Endpoint) -> bool:
        return True


def _block_texts(block: dict[str, Any]) -> list[TextRef]:
    """Text of a content block. Thinking blocks are signed by the vendor and sent back
    verbatim, so they are never rewritten (and not scanned)."""
    kind = block.get("type")
    if kind == "text":
        return text_at(block, "text")
    if kind == "tool_use":
        return string_leaves(block.get("input"))
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return text_at(block, "content")
        return [r for b in dicts(content) for r in _block_texts(b)]
    if kind == "document":
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "text":
            return text_at(source, "data")
    return []
