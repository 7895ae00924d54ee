"""Anthropic wire format: messages (streamed and not), count_tokens, models."""

from __future__ import annotations

from typing import Any

import orjson

from guardline.simulator.reply import Frame, Reply, sse

MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}


def _stop_reason(reply: Reply) -> str:
    if reply.tool_call is not None:
        return "tool_use"
    return "max_tokens" if reply.truncated else "end_turn"


def _usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "standard",
    }


def _message(
    reply: Reply, content: list[dict[str, Any]], stop: str | None, output: int
) -> dict[str, Any]:
    return {
        "id": "msg_" + reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(reply, output),
    }


def _tool_block(reply: Reply, done: bool) -> dict[str, Any]:
    assert reply.tool_call is not None
    call = reply.tool_call
    tool_input = orjson.loads(call.arguments) if done else {}
    return {
        "type": "tool_use",
        "id": "toolu_" + call.id[5:],
        "name": call.name,
        "input": tool_input,
    }


def message(reply: Reply) -> dict[str, Any]:
    if reply.tool_call is not None:
        content = [_tool_block(reply, True)]
    else:
        content = [{"type": "text", "text": reply.text}]
    return _message(reply, content, _stop_reason(reply), reply.completion_tokens)


def message_stream(reply: Reply) -> list[Frame]:
    start = _message(reply, [], None, 1)
    frames = [Frame(sse({"type": "message_start", "message": start}, "message_start"))]
    if reply.tool_call is not None:
        block: dict[str, Any] = _tool_block(reply, False)
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in reply.tool_call.pieces]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in reply.pieces]
    frames.append(
        Frame(
            sse(
                {"type": "content_block_start", "index": 0, "content_block": block},
                "content_block_start",
            )
        )
    )
    frames.append(Frame(sse({"type": "ping"}, "ping")))
    for delta in deltas:
        event = {"type": "content_block_delta", "index": 0, "delta": delta}
        frames.append(Frame(sse(event, "content_block_delta"), content=True))
    frames.append(Frame(sse({"type": "content_block_stop", "index": 0}, "content_block_stop")))
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None},
        "usage": {"output_tokens": reply.completion_tokens},
    }
    frames.append(Frame(sse(end, "message_delta")))
    frames.append(Frame(sse({"type": "message_stop"}, "message_stop")))
    return frames


def count_tokens(reply: Reply) -> dict[str, Any]:
    return {"input_tokens": reply.prompt_tokens}


def model(name: str) -> dict[str, Any]:
    return {"type": "model", "id": name, "display_name": name, "created_at": "2025-09-29T00:00:00Z"}


def models() -> dict[str, Any]:
    data = [model(m) for m in MODELS]
    return {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
