"""The SSE relay and decoder, on exact bytes: any chunking, CRLF, broken streams."""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given
from hypothesis import strategies as st

from guardline.errors import UpstreamTimeoutError
from guardline.exchange import Endpoint, Exchange, Outcome
from guardline.proxy.adapters import ADAPTERS
from guardline.proxy.relay import relay_events
from guardline.proxy.sse import SSEDecoder
from guardline.proxy.transport import Header, MockResponse
from guardline.simulator import anthropic as sim_anthropic
from guardline.simulator import openai as sim_openai
from guardline.simulator.reply import Reply

REPLY = Reply(
    id="abc",
    model="m",
    created=1,
    text="Hello there, friend.",
    pieces=("Hello", " there", ",", " friend", "."),
    tool_call=None,
    truncated=False,
    prompt_tokens=3,
    completion_tokens=5,
    include_usage=True,
)
OPENAI_STREAM = b"".join(f.data for f in sim_openai.chat_stream(REPLY))
ANTHROPIC_STREAM = b"".join(f.data for f in sim_anthropic.message_stream(REPLY))


class Collect:
    def __init__(self) -> None:
        self.status = 0
        self.chunks: list[bytes] = []
        self.ended = False

    async def start(self, status: int, headers: list[Header]) -> None:
        self.status = status

    async def body(self, data: bytes) -> None:
        self.chunks.append(data)

    async def end(self) -> None:
        self.ended = True


def _relay(
    chunks: list[bytes | BaseException], provider: str, endpoint: Endpoint
) -> tuple[Collect, Exchange]:
    down = Collect()
    exchange = Exchange("rid", provider, endpoint, "POST", "/v1/x", 0.0)
    response = MockResponse(200, [], list(chunks))
    asyncio.run(
        relay_events(
            response,
            down,
            headers=[],
            adapter=ADAPTERS[provider],
            endpoint=endpoint,
            exchange=exchange,
        )  # type: ignore[arg-type]
    )
    return down, exchange


def _split(data: bytes, cuts: list[int]) -> list[bytes | BaseException]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def test_every_single_split_point_gives_identical_bytes() -> None:
    for data, provider, endpoint in (
        (OPENAI_STREAM, "openai", Endpoint.CHAT_COMPLETIONS),
        (ANTHROPIC_STREAM, "anthropic", Endpoint.MESSAGES),
    ):
        for cut in range(len(data) + 1):
            down, exchange = _relay(_split(data, [cut]), provider, endpoint)
            assert b"".join(down.chunks) == data
            assert down.ended
            assert exchange.outcome is Outcome.OK


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_chunking_gives_identical_bytes(cuts: list[int]) -> None:
    down, _ = _relay(_split(OPENAI_STREAM, cuts), "openai", Endpoint.CHAT_COMPLETIONS)
    assert b"".join(down.chunks) == OPENAI_STREAM
    # Complete events only: no chunk sent to the client ends inside an event.
    assert all(chunk.endswith(b"\n\n") for chunk in down.chunks)


def test_crlf_streams_relay_unchanged() -> None:
    data = OPENAI_STREAM.replace(b"\n", b"\r\n")
    down, exchange = _relay(_split(data, [7, 100, 101, 250]), "openai", Endpoint.CHAT_COMPLETIONS)
    assert b"".join(down.chunks) == data
    assert exchange.outcome is Outcome.OK


def test_error_mid_stream_keeps_delivered_events_and_appends_error() -> None:
    first_two = b"".join(f.data for f in sim_openai.chat_stream(REPLY)[:2])
    down, exchange = _relay(
        [first_two, UpstreamTimeoutError("silence")], "openai", Endpoint.CHAT_COMPLETIONS
    )
    assert down.chunks[0] == first_two
    assert down.chunks[-1].startswith(b'data: {"error":{"message":"silence"')
    assert exchange.error_code == "upstream_timeout"


def test_malformed_event_in_a_chunk_sends_the_good_ones_first() -> None:
    good = sim_openai.chat_stream(REPLY)[0].data
    down, exchange = _relay([good + b"data: {nope\n\n" + good], "openai", Endpoint.CHAT_COMPLETIONS)
    assert down.chunks[0] == good
    assert b"upstream_protocol_error" in down.chunks[1]
    assert len(down.chunks) == 2
    assert exchange.outcome is Outcome.ERROR


@given(
    st.lists(
        st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b), max_size=6
    ),
    st.lists(st.integers(0, 500), max_size=10),
)
def test_decoder_keeps_raw_bytes_and_data(lines: list[bytes], cuts: list[int]) -> None:
    raw = b"".join(b"data: " + line + b"\n\n" for line in lines)
    decoder = SSEDecoder()
    events = [e for chunk in _split(raw, cuts) for e in decoder.feed(chunk)]  # type: ignore[arg-type]
    assert b"".join(e.raw for e in events) == raw
    assert decoder.pending == b""
    assert [e.data for e in events] == [line.decode("utf-8", "replace") for line in lines]
