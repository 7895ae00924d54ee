"""The OpenAI and Anthropic SDKs get the same content, usage and finish reasons through
Guardline as from the upstream directly, on every endpoint, streaming and not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anthropic
import openai
import pytest

from guardline.exchange import Endpoint, Exchange, Outcome
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.servers import Running

PROMPT = [{"role": "user", "content": "Tell me about the weather in Lisbon."}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
TOOL_ARGS = '{"city": "Lisbon", "units": "metric"}'


def chat(c: openai.OpenAI) -> Any:
    r = c.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.model_dump()


def chat_stream(c: openai.OpenAI) -> Any:
    stream = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    return "".join(text), finish, usage


def chat_tool_stream(c: openai.OpenAI) -> Any:
    stream = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=PROMPT,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
        extra_headers={"x-sim-tool-call": TOOL_ARGS},
    )
    args, finish = [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            args.append(call.function.arguments or "")  # type: ignore[union-attr]
        finish = chunk.choices[0].finish_reason or finish
    return "".join(args), finish


def completion(c: openai.OpenAI) -> Any:
    r = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hello", max_tokens=8)
    return r.choices[0].text, r.choices[0].finish_reason, r.usage.model_dump()  # type: ignore[union-attr]


def completion_stream(c: openai.OpenAI) -> Any:
    stream = c.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say hello",
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            text.append(chunk.choices[0].text)
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    return "".join(text), finish, usage


def embeddings(c: openai.OpenAI) -> Any:
    r = c.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64)
    return [d.embedding for d in r.data], r.usage.model_dump()


def responses(c: openai.OpenAI) -> Any:
    r = c.responses.create(model="gpt-4o-mini", input="Tell me about Lisbon.")
    return r.output_text, r.status, r.usage.model_dump()  # type: ignore[union-attr]


def responses_stream(c: openai.OpenAI) -> Any:
    with c.responses.stream(model="gpt-4o-mini", input="Tell me about Lisbon.") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    return "".join(deltas), final.output_text, final.status, final.usage.model_dump()  # type: ignore[union-attr]


def models(c: openai.OpenAI) -> Any:
    return [m.id for m in c.models.list()], c.models.retrieve("gpt-4o").id


def messages(c: anthropic.Anthropic) -> Any:
    m = c.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=PROMPT)  # type: ignore[arg-type]
    return m.content[0].text, m.stop_reason, m.usage.model_dump()  # type: ignore[union-attr]


def messages_stream(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=256, messages=PROMPT) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    return text, final.stop_reason, final.usage.model_dump()


def messages_truncated_stream(c: anthropic.Anthropic) -> Any:
    with c.messages.stream(model="claude-haiku-4-5", max_tokens=5, messages=PROMPT) as stream:  # type: ignore[arg-type]
        final = stream.get_final_message()
    return final.content[0].text, final.stop_reason, final.usage.output_tokens  # type: ignore[union-attr]


def anthropic_models(c: anthropic.Anthropic) -> Any:
    return [m.id for m in c.models.list()]


def _name(value: Any) -> str:
    return getattr(value, "__name__", "") or str(getattr(value, "value", value))


OPENAI_CALLS: list[tuple[Callable[[openai.OpenAI], Any], Endpoint, bool]] = [
    (chat, Endpoint.CHAT_COMPLETIONS, False),
    (chat_stream, Endpoint.CHAT_COMPLETIONS, True),
    (chat_tool_stream, Endpoint.CHAT_COMPLETIONS, True),
    (completion, Endpoint.COMPLETIONS, False),
    (completion_stream, Endpoint.COMPLETIONS, True),
    (embeddings, Endpoint.EMBEDDINGS, False),
    (responses, Endpoint.RESPONSES, False),
    (responses_stream, Endpoint.RESPONSES, True),
    (models, Endpoint.MODELS, False),
]
ANTHROPIC_CALLS: list[tuple[Callable[[anthropic.Anthropic], Any], Endpoint, bool]] = [
    (messages, Endpoint.MESSAGES, False),
    (messages_stream, Endpoint.MESSAGES, True),
    (messages_truncated_stream, Endpoint.MESSAGES, True),
    (anthropic_models, Endpoint.MODELS, False),
]


@pytest.mark.parametrize(("call", "endpoint", "streamed"), OPENAI_CALLS, ids=_name)
def test_openai_sdk_same_through_proxy(
    sim: Running[Simulator],
    gw: Running[Any],
    exchanges: list[Exchange],
    call: Any,
    endpoint: Endpoint,
    streamed: bool,
) -> None:
    with openai_client(sim.url) as direct_client, openai_client(gw.url) as proxy_client:
        direct = call(direct_client)
        proxied = call(proxy_client)
    assert proxied == direct
    assert all(part not in (None, "", []) for part in _flatten(direct))
    assert eventually(lambda: exchanges), "the proxy recorded no exchange"
    last = exchanges[-1]
    assert (last.endpoint, last.outcome, last.status) == (endpoint, Outcome.OK, 200)
    assert last.stream is streamed


@pytest.mark.parametrize(("call", "endpoint", "streamed"), ANTHROPIC_CALLS, ids=_name)
def test_anthropic_sdk_same_through_proxy(
    sim: Running[Simulator],
    gw: Running[Any],
    exchanges: list[Exchange],
    call: Any,
    endpoint: Endpoint,
    streamed: bool,
) -> None:
    with anthropic_client(sim.url) as direct_client, anthropic_client(gw.url) as proxy_client:
        direct = call(direct_client)
        proxied = call(proxy_client)
    assert proxied == direct
    assert eventually(lambda: exchanges), "the proxy recorded no exchange"
    last = exchanges[-1]
    assert (last.endpoint, last.outcome, last.provider) == (endpoint, Outcome.OK, "anthropic")
    assert last.stream is streamed


def test_stream_usage_only_when_asked(gw: Running[Any]) -> None:
    """The upstream's include_usage behaviour reaches the client unchanged."""
    with openai_client(gw.url) as client:
        plain = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)
        )  # type: ignore[arg-type]
    assert all(chunk.usage is None for chunk in plain)
    assert all(chunk.choices for chunk in plain)


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, tuple):
        return [item for part in value for item in _flatten(part)]
    return [value]
