"""Anthropic wire format: messages (and models, when the client says anthropic-version)."""

from __future__ import annotations

from typing import ClassVar

import orjson

from guardline.errors import GuardlineError
from guardline.exchange import Endpoint
from guardline.proxy.adapters.base import StreamState, json_object
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
