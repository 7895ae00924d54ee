"""Properties of the stream guard against values hidden by encodings, split by chunking.

For random PII values, random obfuscations of them (JSON ``\\u`` escapes, full-width
characters, zero-width spaces and soft hyphens, NBSP separators, ``＠``, dotted card
numbers, combined) and random chunkings, on every stream format and in text and tool-call
arguments: no value is recoverable from what the client receives, read as a client would
(JSON-decoded, arguments JSON-decoded again) and NFKC-normalised. And a Japanese answer
is released sentence by sentence, never held to the hold limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import unicodedata
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardline.exchange import Endpoint, Exchange
from guardline.proxy.adapters import ADAPTERS, StreamState
from guardline.proxy.guard import StreamGuard
from guardline.proxy.inspection import Inspector
from guardline.proxy.sse import parse_event
from guardline.simulator import anthropic as sim_anthropic
from guardline.simulator import openai as sim_openai
from guardline.simulator.reply import Reply, ToolCall
from guardline.simulator.text import WORDS
from tests.proxy.test_guard import GUARD_PII, _chunks, _events, _guardrails, planted, run_guard

KINDS = ["email", "card", "iban", "ip", "phone"]
_FULL = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)}  # ASCII -> full width
_INVISIBLE = ["\u200b", "\u00ad", "\u2060", "\u200c", "\ufeff"]


@st.composite
def obfuscated(draw: Any, kind: str, seed: int) -> str:
    """``planted(kind, seed)`` with random encodings applied to random characters."""
    value = planted(kind, seed)
    if kind == "card" and draw(st.booleans()):
        value = value.replace(" ", draw(st.sampled_from([".", "\u00a0", "-"])))
    out = []
    for original in value:
        char = original
        how = draw(st.sampled_from(["keep", "keep", "keep", "full", "escape", "invisible"]))
        if char == " " and draw(st.booleans()):
            char = draw(st.sampled_from(["\u00a0", "\u202f", "\u3000"]))
        if how == "full" and char in _FULL:
            char = _FULL[char]
        elif how == "escape":
            char = f"\\u{ord(char):04x}"
        elif how == "invisible":
            char += draw(st.sampled_from(_INVISIBLE))
        out.append(char)
    return "".join(out)


@st.composite
def answers(draw: Any) -> tuple[str, list[tuple[str, str]]]:
    """Sentences of words, some carrying an obfuscated value: (text, [(kind, value)])."""
    values: list[tuple[str, str]] = []
    sentences = []
    for _ in range(draw(st.integers(1, 4))):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
        if draw(st.booleans()):
            kind = draw(st.sampled_from(KINDS))
            seed = draw(st.integers(0, 10_000))
            words.insert(draw(st.integers(0, len(words))), "call " + draw(obfuscated(kind, seed)))
            values.append((kind, planted(kind, seed)))
        sentences.append(" ".join(words).capitalize() + draw(st.sampled_from([". ", "! ", ".\n"])))
    return "".join(sentences), values


def as_read(text: str) -> str:
    """What a reader recovers: JSON escapes decoded (repeatedly, as nested JSON would be),
    NFKC, invisible characters dropped, spaces folded."""
    for _ in range(4):
        decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf" and c != "\u00ad")
    return re.sub(r"\s", " ", text)


def recoverable(kind: str, value: str, received: str) -> bool:
    read = as_read(received)
    if kind in ("email", "ip"):
        return value.lower() in read.lower()

    # Numbers: their digits (and letters, for an IBAN) in order, whatever separates them.
    def keep(s: str) -> str:
        return re.sub(r"[^0-9A-Za-z]", "", s).upper()

    return keep(value) in keep(read)


def _tool_reply(args: str, pieces: tuple[str, ...]) -> Reply:
    return Reply("r", "m", 1, "", (), ToolCall("call_1", "send", args, pieces), False, 1, 1, False)


def _text_reply(pieces: tuple[str, ...]) -> Reply:
    return Reply("r1", "m", 1, "".join(pieces), pieces, None, False, 3, len(pieces), True)


def _received(data: bytes) -> str:
    """Every string the client receives, tool arguments as a client's parser reads them."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    args, partial = [], []
    for _, body in _events(data):
        if not body:
            continue
        walk(body)
        for choice in body.get("choices", []):
            for call in (choice.get("delta") or {}).get("tool_calls") or []:
                args.append(call.get("function", {}).get("arguments") or "")
        delta = body.get("delta")
        if isinstance(delta, dict) and "partial_json" in delta:
            partial.append(delta["partial_json"])
    for joined in ("".join(args), "".join(partial)):
        if joined:
            out.append(joined)
            with contextlib.suppress(json.JSONDecodeError):
                walk(json.loads(joined))
    # Deltas joined per stream: a value split across events is read whole.
    return "\n".join(out)


