"""How a stream's texts continue across its events: channels.

A channel is one text that a stream sends in pieces (a choice's content, a content block,
a tool call's arguments, a reasoning summary): the stream guard holds its pieces until the
sentence they belong to has been scanned. Channels are found by the shape of an event,
not by the endpoint it came from, so a stream in another endpoint's (or vendor's) format is
held just the same: chat and completions chunks (``choices``), Responses events
(``response.*``), Anthropic events (``content_block_*``, legacy ``completion``), and, for a
format Guardline does not know, every string under a top-level ``delta``. Every string of
a delta is a channel, known field or not; strings outside channels are scanned whole, in
their own event.
"""

from __future__ import annotations

from typing import Any

from guardline.proxy.adapters import fields
from guardline.proxy.adapters.base import ChannelKey, TextRef, atom, dicts, text_at
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider

Piece = tuple[ChannelKey, TextRef]

RESPONSES_TERMINAL = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "error"}
)
"""Responses-API stream events after which nothing more comes."""
_ANTHROPIC = frozenset({"content_block_start", "content_block_delta", "completion"})


def event_texts(provider: Provider, data: dict[str, Any]) -> list[Piece]:
    """The text one event adds to each of its channels."""
    kind = data.get("type")
    if isinstance(kind, str) and kind.startswith("response."):
        return _responses_event_texts(kind, data)
    if kind in _ANTHROPIC:
        return _anthropic_texts(provider, kind, data)
    out: list[Piece] = []
    choices = data.get("choices")
    if isinstance(choices, list):
        for choice in dicts(choices):
            prefix = ("c", atom(choice.get("index", 0)))
            out += [((*prefix, "text"), r) for r in text_at(choice, "text")]  # completions
            delta = choice.get("delta")
            if isinstance(delta, dict):
                out += _delta_texts(provider, prefix, delta)
        return out
    delta = data.get("delta")
    if isinstance(delta, str) and delta:
        return [(("g", "delta"), TextRef(data, "delta"))]
    if isinstance(delta, dict):
        return _delta_texts(provider, ("g",), delta)
    return []


def event_closes(event: SSEEvent, data: dict[str, Any]) -> list[ChannelKey]:
    """Channel prefixes an event ends (no more text will come for them)."""
    kind = data.get("type")
    if kind in RESPONSES_TERMINAL or kind == "message_stop" or event.event == "error":
        return [()]
    if isinstance(kind, str) and kind.startswith("response."):
        if kind == "response.output_item.done":
            item = data.get("item")
            return [("r", atom(item.get("id")))] if isinstance(item, dict) else []
        if kind.endswith(".done"):
            part = data.get("part")
            if isinstance(part, dict):
                return [key for key, _ in _part_texts(atom(data.get("item_id")), part, data)]
            return [_responses_key(data, kind.removesuffix(".done"))]
        return []
    if kind == "content_block_stop":
        return [("a", atom(data.get("index", 0)))]
    closes: list[ChannelKey] = []
    for choice in dicts(data.get("choices")):
        if choice.get("finish_reason"):
            closes.append(("c", atom(choice.get("index", 0))))
    if data.get("error"):
        closes.append(())
    return closes


def final_texts(data: dict[str, Any]) -> list[Piece]:
    """Fields that repeat a channel's whole text (and must carry what was released)."""
    kind = data.get("type")
    if not isinstance(kind, str) or not kind.startswith("response."):
        return []
    if kind in RESPONSES_TERMINAL:
        response = data.get("response")
        return output_texts(response.get("output") if isinstance(response, dict) else None)
    if kind == "response.output_item.done":
        return output_texts([data.get("item")])
    if not kind.endswith(".done"):
        return []
    part = data.get("part")
    if isinstance(part, dict):
        return _part_texts(atom(data.get("item_id")), part, data)
    family = kind.removesuffix(".done")
    name = _DONE_FIELD.get(family)
    if name is None:
        return []
    return [(_responses_key(data, family), r) for r in text_at(data, name)]


def _anthropic_texts(provider: Provider, kind: str, data: dict[str, Any]) -> list[Piece]:
    # Every string of a block's start and of its deltas continues the block's channel of
    # that field: text, partial_json, thinking, citations' text, fields to come.
    if kind == "completion":  # the legacy text-completions stream
        return [(("a", "completion"), r) for r in text_at(data, "completion")]
    holder = data.get("delta" if kind == "content_block_delta" else "content_block")
    if not isinstance(holder, dict):
        return []
    index = atom(data.get("index", 0))
    return [
        (("a", index, name), TextRef(holder, name, signed=fields.signed_thinking(name, holder)))
        for name, value in holder.items()
        if isinstance(value, str) and value and not fields.declared(provider, name, value, holder)
    ]


