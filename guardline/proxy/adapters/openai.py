"""OpenAI wire format: chat completions, completions, embeddings, responses, models."""

from __future__ import annotations

from typing import Any

import orjson

from guardline.errors import GuardlineError
from guardline.exchange import Endpoint, Reply, Usage
from guardline.proxy.adapters import channels
from guardline.proxy.adapters.base import (
    StreamState,
    TextRef,
    count,
    dicts,
    json_object,
    parts_text,
    text_at,
    text_len,
)
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider

_RESPONSES_TERMINAL = channels.RESPONSES_TERMINAL


class OpenAIAdapter:
    provider: Provider = "openai"

    def auth_header(self, key: str) -> tuple[bytes, bytes]:
        return b"authorization", b"Bearer " + key.encode()

    def _error(self, err: GuardlineError) -> dict[str, Any]:
        return {"message": err.message, "type": err.openai_type, "param": None, "code": err.code}

    def error_body(self, err: GuardlineError, request_id: str) -> bytes:
        return orjson.dumps({"error": self._error(err)})

    def stream_error_event(
        self, err: GuardlineError, request_id: str, endpoint: Endpoint, state: StreamState
    ) -> bytes:
        if endpoint is Endpoint.RESPONSES or state.sequence_number >= 0:
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
        seq = parsed.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            state.sequence_number = seq
        # By the event's shape, whatever the endpoint: Responses events end the stream
        # with their terminal types, chat and completions chunks with an error object.
        if (
            parsed.get("type") in _RESPONSES_TERMINAL
            or event.event == "error"
            or (parsed.get("error") and "type" not in parsed)
        ):
            state.terminal = True

    # text locations ------------------------------------------------------------------

    def request_texts(self, endpoint: Endpoint, body: dict[str, Any]) -> list[TextRef]:
        refs: list[TextRef] = []
        if endpoint is Endpoint.CHAT_COMPLETIONS:
            for message in dicts(body.get("messages")):
                refs += parts_text(message, "content")
                for call in dicts(message.get("tool_calls")):
                    refs += text_at(call.get("function"), "arguments")
        elif endpoint is Endpoint.COMPLETIONS:
            refs += _str_or_list(body, "prompt")
        elif endpoint is Endpoint.EMBEDDINGS:
            refs += _str_or_list(body, "input")
        elif endpoint is Endpoint.RESPONSES:
            refs += text_at(body, "instructions")
            if isinstance(body.get("input"), str):
                refs += text_at(body, "input")
            for item in dicts(body.get("input")):
                refs += parts_text(item, "content", ("input_text", "output_text", "text"))
                refs += text_at(item, "arguments") + text_at(item, "output")
        return refs

    def response_texts(self, endpoint: Endpoint, body: dict[str, Any]) -> list[TextRef]:
        refs: list[TextRef] = []
        if endpoint is Endpoint.CHAT_COMPLETIONS:
            for choice in dicts(body.get("choices")):
                message = choice.get("message")
                refs += text_at(message, "content") + text_at(message, "refusal")
                for call in dicts(message.get("tool_calls") if isinstance(message, dict) else None):
                    refs += text_at(call.get("function"), "arguments")
        elif endpoint is Endpoint.COMPLETIONS:
            for choice in dicts(body.get("choices")):
                refs += text_at(choice, "text")
        elif endpoint is Endpoint.RESPONSES:
            for _, ref in channels.output_texts(body.get("output")):
                refs.append(ref)
        return refs

    # what telemetry needs -------------------------------------------------------------

    def observe_response(self, endpoint: Endpoint, body: dict[str, Any], reply: Reply) -> None:
        if endpoint is Endpoint.RESPONSES:
            _observe_responses_object(body, reply)
            return
        reply.model = _str(body.get("model")) or reply.model
        reply.usage = _usage(body.get("usage")) or reply.usage
        for choice in dicts(body.get("choices")):
            reply.finish_reason = _str(choice.get("finish_reason")) or reply.finish_reason
            if endpoint is Endpoint.COMPLETIONS:
                reply.output_chars += text_len(choice, "text")
                continue
            message = choice.get("message")
            if not isinstance(message, dict):
                continue
            reply.output_chars += text_len(message, "content")
            reply.refusal |= text_len(message, "refusal") > 0
            for call in dicts(message.get("tool_calls")):
                reply.tool_calls += 1
                function = call.get("function")
                reply.output_chars += text_len(function, "arguments")

    def observe_event(
        self, endpoint: Endpoint, data: dict[str, Any], reply: Reply, now: float
    ) -> None:
        if endpoint is Endpoint.RESPONSES:
            _observe_responses_event(data, reply, now)
            return
        if reply.model is None:
            reply.model = _str(data.get("model"))
        usage = data.get("usage")
        if usage is not None:
            reply.usage = _usage(usage) or reply.usage
        produced = 0
        for choice in dicts(data.get("choices")):
            reply.finish_reason = _str(choice.get("finish_reason")) or reply.finish_reason
            if endpoint is Endpoint.COMPLETIONS:
                produced += text_len(choice, "text")
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            produced += text_len(delta, "content")
            if text_len(delta, "refusal"):
                reply.refusal = True
                produced += 1
            for call in dicts(delta.get("tool_calls")):
                if call.get("id"):  # later deltas of the same call carry only its index
                    reply.tool_calls += 1
                produced += text_len(call.get("function"), "arguments")
        if produced:
            reply.output_chars += produced
            reply.chunk_times.append(now)

    def usage_only(self, data: dict[str, Any]) -> bool:
        return data.get("usage") is not None and not data.get("choices")

    def strip_usage(self, payload: bytes) -> bytes:
        # Asking for usage adds "usage":null to every chunk. The events are compact JSON, and
        # inside a string the quote would be escaped (\"), so this cut never touches text.
        return payload.replace(b',"usage":null', b"")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _usage(usage: Any) -> Usage | None:
    """Chat/completions (prompt/completion) and Responses (input/output) usage alike."""
    if not isinstance(usage, dict):
        return None
    details_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    details_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    return Usage(
        input_tokens=count(usage.get("prompt_tokens", usage.get("input_tokens"))),
        output_tokens=count(usage.get("completion_tokens", usage.get("output_tokens"))),
        cached_input_tokens=count(
            details_in.get("cached_tokens") if isinstance(details_in, dict) else None
        ),
        reasoning_tokens=count(
            details_out.get("reasoning_tokens") if isinstance(details_out, dict) else None
        ),
    )


