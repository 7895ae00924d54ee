"""The stream guard, on exact event streams built by the simulator's wire formats.

Property: for random texts with planted PII and random chunkings, what the client
receives equals redacting the whole text at once, and never contains a planted value.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardline.detectors.base import FakeDetector
from guardline.detectors.guardrails import Guardrails
from guardline.errors import GuardrailBlockedError, GuardrailError
from guardline.exchange import Endpoint, Exchange
from guardline.proxy.adapters import ADAPTERS
from guardline.proxy.guard import StreamGuard
from guardline.proxy.inspection import Inspector
from guardline.proxy.sse import parse_event
from guardline.settings import load_settings
from guardline.simulator import anthropic as sim_anthropic
from guardline.simulator import openai as sim_openai
from guardline.simulator.reply import Reply
from guardline.simulator.text import WORDS
from tests.servers import default_detectors

GUARD_PII = {"response": {"pii": {"mode": "guard", "action": "redact"}}}


def _luhn(prefix: str, rng: random.Random) -> str:
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(15 - len(prefix))]
    total = 0
    for i, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if i % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return " ".join(s[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random) -> str:
    bban = "WEST" + "".join(str(rng.randrange(10)) for _ in range(14))
    numeric = "".join(str(int(c, 36)) for c in bban + "GB00")
    check = 98 - int(numeric) % 97
    raw = f"GB{check:02d}{bban}"
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def planted(kind: str, seed: int) -> str:
    rng = random.Random(seed)
    if kind == "email":
        return f"{rng.choice(WORDS)}.{rng.choice(WORDS)}{seed % 97}@example.com"
    if kind == "card":
        return _luhn("4", rng)
    if kind == "iban":
        return _iban(rng)
    if kind == "ip":
        return f"203.0.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"
    return f"+1 (415) 555-{rng.randrange(100, 199):04d}"  # phone


@st.composite
def texts(draw: Any) -> tuple[str, list[str]]:
    """A few sentences, some with a planted value (spaces around it)."""
    values: list[str] = []
    sentences = []
    for _ in range(draw(st.integers(1, 6))):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12))
        if draw(st.booleans()):
            value = planted(
                draw(st.sampled_from(["email", "card", "iban", "ip", "phone"])),
                draw(st.integers(0, 10_000)),
            )
            words.insert(draw(st.integers(0, len(words))), "call " + value)
            values.append(value)
        end = draw(st.sampled_from([". ", "! ", "? ", ".\n", "\n", " "]))
        sentences.append(" ".join(words).capitalize() + end)
    return "".join(sentences), values


def _chunks(text: str, cuts: list[int]) -> tuple[str, ...]:
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return tuple(text[a:b] for a, b in itertools.pairwise(points) if b > a)


def _reply(chunks: tuple[str, ...]) -> Reply:
    return Reply("r1", "m", 1, "".join(chunks), chunks, None, False, 3, len(chunks), True)


def _frames(provider: str, endpoint: Endpoint, chunks: tuple[str, ...]) -> list[bytes]:
    reply = _reply(chunks)
    if provider == "anthropic":
        return [f.data for f in sim_anthropic.message_stream(reply)]
    if endpoint is Endpoint.RESPONSES:
        return [f.data for f in sim_openai.response_stream(reply, {})]
    return [f.data for f in sim_openai.chat_stream(reply)]


def _guardrails(policy: dict[str, Any], detectors: dict[str, Any] | None = None) -> Guardrails:
    settings = load_settings(overrides={"policy": policy})
    return Guardrails(settings, detectors if detectors is not None else default_detectors())


def run_guard(
    frames: list[bytes],
    guardrails: Guardrails,
    provider: str = "openai",
    endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS,
) -> tuple[bytes, Exchange, BaseException | None]:
    adapter = ADAPTERS[provider]  # type: ignore[index]
    exchange = Exchange("rid", provider, endpoint, "POST", "/v1/x", 0.0)
    policy = guardrails.policies.resolve(provider, "/v1/x", "m", None)

    async def main() -> tuple[bytes, BaseException | None]:
        inspector = Inspector(guardrails, policy, exchange)
        guard = StreamGuard(inspector, adapter, endpoint, guardrails.max_hold)
        out = []
        from guardline.proxy.adapters import StreamState

        state = StreamState()
        try:
            for frame in frames:
                event = parse_event(frame)
                adapter.inspect_event(endpoint, event, state)
                out.append(await guard.feed(event, state.last))
        except (GuardrailBlockedError, GuardrailError) as exc:
            await inspector.drain()
            return b"".join(out), exc
        await inspector.drain()
        return b"".join(out), None

    data, error = asyncio.run(main())
    return data, exchange, error


def _events(data: bytes) -> list[tuple[str | None, Any]]:
    out = []
    for block in data.split(b"\n\n"):
        if block.strip():
            event = parse_event(block + b"\n\n")
            out.append(
                (
                    event.event,
                    None if event.data in (None, "[DONE]") else orjson.loads(event.data or ""),
                )
            )
    return out


def _text(provider: str, endpoint: Endpoint, data: bytes) -> str:
    parts = []
    for _, body in _events(data):
        if not body:
            continue
        if provider == "anthropic":
            delta = body.get("delta") or {}
            parts.append(delta.get("text", "") if body.get("type") == "content_block_delta" else "")
        elif endpoint is Endpoint.RESPONSES:
            parts.append(
                body.get("delta", "") if body.get("type") == "response.output_text.delta" else ""
            )
        else:
            parts += [c["delta"].get("content") or "" for c in body.get("choices", [])]
    return "".join(parts)


STREAMS = [
    ("openai", Endpoint.CHAT_COMPLETIONS),
    ("openai", Endpoint.RESPONSES),
    ("anthropic", Endpoint.MESSAGES),
]


@pytest.mark.parametrize(("provider", "endpoint"), STREAMS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=texts(), cuts=st.lists(st.integers(0, 2000), max_size=30))
def test_guarded_stream_equals_redacting_the_whole_text(
    provider: str, endpoint: Endpoint, case: tuple[str, list[str]], cuts: list[int]
) -> None:
    text, values = case
    guardrails = _guardrails(GUARD_PII)
    detector = guardrails.scanner.detectors["pii"]
    expected = guardrails.redactor.apply(text, detector.detect(text))
    data, exchange, error = run_guard(
        _frames(provider, endpoint, _chunks(text, cuts)), guardrails, provider, endpoint
    )
    assert error is None
    received = _text(provider, endpoint, data)
    assert received == expected
    for value in values:
        assert value not in received
        assert value.replace(" ", "") not in received.replace(" ", "")
    assert len([f for f in exchange.findings if f.detector == "pii"]) >= len(values)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=texts(), cuts=st.lists(st.integers(0, 2000), max_size=30))
def test_responses_final_texts_carry_the_redacted_text(
    case: tuple[str, list[str]], cuts: list[int]
) -> None:
    text, _ = case
    guardrails = _guardrails(GUARD_PII)
    data, _, _ = run_guard(
        _frames("openai", Endpoint.RESPONSES, _chunks(text, cuts)),
        guardrails,
        "openai",
        Endpoint.RESPONSES,
    )
    streamed = _text("openai", Endpoint.RESPONSES, data)
    finals = {
        body["type"]: body
        for _, body in _events(data)
        if body and body.get("type") in ("response.output_text.done", "response.completed")
    }
    assert finals["response.output_text.done"]["text"] == streamed
    assert finals["response.completed"]["response"]["output"][0]["content"][0]["text"] == streamed


def test_non_text_events_keep_their_order_and_bytes() -> None:
    chunks = ("Mail dana@", "example.com now. ", "Bye.")
    frames = _frames("openai", Endpoint.CHAT_COMPLETIONS, chunks)
    data, _, _ = run_guard(frames, _guardrails(GUARD_PII))
    out = _events(data)
    # role chunk first, then text, then the finish chunk, the usage chunk and [DONE]
    assert out[0][1]["choices"][0]["delta"]["role"] == "assistant"
    assert out[-3][1]["choices"][0]["finish_reason"] == "stop"
    assert out[-2][1]["usage"]["completion_tokens"] == 3
    assert out[-1] == (None, None)
    # untouched events are byte-identical (the role chunk, the last text chunk, the tail)
    assert data.startswith(frames[0])
    assert data.endswith(b"".join(frames[-4:]))


def test_monitor_mode_passes_every_byte_and_still_finds() -> None:
    chunks = ("Mail dana@", "example.com now. ", "Card 4111 1111 ", "1111 1111 ok.")
    frames = _frames("openai", Endpoint.CHAT_COMPLETIONS, chunks)
    data, exchange, _ = run_guard(frames, _guardrails({}))  # the default: monitor
    assert data == b"".join(frames)
    assert sorted(f.category for f in exchange.findings if f.detector == "pii") == [
        "CREDIT_CARD",
        "EMAIL_ADDRESS",
    ]


@pytest.mark.parametrize(("provider", "endpoint"), STREAMS)
def test_toxic_sentence_is_blocked_before_any_of_it_is_sent(
    provider: str, endpoint: Endpoint
) -> None:
    clean = "Here is the summary you asked for. "
    toxic = "You are a worthless idiot and everyone hates you."
    pieces = tuple(_chunks(clean + toxic, list(range(0, 200, 3))))
    policy = {"response": {"toxicity": {"mode": "guard", "action": "block"}}}
    data, exchange, error = run_guard(
        _frames(provider, endpoint, pieces), _guardrails(policy), provider, endpoint
    )
    assert isinstance(error, GuardrailBlockedError)
    received = _text(provider, endpoint, data)
    assert received == clean  # the clean sentence went out; nothing of the toxic one did
    assert exchange.actions == {"block": 1}


def test_split_values_in_tool_call_arguments_are_redacted() -> None:
    reply = Reply("r", "m", 1, "", (), None, False, 1, 1, False)
    args = '{"to": "dana.whitfield@example.com", "note": "call +1 (415) 555-0137"}'
    from guardline.simulator.reply import ToolCall

    reply = Reply(
        "r",
        "m",
        1,
        "",
        (),
        ToolCall("call_1", "send", args, tuple(args[i : i + 5] for i in range(0, len(args), 5))),
        False,
        1,
        1,
        False,
    )
    frames = [f.data for f in sim_openai.chat_stream(reply)]
    data, _, _ = run_guard(frames, _guardrails(GUARD_PII))
    sent = "".join(
        call["function"].get("arguments", "")
        for _, body in _events(data)
        if body
        for choice in body.get("choices", [])
        for call in choice["delta"].get("tool_calls", [])
    )
    assert sent == '{"to": "<EMAIL_ADDRESS>", "note": "call <PHONE_NUMBER>"}'


def test_text_without_sentence_ends_is_released_at_word_boundaries_safely() -> None:
    """Past max_hold characters with no sentence end, text is released at a word boundary
    with a tail held back, and a value straddling that point is still caught whole."""
    filler = ("word " * 260).strip()  # 1,299 characters, no sentence end
    card = "4111 1111 1111 1111"
    text = filler + " " + card + " " + filler
    chunks = tuple(text[i : i + 7] for i in range(0, len(text), 7))
    guardrails = _guardrails(GUARD_PII)
    frames = _frames("openai", Endpoint.CHAT_COMPLETIONS, chunks)
    # Watch what is released before the stream ends: the first 1,000+ characters go out early.
    adapter = ADAPTERS["openai"]
    exchange = Exchange("rid", "openai", Endpoint.CHAT_COMPLETIONS, "POST", "/v1/x", 0.0)
    policy = guardrails.policies.resolve("openai", "/v1/x", "m", None)

    async def main() -> list[int]:
        from guardline.proxy.adapters import StreamState

        guard = StreamGuard(
            Inspector(guardrails, policy, exchange),
            adapter,
            Endpoint.CHAT_COMPLETIONS,
            guardrails.max_hold,
        )
        state, released, total = StreamState(), [], 0
        for frame in frames[:-4]:  # everything but the finish chunk and the tail
            event = parse_event(frame)
            adapter.inspect_event(Endpoint.CHAT_COMPLETIONS, event, state)
            total += len(
                _text("openai", Endpoint.CHAT_COMPLETIONS, await guard.feed(event, state.last))
            )
            released.append(total)
        return released

    released = asyncio.run(main())
    assert released[-1] >= len(text) - 1024 - 128  # at most max_hold + tail held
    data, _, _ = run_guard(frames, guardrails)
    received = _text("openai", Endpoint.CHAT_COMPLETIONS, data)
    assert card not in received
    assert received == filler + " <CREDIT_CARD> " + filler


def test_detector_error_fails_closed_unless_configured_to_pass() -> None:
    broken = FakeDetector(name="fake", error=RuntimeError("model crashed"))
    frames = _frames("openai", Endpoint.CHAT_COMPLETIONS, ("Hello there. ", "More text."))
    closed = {"response": {"fake": {"mode": "guard", "action": "block"}}}
    data, _, error = run_guard(frames, _guardrails(closed, {"fake": broken}))
    assert isinstance(error, GuardrailError)
    assert _text("openai", Endpoint.CHAT_COMPLETIONS, data) == ""
    open_ = {"response": {"fake": {"mode": "guard", "action": "block", "on_error": "pass"}}}
    data, _exchange, error = run_guard(frames, _guardrails(open_, {"fake": broken}))
    assert error is None
    assert _text("openai", Endpoint.CHAT_COMPLETIONS, data) == "Hello there. More text."


def test_each_window_is_scanned_once() -> None:
    """Cost is linear: every character reaches the detector once (no re-scans of the
    accumulated text per chunk)."""
    counting = FakeDetector(name="fake", pattern="NEVER")
    text = "".join(f"Sentence number {i} is here. " for i in range(300))
    chunks = tuple(text[i : i + 3] for i in range(0, len(text), 3))
    policy = {"response": {"fake": {"mode": "guard", "action": "block"}}}
    run_guard(
        _frames("openai", Endpoint.CHAT_COMPLETIONS, chunks),
        _guardrails(policy, {"fake": counting}),
    )
    assert sum(len(t) for t in counting.calls) == len(text)
