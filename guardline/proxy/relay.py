"""Relaying an upstream SSE stream to the client, one complete event at a time."""

from __future__ import annotations

from typing import Protocol

from guardline.errors import UpstreamError, UpstreamProtocolError
from guardline.exchange import Endpoint, Exchange, Outcome
from guardline.proxy.adapters import Adapter, StreamState
from guardline.proxy.sse import SSEDecoder
from guardline.proxy.transport import Header, UpstreamResponse

# After the final event the client is answered; the rest of the upstream body (usually
# just the chunked terminator) is read for this long so the connection can be reused.
DRAIN_SECONDS = 0.5


class Downstream(Protocol):
    async def start(self, status: int, headers: list[Header]) -> None: ...

    async def body(self, data: bytes) -> None: ...

    async def end(self) -> None: ...


async def relay_events(
    response: UpstreamResponse,
    down: Downstream,
    *,
    headers: list[Header],
    adapter: Adapter,
    endpoint: Endpoint,
    exchange: Exchange,
) -> None:
    """Forward complete events as they arrive, unchanged; end a malformed or truncated
    stream with an error event in the provider's format instead of hanging or cutting off."""
    decoder = SSEDecoder()
    state = StreamState()
    await down.start(response.status, headers)
    try:
        while not state.terminal:
            chunk = await response.next_chunk()
            if chunk is None:
                raise UpstreamProtocolError("The upstream stream ended before its final event.")
            events = decoder.feed(chunk)
            if not events:
                continue
            ready: list[bytes] = []
            failure: UpstreamError | None = None
            for event in events:
                try:
                    adapter.inspect_event(endpoint, event, state)
                except UpstreamError as exc:
                    failure = exc
                    break
                ready.append(event.raw)
                if state.terminal:
                    break
            if ready:
                await down.body(ready[0] if len(ready) == 1 else b"".join(ready))
            if failure is not None:
                raise failure
    except UpstreamError as err:
        exchange.outcome = Outcome.ERROR
        exchange.error_code = err.code
        await down.body(adapter.stream_error_event(err, exchange.request_id, endpoint, state))
        await down.end()
        return
    await down.end()
    await response.drain(DRAIN_SECONDS)