def _observe_responses_object(response: dict[str, Any], reply: Reply) -> None:
    """A Responses-API response object (the body, or the one a terminal event carries)."""
    reply.model = _str(response.get("model")) or reply.model
    reply.usage = _usage(response.get("usage")) or reply.usage
    status = response.get("status")
    if status == "completed":
        reply.finish_reason = "stop"
    elif status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        reply.finish_reason = _str(reason) or "incomplete"
    elif isinstance(status, str):
        reply.finish_reason = status
    if reply.output_chars or reply.tool_calls or reply.refusal:
        return  # a stream already counted its output from the deltas
    for item in dicts(response.get("output")):
        if item.get("type") == "function_call":
            reply.tool_calls += 1
            reply.output_chars += text_len(item, "arguments")
        for part in dicts(item.get("content")):
            reply.output_chars += text_len(part, "text")
            reply.refusal |= text_len(part, "refusal") > 0


def _observe_responses_event(data: dict[str, Any], reply: Reply, now: float) -> None:
    kind = data.get("type")
    if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
        if produced := text_len(data, "delta"):
            reply.output_chars += produced
            reply.chunk_times.append(now)
    elif kind == "response.refusal.delta":
        reply.refusal = True
        reply.chunk_times.append(now)
    elif kind == "response.output_item.added":
        item = data.get("item")
        if isinstance(item, dict) and item.get("type") == "function_call":
            reply.tool_calls += 1
    elif kind == "response.created" or kind in _RESPONSES_TERMINAL:
        response = data.get("response")
        if isinstance(response, dict):
            _observe_responses_object(response, reply)


def _str_or_list(body: dict[str, Any], key: str) -> list[TextRef]:
    value = body.get(key)
    if isinstance(value, list):
        return [r for i in range(len(value)) for r in text_at(value, i)]
    return text_at(body, key)
