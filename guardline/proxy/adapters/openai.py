"""OpenAI wire format: chat completions, completions, embeddings, responses, models."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from guardline.errors import GuardlineError
from guardline.exchange import Endpoint
from guardline.proxy.adapters.base import StreamState, json_object
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider

# Responses-API stream events after which nothing more comes.
_RESPONSES_TERMINAL = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "error"}
)


class OpenAIAdapter:
    provider: Provider = "openai"
    endpoints: ClassVar[dict[tuple[str, str], Endpoint]] = {
        ("POST", "/v1/chat/completions"): Endpoint.CHAT_COMPLETIONS,
        ("POST", "/v1/completions"): Endpoint.COMPLETIONS,
        ("POST", "/v1/embeddings"): Endpoint.EMBEDDINGS,
        ("POST", "/v1/responses"): Endpoint.RESPONSES,
        ("GET", "/v1/models"): Endpoint.MODELS,
    }

    def auth_header(self, key: str) -> tuple[bytes, bytes]:
        return b"authorization", b"Bearer " + key.encode()

    def _error(self, err: GuardlineError) -> dict[str, Any]:
        return {"message": err.message, "type": err.openai_type, "param": None, "code": err.code}

    def error_body(self, err: GuardlineError, request_id: str) -> bytes:
        return orjson.dumps({"error": self._error(err)})

    def stream_error_event(
        self, err: GuardlineError, request_id: str, endpoint: Endpoint, state: StreamState
    ) -> bytes:
        if endpoint is Endpoint.RESPONSES:
            payload = {
                "type": "error",
                "code": err.code,
                "message": err.message,
                "param": None,
                "sequence_number": state.sequence_number + 1,
            }
            return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
        # The SDKs raise APIError for a data event that carries an "error" object.
        return b"data: " + orjson.dumps({"error": self._error(err)}) + b"\n\n"

    def inspect_event(self, endpoint: Endpoint, event: SSEEvent, state: StreamState) -> None:
        data = event.data
        state.last = None
        if data is None:
            return  # comment / keep-alive
        if data == "[DONE]":
            state.terminal = True
            return
        parsed = json_object(data)
        state.last = parsed
        if endpoint is Endpoint.RESPONSES:
            seq = parsed.get("sequence_number")
            if isinstance(seq, int):
                state.sequence_number = seq
            if parsed.get("type") in _RESPONSES_TERMINAL or event.event == "error":
                state.terminal = True
        elif parsed.get("error"):
            state.terminal = True  # an upstream error event ends the stream for the SDK
