"""OpenAI wire format: chat completions, completions, responses, embeddings, models."""

from __future__ import annotations

import base64
import hashlib
import random
import struct
from typing import Any

from guardline.simulator.reply import Frame, Reply, sse
from guardline.simulator.text import count_tokens

MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "o4-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
)
_FINGERPRINT = "fp_guardline_sim"


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "invalid_request_error",
        404: "invalid_request_error",
        429: "rate_limit_exceeded" if code else "requests",
    }.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _completion_usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _chat_usage(reply: Reply) -> dict[str, Any]:
    return {
        **_completion_usage(reply),
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(reply: Reply) -> str:
    if reply.tool_call is not None:
        return "tool_calls"
    return "length" if reply.truncated else "stop"


# chat completions ----------------------------------------------------------------------


def chat(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_call is not None:
        call = reply.tool_call
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
        ]
    return {
        "id": "chatcmpl-" + reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(reply)}
        ],
        "usage": _chat_usage(reply),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def _stream_head(reply: Reply, prefix: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": prefix + reply.id,
        "object": kind,
        "created": reply.created,
        "model": reply.model,
        **extra,
    }


def _chunk(reply: Reply, head: dict[str, Any], choice: dict[str, Any]) -> dict[str, Any]:
    out = {**head, "choices": [choice]}
    if reply.include_usage:
        out["usage"] = None  # as the API does: every chunk carries usage once it was asked for
    return out


def _stream_end(
    reply: Reply, frames: list[Frame], head: dict[str, Any], usage: dict[str, Any]
) -> list[Frame]:
    if reply.include_usage:
        frames.append(Frame(sse({**head, "choices": [], "usage": usage})))
    frames.append(Frame(b"data: [DONE]\n\n"))
    return frames


def chat_stream(reply: Reply) -> list[Frame]:
    head = _stream_head(
        reply,
        "chatcmpl-",
        "chat.completion.chunk",
        service_tier="default",
        system_fingerprint=_FINGERPRINT,
    )

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Frame:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return Frame(sse(_chunk(reply, head, choice)))

    frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
    if reply.tool_call is not None:
        call = reply.tool_call
        function = {"name": call.name, "arguments": ""}
        frames.append(
            chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": call.id, "type": "function", "function": function}
                    ]
                }
            )
        )
        for piece in call.pieces:
            delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            frames.append(Frame(chunk(delta).data, content=True))
    for piece in reply.pieces:
        frames.append(Frame(chunk({"content": piece}).data, content=True))
    frames.append(chunk({}, _finish(reply)))
    return _stream_end(reply, frames, head, _chat_usage(reply))


# legacy completions --------------------------------------------------------------------


def completion(reply: Reply) -> dict[str, Any]:
    return {
        "id": "cmpl-" + reply.id,
        "object": "text_completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {"text": reply.text, "index": 0, "logprobs": None, "finish_reason": _finish(reply)}
        ],
        "usage": _completion_usage(reply),
        "system_fingerprint": _FINGERPRINT,
    }


def completion_stream(reply: Reply) -> list[Frame]:
    head = _stream_head(reply, "cmpl-", "text_completion", system_fingerprint=_FINGERPRINT)

    def chunk(text: str, finish: str | None) -> dict[str, Any]:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return _chunk(reply, head, choice)

    frames = [Frame(sse(chunk(piece, None)), content=True) for piece in reply.pieces]
    frames.append(Frame(sse(chunk("", _finish(reply)))))
    return _stream_end(reply, frames, head, _completion_usage(reply))


# responses -----------------------------------------------------------------------------


def _output_item(reply: Reply, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if reply.tool_call is not None:
        call = reply.tool_call
        return {
            "type": "function_call",
            "id": "fc_" + reply.id,
            "call_id": call.id,
            "name": call.name,
            "arguments": call.arguments if done else "",
            "status": status,
        }
    content = [_text_part(reply.text)] if done else []
    return {
        "type": "message",
        "id": "msg_" + reply.id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response(reply: Reply, body: dict[str, Any], *, done: bool = True) -> dict[str, Any]:
    status = ("incomplete" if reply.truncated else "completed") if done else "in_progress"
    usage = None
    if done:
        usage = {
            "input_tokens": reply.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": reply.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }
    return {
        "id": "resp_" + reply.id,
        "object": "response",
        "created_at": reply.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if done and reply.truncated else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": reply.model,
        "output": [_output_item(reply, True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def response_stream(reply: Reply, body: dict[str, Any]) -> list[Frame]:
    frames: list[Frame] = []

    def emit(kind: str, content: bool = False, **fields: Any) -> None:
        frames.append(
            Frame(sse({"type": kind, "sequence_number": len(frames), **fields}, kind), content)
        )

    emit("response.created", response=response(reply, body, done=False))
    emit("response.in_progress", response=response(reply, body, done=False))
    emit("response.output_item.added", output_index=0, item=_output_item(reply, False))
    item_id = _output_item(reply, False)["id"]
    if reply.tool_call is not None:
        call = reply.tool_call
        for piece in call.pieces:
            emit(
                "response.function_call_arguments.delta",
                True,
                item_id=item_id,
                output_index=0,
                delta=piece,
            )
        emit(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=0,
            arguments=call.arguments,
        )
    else:
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        emit("response.content_part.added", **where, part=_text_part(""))
        for piece in reply.pieces:
            emit("response.output_text.delta", True, **where, delta=piece, logprobs=[])
        emit("response.output_text.done", **where, text=reply.text, logprobs=[])
        emit("response.content_part.done", **where, part=_text_part(reply.text))
    emit("response.output_item.done", output_index=0, item=_output_item(reply, True))
    final = response(reply, body)
    emit("response.incomplete" if reply.truncated else "response.completed", response=final)
    return frames


# embeddings and models -----------------------------------------------------------------


def embeddings(body: dict[str, Any], *, seed: int) -> dict[str, Any]:
    raw = body.get("input")
    inputs: list[Any] = (
        raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    )
    dims = body.get("dimensions")
    size = dims if isinstance(dims, int) and 0 < dims <= 4096 else 1536
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else " ".join(map(str, item or []))
        tokens += count_tokens(text) if isinstance(item, str) else len(item or [])
        vector = _vector(text, size, seed)
        value: Any = (
            base64.b64encode(struct.pack(f"<{size}f", *vector)).decode() if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _vector(text: str, size: int, seed: int) -> list[float]:
    rng = random.Random(hashlib.sha256(f"{seed}\x00{text}".encode()).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(size)]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vector]


def model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1715367049, "owned_by": "guardline-simulator"}


def models() -> dict[str, Any]:
    return {"object": "list", "data": [model(m) for m in MODELS]}
