"""Guardrails end to end: real SDKs, Guardline in front of the simulator's scripted
content, every endpoint, streamed and not."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from guardline.detectors.base import FakeDetector
from guardline.exchange import Exchange
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.servers import Running, context_of, default_detectors, proxy, proxy_settings

# Each value split across two or three chunks.
CHUNKS = [
    "Call me at +1 (415) 55",
    "5-0137 or mail dana.wh",
    "itfield@exam",
    "ple.com. Card 4111 1111 ",
    "1111 1111, thanks.",
]
VALUES = ["555-0137", "dana.whitfield@example.com", "4111 1111 1111 1111", "whitfield"]
# base64: guard mode scans request headers too, and would redact the scripted reply there.
HEADERS = {"x-sim-chunks-b64": base64.b64encode(json.dumps(CHUNKS).encode()).decode()}
GUARD = {
    "request": {"pii": {"mode": "guard", "action": "redact"}},
    "response": {
        "pii": {"mode": "guard", "action": "redact"},
        "toxicity": {"mode": "guard", "action": "block"},
    },
}
MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def guarded(sim: Running[Simulator]) -> Iterator[Running[Any]]:
    with proxy(proxy_settings(sim.url, policy=GUARD)) as server:
        yield server


def _chat(c: openai.OpenAI, stream: bool, **kw: Any) -> str:
    if not stream:
        return (
            c.chat.completions.create(model="gpt-4o-mini", messages=MSG, **kw)
            .choices[0]
            .message.content
            or ""
        )  # type: ignore[arg-type]
    return "".join(
        ch.choices[0].delta.content or ""
        for ch in c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True, **kw)
        if ch.choices
    )  # type: ignore[arg-type]


def _completion(c: openai.OpenAI, stream: bool, **kw: Any) -> str:
    if not stream:
        return (
            c.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", **kw).choices[0].text
        )
    return "".join(
        ch.choices[0].text
        for ch in c.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="hi", stream=True, **kw
        )
        if ch.choices
    )


class StreamErrorEventError(Exception):
    """The Responses API's SDK yields error events instead of raising; tests raise this."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.body = body


def _responses(c: openai.OpenAI, stream: bool, **kw: Any) -> str:
    if not stream:
        return c.responses.create(model="gpt-4o-mini", input="hi", **kw).output_text
    with c.responses.stream(model="gpt-4o-mini", input="hi", **kw) as s:
        deltas = []
        for event in s:
            if event.type == "error":
                raise StreamErrorEventError(event.model_dump())
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = s.get_final_response().output_text
    assert final == "".join(deltas)  # the final event repeats the text: redacted the same way
    return "".join(deltas)


def _messages(c: anthropic.Anthropic, stream: bool, **kw: Any) -> str:
    if not stream:
        return (
            c.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MSG, **kw)
            .content[0]
            .text
        )  # type: ignore[arg-type,union-attr]
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=MSG, **kw) as s:  # type: ignore[arg-type]
        return "".join(s.text_stream)


CALLS: list[tuple[str, Callable[..., str]]] = [
    ("openai", _chat),
    ("openai", _completion),
    ("openai", _responses),
    ("anthropic", _messages),
]


def _client(provider: str, url: str) -> Any:
    return openai_client(url) if provider == "openai" else anthropic_client(url)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("provider", "call"), CALLS, ids=lambda v: getattr(v, "__name__", v))
def test_split_pii_never_reaches_the_client(
    guarded: Running[Any], provider: str, call: Callable[..., str], stream: bool
) -> None:
    with _client(provider, guarded.url) as client:
        text = call(client, stream, extra_headers=HEADERS)
    for value in VALUES:
        assert value not in text
    assert text == "Call me at <PHONE_NUMBER> or mail <EMAIL_ADDRESS>. Card <CREDIT_CARD>, thanks."


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(("provider", "call"), CALLS, ids=lambda v: getattr(v, "__name__", v))
def test_toxic_reply_is_blocked_before_any_of_it_is_sent(
    guarded: Running[Any], provider: str, call: Callable[..., str], stream: bool
) -> None:
    seen: list[bytes] = []

    def record(response: Any) -> None:
        seen.append(response.read())

    hooks = {"response": [record]}
    errors = (openai.APIError, anthropic.APIError, StreamErrorEventError)
    with _client(provider, guarded.url) as client:
        client._client.event_hooks = hooks  # the raw bytes the SDK received
        with pytest.raises(errors) as got:
            call(client, stream, extra_headers={"x-sim-scenario": "toxic"})
    body = got.value.body if isinstance(got.value.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else body
    assert error.get("code") == "guardrail_blocked" or body.get("code") == "guardrail_blocked"
    assert b"idiot" not in b"".join(seen)
    assert b"worthless" not in b"".join(seen)


def test_monitor_mode_passes_bytes_unchanged_and_records_findings(
    sim: Running[Simulator], gw: Running[Any], exchanges: list[Exchange]
) -> None:
    rid = "monitor-1"
    with httpx.stream(
        "POST",
        gw.url + "/v1/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "my email is bob@example.org"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        headers={**HEADERS, "x-request-id": rid},
    ) as response:
        received = b"".join(response.iter_raw())
    (record,) = [r for r in sim.app.recorder.records if r.headers.get("x-request-id") == rid]
    assert received == bytes(record.response)
    assert record.body["messages"][0]["content"] == "my email is bob@example.org"  # not altered
    assert eventually(lambda: exchanges)
    found = {(f.direction, f.category) for f in exchanges[-1].findings}
    assert {
        ("request", "EMAIL_ADDRESS"),
        ("response", "EMAIL_ADDRESS"),
        ("response", "PHONE_NUMBER"),
        ("response", "CREDIT_CARD"),
    } <= found
    assert exchanges[-1].actions == {}


def test_request_side_redaction_reaches_the_simulator_redacted(
    sim: Running[Simulator], guarded: Running[Any]
) -> None:
    secret = "Write to dana.whitfield@example.com or call +1 (415) 555-0137."
    tools = [{"type": "function", "function": {"name": "send", "parameters": {"type": "object"}}}]
    with openai_client(guarded.url) as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            tools=tools,  # type: ignore[arg-type]
            messages=[  # type: ignore[arg-type]
                {"role": "system", "content": secret},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": secret},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {
                                "name": "send",
                                "arguments": json.dumps({"to": "dana.whitfield@example.com"}),
                            },
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": secret},
            ],
        )
        client.responses.create(
            model="gpt-4o-mini",
            instructions=secret,
            input=[{"role": "user", "content": [{"type": "input_text", "text": secret}]}],
        )
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt=[secret, "fine"])
        client.embeddings.create(model="text-embedding-3-small", input=[secret])
    with anthropic_client(guarded.url) as aclient:
        aclient.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            system=secret,
            messages=[  # type: ignore[arg-type]
                {"role": "user", "content": [{"type": "text", "text": secret}]},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "send",
                            "input": {"to": "dana.whitfield@example.com"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": secret}],
                },
            ],
        )
    received = json.dumps([r.body for r in sim.app.recorder.records])
    assert "dana.whitfield" not in received
    assert "555-0137" not in received
    assert received.count("<EMAIL_ADDRESS>") >= 10
    assert "iVBORw0KGgo=" in received  # images are not text: untouched


