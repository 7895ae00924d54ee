"""Token usage as each provider reports it, normalised (cached input and reasoning kept)."""

from __future__ import annotations

from guardline.exchange import Endpoint, Reply
from guardline.proxy.adapters import ADAPTERS

OPENAI = ADAPTERS["openai"]
ANTHROPIC = ADAPTERS["anthropic"]


def test_openai_chat_usage_with_cached_and_reasoning_tokens() -> None:
    reply = Reply()
    OPENAI.observe_response(
        Endpoint.CHAT_COMPLETIONS,
        {
            "model": "o4-mini-2025-04-16",
            "choices": [{"message": {"content": "Hi", "refusal": None}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": 1200,
                "completion_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": 1024},
                "completion_tokens_details": {"reasoning_tokens": 256},
            },
        },
        reply,
    )
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (1200, 300)
    assert reply.usage.cached_input_tokens == 1024
    assert reply.usage.reasoning_tokens == 256
    assert reply.model == "o4-mini-2025-04-16"
    assert reply.finish_reason == "stop"
    assert not reply.empty


def test_openai_responses_usage_and_incomplete_status() -> None:
    reply = Reply()
    OPENAI.observe_response(
        Endpoint.RESPONSES,
        {
            "model": "gpt-4.1",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hel"}]}],
            "usage": {
                "input_tokens": 50,
                "output_tokens": 16,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        },
        reply,
    )
    assert reply.usage is not None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (50, 16)
    assert reply.truncated
    assert reply.output_chars == 3


def test_openai_refusal_counts_as_a_refusal_not_empty() -> None:
    reply = Reply()
    body = {"choices": [{"message": {"content": None, "refusal": "I can't help with that."}}]}
    OPENAI.observe_response(Endpoint.CHAT_COMPLETIONS, body, reply)
    assert reply.refusal
    assert not reply.empty


def test_anthropic_stream_usage_sums_cache_reads_and_writes_into_input() -> None:
    reply = Reply()
    events = [
        {
            "type": "message_start",
            "message": {
                "model": "claude-haiku-4-5-20251001",
                "usage": {
                    "input_tokens": 10,
                    "cache_read_input_tokens": 2000,
                    "cache_creation_input_tokens": 500,
                    "output_tokens": 1,
                },
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 42},
        },
    ]
    for i, data in enumerate(events):
        ANTHROPIC.observe_event(Endpoint.MESSAGES, data, reply, now=float(i))
    assert reply.usage is not None
    assert reply.usage.input_tokens == 2510
    assert reply.usage.cached_input_tokens == 2000
    assert reply.usage.cache_write_tokens == 500
    assert reply.usage.output_tokens == 42  # message_delta's count is cumulative
    assert reply.truncated
    assert reply.chunk_times == [2.0]


def test_usage_chunk_and_null_usage_are_recognised_and_cut() -> None:
    assert OPENAI.usage_only({"id": "c", "choices": [], "usage": {"prompt_tokens": 3}})
    assert not OPENAI.usage_only({"choices": [{"index": 0}], "usage": {"prompt_tokens": 3}})
    assert not OPENAI.usage_only({"choices": [{"index": 0}], "usage": None})
    assert not ANTHROPIC.usage_only({"type": "message_delta", "usage": {"output_tokens": 3}})
    run = (
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"say \\",\\"usage\\":null"}}],'
        b'"usage":null}\n\n'
    )
    assert OPENAI.strip_usage(run) == (
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"say \\",\\"usage\\":null"}}]}'
        b"\n\n"
    )