FORMATS = [
    ("openai", Endpoint.CHAT_COMPLETIONS, "text"),
    ("openai", Endpoint.CHAT_COMPLETIONS, "tool"),
    ("openai", Endpoint.RESPONSES, "text"),
    ("openai", Endpoint.RESPONSES, "tool"),
    ("anthropic", Endpoint.MESSAGES, "text"),
    ("anthropic", Endpoint.MESSAGES, "tool"),
]


def _frames(
    provider: str, endpoint: Endpoint, where: str, text: str, cuts: list[int]
) -> list[bytes]:
    if where == "tool":
        args = '{"note": "' + text.replace('"', "'").replace("\n", " ") + '"}'
        reply = _tool_reply(args, _chunks(args, cuts))
    else:
        reply = _text_reply(_chunks(text, cuts))
    if provider == "anthropic":
        return [f.data for f in sim_anthropic.message_stream(reply)]
    if endpoint is Endpoint.RESPONSES:
        return [f.data for f in sim_openai.response_stream(reply, {})]
    return [f.data for f in sim_openai.chat_stream(reply)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=answers(),
    cuts=st.lists(st.integers(0, 2000), max_size=30),
    where=st.sampled_from(FORMATS),
)
def test_no_obfuscated_value_is_recoverable_from_the_stream(
    case: tuple[str, list[tuple[str, str]]], cuts: list[int], where: tuple[str, Endpoint, str]
) -> None:
    provider, endpoint, channel = where
    text, values = case
    frames = _frames(provider, endpoint, channel, text, cuts)
    data, _, error = run_guard(frames, _guardrails(GUARD_PII), provider, endpoint)
    assert error is None
    received = _received(data)
    for kind, value in values:
        assert recoverable(kind, value, text)  # a reader sees through the encodings...
        assert not recoverable(kind, value, received), (kind, value, received)  # ...not here


SENTENCES = ["今日は晴れです。", "明日は雨が降るでしょう！", "本当ですか？", "はい、そうです。"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.sampled_from(SENTENCES), min_size=2, max_size=8),
    cuts=st.lists(st.integers(0, 400), max_size=40),
    where=st.sampled_from([f for f in FORMATS if f[2] == "text"]),
)
def test_japanese_is_released_sentence_by_sentence(
    picks: list[str], cuts: list[int], where: tuple[str, Endpoint, str]
) -> None:
    """Once the first character of the next sentence has arrived, every earlier sentence
    has been released: text waits for its sentence, not for the 1,024-character limit."""
    provider, endpoint, _ = where
    text = "".join(picks)
    frames = _frames(provider, endpoint, "text", text, cuts)
    guardrails = _guardrails(GUARD_PII)
    adapter = ADAPTERS[provider]  # type: ignore[index]
    exchange = Exchange("rid", provider, endpoint, "POST", "/v1/x", 0.0)
    policy = guardrails.policies.resolve(provider, "/v1/x", "m", None)
    ends = [sum(len(p) for p in picks[: i + 1]) for i in range(len(picks))]
    splittable = endpoint is not Endpoint.RESPONSES

    async def main() -> None:
        guard = StreamGuard(Inspector(guardrails, policy, exchange), adapter, endpoint, 1024)
        state, arrived, released = StreamState(), 0, ""
        pieces = [0]  # where each upstream event's text ends
        for frame in frames:
            event = parse_event(frame)
            adapter.inspect_event(endpoint, event, state)
            data = state.last
            arrived += len(_delta_text(provider, endpoint, frame))  # before the guard sees it
            pieces.append(arrived)
            out = await guard.feed(event, data)
            released += _delta_text(provider, endpoint, out)
            complete = [end for end in ends if end < arrived]  # a next character is here
            if complete:
                # Responses events carry sequence numbers and are never split: their text
                # goes out whole, once its last sentence is clear.
                due = complete[-1] if splittable else max(p for p in pieces if p <= complete[-1])
                assert len(released) >= due, (released, arrived)
            assert text.startswith(released)

    asyncio.run(main())


def _delta_text(provider: str, endpoint: Endpoint, data: bytes) -> str:
    parts = []
    for _, body in _events(data):
        if not body:
            continue
        if provider == "anthropic":
            if body.get("type") == "content_block_delta":
                parts.append(body["delta"].get("text", ""))
        elif endpoint is Endpoint.RESPONSES:
            if body.get("type") == "response.output_text.delta":
                parts.append(body.get("delta", ""))
        else:
            parts += [c["delta"].get("content") or "" for c in body.get("choices", [])]
    return "".join(parts)
