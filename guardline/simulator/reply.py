"""A reply, decided once and rendered in any wire format, streamed or not."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from guardline.simulator.scenario import SCENARIOS, Plan
from guardline.simulator.text import count_tokens, generate, pieces, prompt_text


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    pieces: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    id: str
    model: str
    created: int
    text: str
    pieces: tuple[str, ...]
    """What is streamed, one content event per piece; joins to ``text``."""
    tool_call: ToolCall | None
    truncated: bool
    """Cut short by the request's max tokens."""
    prompt_tokens: int
    completion_tokens: int
    include_usage: bool


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE event; ``content`` frames are paced by the token delay."""

    data: bytes
    content: bool = False


def decide(body: dict[str, Any], plan: Plan, *, seed: int, messages_overhead: int = 3) -> Reply:
    model = str(body.get("model") or "")
    prompt, last_user = prompt_text(body)
    if plan.chunks is not None:
        chunks = plan.chunks
    else:
        if plan.reply is not None:
            text = plan.reply
        elif plan.scenario == "echo":
            text = f"You said: {last_user}"
        else:
            text = SCENARIOS.get(plan.scenario) or generate(prompt, seed=seed, model=model)
        chunks = tuple(pieces(text))
    limit = (
        body.get("max_completion_tokens") or body.get("max_tokens") or body.get("max_output_tokens")
    )
    truncated = isinstance(limit, int) and 0 < limit < len(chunks)
    if truncated:
        assert isinstance(limit, int)
        chunks = chunks[:limit]
    tool_call = None
    if plan.tool_call is not None:
        arguments = orjson.dumps(plan.tool_call).decode()
        tool_call = ToolCall(
            id="call_" + _hash(arguments, prompt)[:24],
            name=_first_tool_name(body),
            arguments=arguments,
            pieces=tuple(_split_every(arguments, 8)),
        )
        chunks = ()
    n_messages = len(body.get("messages") or []) or 1
    completion = len(chunks) + (len(tool_call.pieces) if tool_call else 0)
    options = body.get("stream_options")
    return Reply(
        id=_hash(prompt, model, str(seed), str(time.time_ns()))[:24],
        model=model,
        created=int(time.time()),
        text="".join(chunks),
        pieces=chunks,
        tool_call=tool_call,
        truncated=truncated,
        prompt_tokens=count_tokens(prompt) + messages_overhead * n_messages,
        completion_tokens=max(completion, 1),
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event is None:
        return b"data: " + payload + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def _first_tool_name(body: dict[str, Any]) -> str:
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict):
        tool = tools[0]
        function = tool.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
        if isinstance(tool.get("name"), str):
            return str(tool["name"])
    return "tool"


def _split_every(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()
