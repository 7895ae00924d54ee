"""Regeneration detection: the same conversation resent within a short window.

A client that got an answer to a conversation and asks again with the same turns (the
user clicked "regenerate", or the client dropped the assistant turn it had appended) sends
a request whose turns equal an earlier one's. Each request's conversation is reduced to a
16-byte hash of application, provider, route, model and its turns (role and content, in
order), leaving out request options (temperature, stream, max_tokens, metadata, ...) and
prompt-cache markers. A hash seen again within the window is a regeneration.

Only hashes are kept, never text, in a bounded LRU. Embeddings, model listings and
anything without a user turn are never regenerations.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

# Routes whose requests carry a conversation (Endpoint values).
_CHAT = "chat.completions"
_COMPLETIONS = "completions"
_RESPONSES = "responses"
_MESSAGES = "messages"
# Part fields that tune the vendor's prompt cache rather than say anything.
_VOLATILE = frozenset({"cache_control"})

Turn = list[Any]  # [role, content]


class Conversations:
    """Remembers recent conversations (as hashes) to tell when one is resent."""

    __slots__ = ("_clock", "_memory", "_seen", "_window")

    def __init__(
        self, *, window: float, memory: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if memory < 1:
            raise ValueError("memory must be at least 1")
        self._window = window
        self._memory = memory
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # hash -> last seen, oldest first

    def __len__(self) -> int:
        return len(self._seen)

    def regenerated(self, provider: str, route: str, app: str | None, body: dict[str, Any]) -> bool:
        """Whether ``body`` resends a conversation seen within the window; records it."""
        key = conversation_key(provider, route, app, body)
        if key is None:
            return False
        now = self._clock()
        seen = self._seen
        last = seen.pop(key, None)
        seen[key] = now  # re-inserted last: the dict stays in last-seen order
        # Entries past the window can never match again: drop them, then hold the bound.
        cutoff = now - self._window
        while seen:
            oldest = next(iter(seen.values()))
            if oldest >= cutoff and len(seen) <= self._memory:
                break
            seen.popitem(last=False)
        return last is not None and now - last <= self._window


def conversation_key(
    provider: str, route: str, app: str | None, body: dict[str, Any]
) -> bytes | None:
    """The 16-byte hash of a request's conversation; None when it has no user turn or
    carries no conversation."""
    try:
        turns = _turns(route, body)
    except RecursionError:  # absurdly nested content: no key rather than a failed call
        return None
    if not turns or not any(turn[0] == "user" for turn in turns):
        return None
    model = body.get("model")
    canonical = [app, provider, route, model if isinstance(model, str) else None, turns]
    try:
        data = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # not JSON-shaped (too deep, huge ints): no key
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


def _turns(route: str, body: dict[str, Any]) -> list[Turn]:
    if route == _CHAT:
        return [_chat_turn(m) for m in _dicts(body.get("messages"))]
    if route == _MESSAGES:
        turns = [] if body.get("system") is None else [["system", _content(body["system"])]]
        return turns + [
            [m.get("role"), _content(m.get("content"))] for m in _dicts(body.get("messages"))
        ]
    if route == _RESPONSES:
        turns = []
        # Server-side state: the same input on another chain is another conversation.
        for name in ("previous_response_id", "conversation"):
            if body.get(name) is not None:
                turns.append([name, _content(body[name])])
        if body.get("instructions") is not None:
            turns.append(["system", _content(body["instructions"])])
        given = body.get("input")
        if isinstance(given, str):
            turns.append(["user", given])
        for item in _dicts(given):
            if "role" in item:
                turns.append([item["role"], _content(item.get("content"))])
            else:  # function calls, their outputs, reasoning items
                turns.append([item.get("type"), _content(item)])
        return turns
    if route == _COMPLETIONS:
        prompt = body.get("prompt")
        return [] if prompt is None or prompt == "" else [["user", _content(prompt)]]
    return []


def _chat_turn(message: dict[str, Any]) -> Turn:
    turn: Turn = [message.get("role"), _content(message.get("content"))]
    calls = message.get("tool_calls")
    if calls:
        turn.append(_content(calls))
    return turn


def _content(value: Any) -> Any:
    """Content in one spelling: a lone text part is its text, cache markers are dropped."""
    if isinstance(value, list):
        parts = [_content(part) for part in value]
        return parts[0] if len(parts) == 1 and isinstance(parts[0], str) else parts
    if isinstance(value, dict):
        if value.get("type") in ("text", "input_text", "output_text") and isinstance(
            value.get("text"), str
        ):
            return value["text"]
        return {k: _content(v) for k, v in value.items() if k not in _VOLATILE}
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
