"""Anthropic wire format: messages (and models, when the client says anthropic-version)."""

from __future__ import annotations

from typing import Any

import orjson

from guardline.errors import GuardlineError
from guardline.exchange import Endpoint, Reply, Usage
from guardline.proxy.adapters.base import (
    StreamState,
    TextRef,
    count,
    dicts,
    json_object,
    parts_text,
    string_leaves,
    text_at,
    text_len,
)
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider


class AnthropicAdapter:
    provider: Provider = "anthropic"

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
        if event.event in ("message_stop", "error") or parsed.get("type") in (
            "message_stop",
            "error",
        ):
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

    # what telemetry needs -------------------------------------------------------------

    def observe_response(self, endpoint: Endpoint, body: dict[str, Any], reply: Reply) -> None:
        if endpoint is not Endpoint.MESSAGES:
            return
        reply.model = _str(body.get("model")) or reply.model
        reply.usage = _usage(body.get("usage"), reply.usage)
        _stop(body.get("stop_reason"), reply)
        for block in dicts(body.get("content")):
            kind = block.get("type")
            if kind == "text":
                reply.output_chars += text_len(block, "text")
            elif kind == "tool_use":
                reply.tool_calls += 1

    def observe_event(
        self, endpoint: Endpoint, data: dict[str, Any], reply: Reply, now: float
    ) -> None:
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta")
            if produced := text_len(delta, "text") + text_len(delta, "partial_json"):
                reply.output_chars += produced
                reply.chunk_times.append(now)
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") == "tool_use":
                reply.tool_calls += 1
        elif kind == "message_start":
            message = data.get("message")
            if isinstance(message, dict):
                reply.model = _str(message.get("model")) or reply.model
                reply.usage = _usage(message.get("usage"), reply.usage)
        elif kind == "message_delta":
            # Counts here are cumulative and replace those of message_start.
            reply.usage = _usage(data.get("usage"), reply.usage)
            delta = data.get("delta")
            if isinstance(delta, dict):
                _stop(delta.get("stop_reason"), reply)

    def usage_only(self, data: dict[str, Any]) -> bool:
        return False  # Anthropic streams always report usage; Guardline never asks

    def strip_usage(self, payload: bytes) -> bytes:
        return payload


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _stop(reason: Any, reply: Reply) -> None:
    if isinstance(reason, str) and reason:
        reply.finish_reason = reason
        reply.refusal |= reason == "refusal"


_RAW_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _usage(usage: Any, known: Usage | None) -> Usage | None:
    """Anthropic counts input in three parts (uncached, cache read, cache write); Usage
    counts input as their sum. Fields absent here keep their earlier values."""
    if not isinstance(usage, dict) or not any(k in usage for k in _RAW_FIELDS):
        return known
    out = known or Usage()
    uncached = out.input_tokens - out.cached_input_tokens - out.cache_write_tokens
    if "input_tokens" in usage:
        uncached = count(usage["input_tokens"])
    if "cache_read_input_tokens" in usage:
        out.cached_input_tokens = count(usage["cache_read_input_tokens"])
    if "cache_creation_input_tokens" in usage:
        out.cache_write_tokens = count(usage["cache_creation_input_tokens"])
    if "output_tokens" in usage:
        out.output_tokens = count(usage["output_tokens"])
    out.input_tokens = uncached + out.cached_input_tokens + out.cache_write_tokens
    return out


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