def _delta_texts(provider: Provider, prefix: ChannelKey, delta: dict[str, Any]) -> list[Piece]:
    """Every string of a delta, known fields or not (``reasoning_content``, ``reasoning``,
    legacy ``function_call``, ``audio.transcript``), to any depth: each continues across
    events, keyed by its place (list entries by their ``index`` when they carry one)."""
    out: list[Piece] = []
    for key, value in delta.items():
        if isinstance(value, str):
            if value and not fields.declared(provider, key, value, delta):
                out.append(((*prefix, key), TextRef(delta, key)))
        elif isinstance(value, dict):
            out += _delta_texts(provider, (*prefix, key), value)
        elif isinstance(value, list):
            for position, item in enumerate(value):
                if isinstance(item, dict):
                    index = atom(item.get("index", position))
                    out += _delta_texts(provider, (*prefix, key, index), item)
    return out


# Responses: the field of a ``<family>.done`` event that repeats the family's whole text.
_DONE_FIELD = {
    "response.output_text": "text",
    "response.refusal": "refusal",
    "response.function_call_arguments": "arguments",
    "response.reasoning_summary_text": "text",
    "response.reasoning_text": "text",
    "response.custom_tool_call_input": "input",
    "response.mcp_call_arguments": "arguments",
    "response.code_interpreter_call_code": "code",
}
# Content parts: their type -> (the delta family that streams them, their text field).
_PARTS = {
    "output_text": ("response.output_text", "text"),
    "refusal": ("response.refusal", "refusal"),
    "reasoning_text": ("response.reasoning_text", "text"),
    "summary_text": ("response.reasoning_summary_text", "text"),
}
# Output items: their type -> (family, field) of a text they carry whole.
_ITEM_TEXT = {
    "function_call": ("response.function_call_arguments", "arguments"),
    "custom_tool_call": ("response.custom_tool_call_input", "input"),
    "mcp_call": ("response.mcp_call_arguments", "arguments"),
    "code_interpreter_call": ("response.code_interpreter_call_code", "code"),
}


def _responses_key(data: dict[str, Any], family: str) -> ChannelKey:
    return (
        "r",
        atom(data.get("item_id")),
        family,
        atom(data.get("content_index")),
        atom(data.get("summary_index")),
    )


def _responses_event_texts(kind: str, data: dict[str, Any]) -> list[Piece]:
    """Deltas, and the text an ``*.added`` event already carries (it begins the channel
    that later deltas continue)."""
    if kind.endswith(".delta"):
        family = kind.removesuffix(".delta")
        delta = data.get("delta")
        if not isinstance(delta, str) or not delta:
            return []
        if family == "response.audio" and fields.BASE64.check(delta, {}):
            return []  # audio bytes, not text
        return [(_responses_key(data, family), TextRef(data, "delta"))]
    if kind == "response.output_item.added":
        return output_texts([data.get("item")])
    if kind.endswith(".added"):
        part = data.get("part")
        if isinstance(part, dict):
            return _part_texts(atom(data.get("item_id")), part, data)
    return []


def _part_texts(
    item_id: str | int | None, part: dict[str, Any], data: dict[str, Any]
) -> list[Piece]:
    kind = part.get("type")
    known = _PARTS.get(kind) if isinstance(kind, str) else None
    if known is None:
        return []
    family, name = known
    key = ("r", item_id, family, atom(data.get("content_index")), atom(data.get("summary_index")))
    return [(key, r) for r in text_at(part, name)]


def output_texts(output: Any) -> list[Piece]:
    """Texts of Responses-API output items, keyed as their stream channels are."""
    out: list[Piece] = []
    for item in dicts(output):
        item_id = atom(item.get("id"))
        kind = item.get("type")
        whole = _ITEM_TEXT.get(kind) if isinstance(kind, str) else None
        if whole is not None:
            family, name = whole
            out += [(("r", item_id, family, None, None), r) for r in text_at(item, name)]
        for index, part in enumerate(dicts(item.get("content"))):
            out += _part_texts(item_id, part, {"content_index": index})
        for index, part in enumerate(dicts(item.get("summary"))):
            out += _part_texts(item_id, part, {"summary_index": index})
    return out