def test_findings_header_names_categories_never_content(guarded: Running[Any]) -> None:
    response = httpx.post(
        guarded.url + "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "I am bob@example.org"}]},
        headers=HEADERS,
    )
    header = response.headers["x-guardline-findings"]
    assert (
        header
        == "request.pii.EMAIL_ADDRESS=1,response.pii.CREDIT_CARD=1,response.pii.EMAIL_ADDRESS=1,response.pii.PHONE_NUMBER=1"
    )
    assert "bob" not in header


def test_a_failing_detector_fails_closed_unless_configured_to_pass(sim: Running[Simulator]) -> None:
    detectors = {
        **default_detectors(),
        "fake": FakeDetector(name="fake", error=RuntimeError("model crashed")),
    }
    closed = {"request": {"fake": {"mode": "guard", "action": "block"}}}
    with proxy(proxy_settings(sim.url, policy=closed), detectors) as gw:
        with openai_client(gw.url) as client, pytest.raises(openai.InternalServerError) as got:
            client.chat.completions.create(model="m", messages=MSG)  # type: ignore[arg-type]
        assert got.value.status_code == 503
        assert got.value.response.json()["error"]["code"] == "guardrail_error"
        assert sim.app.recorder.total == 0  # nothing unchecked left for the vendor
        stream_closed = {"response": {"fake": {"mode": "guard", "action": "block"}}}
    with (
        proxy(proxy_settings(sim.url, policy=stream_closed), detectors) as gw,
        anthropic_client(gw.url) as aclient,
    ):
        with (
            pytest.raises(anthropic.APIStatusError) as agot,
            aclient.messages.stream(model="c", max_tokens=50, messages=MSG) as stream,
        ):  # type: ignore[arg-type]
            "".join(stream.text_stream)
        assert agot.value.body["error"]["code"] == "guardrail_error"  # type: ignore[index]
    passing = {"request": {"fake": {"mode": "guard", "action": "block", "on_error": "pass"}}}
    with (
        proxy(proxy_settings(sim.url, policy=passing), detectors) as gw,
        openai_client(gw.url) as client,
    ):
        assert client.chat.completions.create(model="m", messages=MSG).choices  # type: ignore[arg-type]


def test_policy_overrides_by_application(
    sim: Running[Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = {
        "overrides": [{"match": {"apps": ["support-bot"]}, "response": {"pii": {"mode": "guard"}}}]
    }
    keys = [{"key": "gl-support-key-1", "app": "support-bot"}, "gl-other-key-2"]
    with proxy(proxy_settings(sim.url, policy=policy, access_keys=keys)) as gw:

        def text(key: str, app: str | None = None) -> str:
            headers = {**HEADERS, **({"x-guardline-app": app} if app else {})}
            with openai_client(gw.url, api_key=key) as client:
                return _chat(client, stream=True, extra_headers=headers)

        assert "<EMAIL_ADDRESS>" in text("gl-support-key-1")  # the key names the app
        assert "dana.whitfield@example.com" in text("gl-other-key-2")  # monitor: unchanged
        assert "<EMAIL_ADDRESS>" in text("gl-other-key-2", app="support-bot")  # header names it
        exchanges: list[Exchange] = []
        context_of(gw).observers.append(exchanges.append)
        text("gl-support-key-1", app="spoofed")
        assert eventually(lambda: exchanges)
        assert exchanges[-1].app == "support-bot"  # the key's app wins over the header


def test_blocked_request_never_reaches_the_vendor(
    sim: Running[Simulator], exchanges: list[Exchange]
) -> None:
    policy = {"request": {"toxicity": {"mode": "guard", "action": "block"}}}
    with proxy(proxy_settings(sim.url, policy=policy)) as gw, anthropic_client(gw.url) as client:
        with pytest.raises(anthropic.BadRequestError) as got:
            client.messages.create(
                model="c",
                max_tokens=5,
                messages=[{"role": "user", "content": "Shut up, you pathetic moron."}],
            )
        error = got.value.response.json()["error"]
        assert error["code"] == "guardrail_blocked"
        assert "moron" not in error["message"]
        assert "toxicity" in error["message"]
    assert sim.app.recorder.total == 0
