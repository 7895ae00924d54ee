"""Streams: broken upstream streams end with a provider-format error event (never a hang),
chunks are forwarded as they arrive, and a client that leaves cancels the upstream call."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import openai
import psutil
import pytest

from guardline.exchange import Exchange, Outcome
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.servers import Running, context_of, proxy, proxy_settings

MSG = [{"role": "user", "content": "hello"}]
# The SDK's own timeout bounds every test here: a hang fails fast instead of passing.
TIMEOUT = 5.0

BROKEN = [
    ("malformed", "upstream_protocol_error", "malformed"),
    ("truncate", "upstream_protocol_error", "ended before its final event"),
    ("disconnect", "upstream_protocol_error", "closed the connection"),
]


def _chat_stream(client: openai.OpenAI, headers: dict[str, str]) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSG,  # type: ignore[arg-type]
        stream=True,
        extra_headers=headers,
    )


@pytest.mark.parametrize(("fault", "code", "words"), BROKEN)
def test_broken_openai_stream_ends_with_error_event(
    gw: Running[Any], exchanges: list[Exchange], fault: str, code: str, words: str
) -> None:
    received: list[str] = []
    with openai_client(gw.url, timeout=TIMEOUT) as client:
        stream = _chat_stream(client, {"x-sim-fault": fault, "x-sim-fault-after": "3"})
        with pytest.raises(openai.APIError) as got:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    assert words in got.value.message
    assert isinstance(got.value.body, dict)
    assert got.value.body["code"] == code
    assert len([r for r in received if r]) == 3  # what arrived before the fault was delivered
    assert eventually(lambda: exchanges)
    assert (exchanges[-1].outcome, exchanges[-1].error_code) == (Outcome.ERROR, code)


@pytest.mark.parametrize(("fault", "code", "words"), BROKEN)
def test_broken_anthropic_stream_ends_with_error_event(
    gw: Running[Any], fault: str, code: str, words: str
) -> None:
    with anthropic_client(gw.url, timeout=TIMEOUT) as client:
        stream = client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=MSG,  # type: ignore[arg-type]
            stream=True,
            extra_headers={"x-sim-fault": fault},
        )
        with pytest.raises(anthropic.APIStatusError) as got:
            for _ in stream:
                pass
    body = got.value.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["code"] == code
    assert words in body["error"]["message"]


@pytest.mark.parametrize("fault", ["malformed", "truncate", "disconnect"])
def test_broken_responses_stream_ends_with_error_event(gw: Running[Any], fault: str) -> None:
    with openai_client(gw.url, timeout=TIMEOUT) as client:
        events = list(
            client.responses.create(
                model="gpt-4o-mini", input="hi", stream=True, extra_headers={"x-sim-fault": fault}
            )
        )
    last = events[-1]
    assert last.type == "error"
    assert last.code == "upstream_protocol_error"  # type: ignore[union-attr]
    assert last.sequence_number == events[-2].sequence_number + 1


def test_stalled_stream_times_out_with_error_event(sim: Running[Simulator]) -> None:
    settings = proxy_settings(sim.url, upstream={"timeout": {"read": 0.3}})
    with proxy(settings) as gw, openai_client(gw.url, timeout=TIMEOUT) as client:
        with pytest.raises(openai.APIError) as got:
            for _ in _chat_stream(client, {"x-sim-fault": "stall"}):
                pass
        assert isinstance(got.value.body, dict)
        assert got.value.body["code"] == "upstream_timeout"
        assert eventually(lambda: sim.app.recorder.active_streams == 0)


def test_chunks_are_forwarded_as_they_arrive(gw: Running[Any]) -> None:
    """The upstream sends 2 tokens and then stalls forever: a buffering proxy would deliver
    nothing; Guardline delivers both tokens while the stream is still open."""
    with openai_client(gw.url, timeout=TIMEOUT) as client:
        stream = _chat_stream(
            client, {"x-sim-fault": "stall", "x-sim-chunks": '["Hello", " world", "!"]'}
        )
        texts = []
        for chunk in stream:
            texts.append(chunk.choices[0].delta.content)
            if len([t for t in texts if t]) == 2:
                break
        stream.close()
    assert [t for t in texts if t] == ["Hello", " world"]


def _tcp_to(port: int) -> int:
    """ESTABLISHED TCP connections of this process whose remote end is ``port``."""
    conns = psutil.Process().net_connections(kind="tcp")
    return sum(
        1 for c in conns if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


def _tasks(server: Running[Any]) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # not this probe itself

    return server.call(count)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_client_disconnect_mid_stream_cancels_upstream(
    sim: Running[Simulator], gw: Running[Any], exchanges: list[Exchange], provider: str
) -> None:
    baseline_tasks = _tasks(gw)
    headers = {"x-sim-fault": "stall", "x-sim-fault-after": "2"}
    if provider == "openai":
        with openai_client(gw.url, timeout=TIMEOUT) as client:
            stream = _chat_stream(client, headers)
            next(iter(stream))
            assert sim.app.recorder.active_streams == 1
            assert _tcp_to(sim.port) == 1
            stream.close()
    else:
        with anthropic_client(gw.url, timeout=TIMEOUT) as aclient:
            astream = aclient.messages.create(
                model="claude-haiku-4-5",
                max_tokens=64,
                messages=MSG,
                stream=True,
                extra_headers=headers,  # type: ignore[arg-type]
            )
            next(iter(astream))
            assert sim.app.recorder.active_streams == 1
            astream.close()
    recorder = sim.app.recorder
    # The upstream saw its client (Guardline) go away, and nothing is left open anywhere.
    assert eventually(lambda: recorder.streams_disconnected == 1), recorder.stats()
    assert recorder.active_streams == 0
    assert eventually(lambda: sim.connections() == 0)
    assert _tcp_to(sim.port) == 0
    stats = context_of(gw).upstreams[provider].transport.stats()
    assert (stats.open, stats.active) == (0, 0)
    assert eventually(lambda: context_of(gw).inflight == 0)
    assert eventually(lambda: _tasks(gw) <= baseline_tasks)
    assert eventually(lambda: exchanges)
    assert exchanges[-1].outcome is Outcome.CLIENT_DISCONNECT


def test_client_disconnect_while_waiting_cancels_upstream(
    sim: Running[Simulator], gw: Running[Any], exchanges: list[Exchange]
) -> None:
    """A non-streaming client that gives up while the upstream is still thinking."""
    with openai_client(gw.url, timeout=0.5) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSG,
            extra_headers={"x-sim-fault": "slow", "x-sim-delay-ms": "5000"},  # type: ignore[arg-type]
        )
    assert eventually(
        lambda: sim.app.recorder.records and sim.app.recorder.records[-1].disconnected, timeout=3
    )
    assert eventually(lambda: sim.connections() == 0)
    assert eventually(lambda: exchanges and exchanges[-1].outcome is Outcome.CLIENT_DISCONNECT)
    assert context_of(gw).upstreams["openai"].transport.stats().open == 0


def test_finished_stream_keeps_connection_for_reuse(
    sim: Running[Simulator], gw: Running[Any]
) -> None:
    """After a complete stream the upstream connection goes back to the pool (one TCP
    connection serves many calls) instead of being torn down."""
    with openai_client(gw.url, timeout=TIMEOUT) as client:
        for _ in range(5):
            assert list(_chat_stream(client, {}))
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)  # type: ignore[arg-type]
    transport = context_of(gw).upstreams["openai"].transport

    def pool() -> tuple[int, int, int]:
        stats = transport.stats()
        return stats.open, stats.idle, stats.active

    # The last call's connection is released just after its client has the answer.
    assert eventually(lambda: pool() == (1, 1, 0)), pool()
    assert sim.app.recorder.total == 10


def test_raw_stream_with_no_final_event_and_no_sdk(gw: Running[Any]) -> None:
    """Plain HTTP clients get the error event too, and the response ends (no hang)."""
    with httpx.Client(timeout=TIMEOUT) as client:
        body = client.post(
            gw.url + "/v1/chat/completions",
            json={"model": "m", "messages": MSG, "stream": True},
            headers={"x-sim-fault": "truncate"},
        ).content
    assert body.endswith(b"\n\n")
    assert b'"code":"upstream_protocol_error"' in body.rsplit(b"data: ", 1)[1]
