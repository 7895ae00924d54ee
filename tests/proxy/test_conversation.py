"""Regeneration detection: the same conversation resent within the window."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from guardline.proxy.conversation import Conversations, conversation_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _conversations(window: float = 600.0, memory: int = 1000) -> tuple[Conversations, Clock]:
    clock = Clock()
    return Conversations(window=window, memory=memory, clock=clock), clock


CHAT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Italy?"},
    ],
}
MESSAGES: dict[str, Any] = {
    "model": "claude-haiku-4-5",
    "max_tokens": 256,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}],
}
RESPONSES: dict[str, Any] = {
    "model": "gpt-5",
    "instructions": "Be brief.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hello"}]}],
}
COMPLETIONS: dict[str, Any] = {"model": "gpt-3.5-turbo-instruct", "prompt": "Once upon a time"}

CASES = [
    ("openai", "chat.completions", CHAT),
    ("anthropic", "messages", MESSAGES),
    ("openai", "responses", RESPONSES),
    ("openai", "completions", COMPLETIONS),
]


@pytest.mark.parametrize(("provider", "route", "body"), CASES)
def test_same_conversation_twice_is_a_regeneration(
    provider: str, route: str, body: dict[str, Any]
) -> None:
    seen, _ = _conversations()
    assert not seen.regenerated(provider, route, "app", body)
    assert seen.regenerated(provider, route, "app", copy.deepcopy(body))
    assert seen.regenerated(provider, route, "app", body)  # and again


@pytest.mark.parametrize(
    ("provider", "route", "body", "options"),
    [
        (
            "openai",
            "chat.completions",
            CHAT,
            {
                "temperature": 1.2,
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": 50,
                "user": "u-1",
                "metadata": {"k": "v"},
                "n": 1,
                "seed": 7,
            },
        ),
        ("anthropic", "messages", MESSAGES, {"max_tokens": 1024, "stream": True, "top_k": 5}),
        ("openai", "responses", RESPONSES, {"temperature": 0, "store": False, "stream": True}),
        ("openai", "completions", COMPLETIONS, {"max_tokens": 7, "echo": True}),
    ],
)
def test_other_options_same_turns_is_a_regeneration(
    provider: str, route: str, body: dict[str, Any], options: dict[str, Any]
) -> None:
    seen, _ = _conversations()
    assert not seen.regenerated(provider, route, "app", body)
    assert seen.regenerated(provider, route, "app", {**body, **options})


def test_content_spelling_and_cache_markers_do_not_matter() -> None:
    seen, _ = _conversations()
    assert not seen.regenerated("anthropic", "messages", None, MESSAGES)
    respelt = copy.deepcopy(MESSAGES)
    respelt["messages"][0]["content"] = "Hi there"
    respelt["system"] = [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
    ]
    assert seen.regenerated("anthropic", "messages", None, respelt)


def test_cache_markers_on_non_text_blocks_do_not_matter() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://a/1.png"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [image]}]}
    marked = copy.deepcopy(body)
    marked["messages"][0]["content"][0]["cache_control"] = {"type": "ephemeral"}
    seen, _ = _conversations()
    assert not seen.regenerated("anthropic", "messages", None, body)
    assert seen.regenerated("anthropic", "messages", None, marked)


def test_resent_after_dropping_the_appended_assistant_turn() -> None:
    seen, _ = _conversations()
    asked = copy.deepcopy(CHAT)
    assert not seen.regenerated("openai", "chat.completions", "app", asked)
    # The client appended the answer, then the user asked for another one: it is dropped.
    answered = copy.deepcopy(asked)
    answered["messages"].append({"role": "assistant", "content": "Rome."})
    answered["messages"].pop()
    assert seen.regenerated("openai", "chat.completions", "app", answered)


@pytest.mark.parametrize(("provider", "route", "body"), CASES)
def test_an_extra_user_turn_is_not_a_regeneration(
    provider: str, route: str, body: dict[str, Any]
) -> None:
    seen, _ = _conversations()
    assert not seen.regenerated(provider, route, "app", body)
    longer = copy.deepcopy(body)
    if route == "completions":
        longer["prompt"] += " there was a proxy."
    elif route == "responses":
        longer["input"].append({"role": "user", "content": "More please"})
    else:
        longer["messages"] += [
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "More please"},
        ]
    assert not seen.regenerated(provider, route, "app", longer)


def test_continuing_the_conversation_is_not_a_regeneration() -> None:
    seen, _ = _conversations()
    first = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
    second = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Hi"},
        ],
    }
    assert not seen.regenerated("openai", "chat.completions", "app", first)
    assert not seen.regenerated("openai", "chat.completions", "app", second)


def test_after_the_window_is_not_a_regeneration() -> None:
    seen, clock = _conversations(window=60.0)
    assert not seen.regenerated("openai", "chat.completions", "app", CHAT)
    clock.now += 60.0
    assert seen.regenerated("openai", "chat.completions", "app", CHAT)  # at the edge: yes
    clock.now += 60.5
    assert not seen.regenerated("openai", "chat.completions", "app", CHAT)
    assert len(seen) == 1


def test_expired_entries_are_dropped() -> None:
    seen, clock = _conversations(window=10.0)
    for i in range(5):
        seen.regenerated("openai", "completions", None, {"model": "m", "prompt": f"p{i}"})
    assert len(seen) == 5
    clock.now += 11.0
    seen.regenerated("openai", "completions", None, {"model": "m", "prompt": "new"})
    assert len(seen) == 1


def test_memory_is_bounded_and_evicts_the_oldest() -> None:
    seen, clock = _conversations(memory=3)

    def prompt(i: int) -> dict[str, Any]:
        return {"model": "m", "prompt": f"prompt {i}"}

    for i in range(5):
        clock.now += 1
        assert not seen.regenerated("openai", "completions", None, prompt(i))
    assert len(seen) == 3
    assert seen.regenerated("openai", "completions", None, prompt(4))  # kept
    assert seen.regenerated("openai", "completions", None, prompt(2))  # kept
    assert not seen.regenerated("openai", "completions", None, prompt(0))  # evicted
    assert len(seen) == 3
    # prompt(0) pushed out the least recently seen, prompt(3)...
    assert not seen.regenerated("openai", "completions", None, prompt(3))
    # ...which pushed out prompt(4); prompt(2) was seen more recently and stays.
    assert seen.regenerated("openai", "completions", None, prompt(2))


@pytest.mark.parametrize(
    ("app", "provider", "route", "body"),
    [
        ("other-app", "openai", "chat.completions", CHAT),
        (None, "openai", "chat.completions", CHAT),
        ("app", "openai", "chat.completions", {**CHAT, "model": "gpt-4o"}),
        ("app", "openai", "responses", {"model": CHAT["model"], "input": CHAT["messages"]}),
    ],
)
def test_different_app_model_or_route_is_not_a_regeneration(
    app: str | None, provider: str, route: str, body: dict[str, Any]
) -> None:
    seen, _ = _conversations()
    assert not seen.regenerated("openai", "chat.completions", "app", CHAT)
    assert not seen.regenerated(provider, route, app, body)


def test_responses_on_another_chain_is_not_a_regeneration() -> None:
    seen, _ = _conversations()
    one = {"model": "gpt-5", "input": "Go on", "previous_response_id": "resp_1"}
    assert not seen.regenerated("openai", "responses", None, one)
    assert not seen.regenerated(
        "openai", "responses", None, {**one, "previous_response_id": "resp_2"}
    )
    assert seen.regenerated("openai", "responses", None, {**one, "stream": True})


def test_different_images_are_different_conversations() -> None:
    def with_image(url: str) -> dict[str, Any]:
        content = [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
        return {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}

    seen, _ = _conversations()
    assert not seen.regenerated("openai", "chat.completions", None, with_image("https://a/1.png"))
    assert not seen.regenerated("openai", "chat.completions", None, with_image("https://a/2.png"))
    assert seen.regenerated("openai", "chat.completions", None, with_image("https://a/1.png"))


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("embeddings", {"model": "text-embedding-3-small", "input": "hello"}),
        ("models", {}),
        ("passthrough", {"messages": [{"role": "user", "content": "x"}]}),
        ("chat.completions", {"model": "m", "messages": [{"role": "system", "content": "x"}]}),
        ("chat.completions", {"model": "m", "messages": []}),
        ("chat.completions", {"model": "m"}),
        ("chat.completions", {"model": "m", "messages": "not a list"}),
        ("messages", {"model": "m", "system": "only a system prompt", "messages": []}),
        ("responses", {"model": "m", "instructions": "x"}),
        (
            "responses",
            {
                "model": "m",
                "previous_response_id": "resp_1",
                "input": [{"type": "function_call_output", "call_id": "c", "output": "42"}],
            },
        ),
        ("completions", {"model": "m", "prompt": ""}),
        ("completions", {"model": "m"}),
    ],
)
def test_never_a_regeneration_without_a_user_turn(route: str, body: dict[str, Any]) -> None:
    seen, _ = _conversations()
    assert conversation_key("openai", route, None, body) is None
    assert not seen.regenerated("openai", route, None, body)
    assert not seen.regenerated("openai", route, None, body)
    assert len(seen) == 0


def test_keys_hold_no_text() -> None:
    key = conversation_key("openai", "chat.completions", "app", CHAT)
    assert isinstance(key, bytes)
    assert len(key) == 16
    seen, _ = _conversations()
    seen.regenerated("openai", "chat.completions", "app", CHAT)
    assert list(seen._seen) == [key]


def test_pathological_bodies_give_no_key() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    body = {"model": "m", "messages": [{"role": "user", "content": deep}]}
    assert conversation_key("openai", "chat.completions", None, body) is None
    huge = {"model": "m", "messages": [{"role": "user", "content": [{"n": 2**70}]}]}
    assert conversation_key("openai", "chat.completions", None, huge) is None
