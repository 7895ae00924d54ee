"""Relaying an upstream SSE stream to the client, one complete event at a time."""

from __future__ import annotations

import time
from typing import Any, Protocol

from guardline.errors import (
    GuardlineError,
    GuardrailBlockedError,
    GuardrailError,
    UpstreamError,
    UpstreamProtocolError,
)
from guardline.exchange import Endpoint, Exchange, Outcome
from guardline.proxy.adapters import Adapter, StreamState, channels
from guardline.proxy.guard import StreamGuard
from guardline.proxy.sse import SSEDecoder, SSEEvent
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
    guard: StreamGuard | None = None,
    texts: list[str] | None = None,
) -> None:
    """Forward complete events as they arrive (through the stream guard when one is
    active); end a malformed, truncated or blocked stream with an error event in the
    provider's format instead of hanging or cutting off."""
    await down.start(response.status, headers)
    relay = _Relay(
        response, down, adapter=adapter, endpoint=endpoint, exchange=exchange, guard=guard
    )
    relay.texts = texts
    await relay.run()


class _Relay:
    def __init__(
        self,
        response: UpstreamResponse,
        down: Downstream,
        *,
        adapter: Adapter,
        endpoint: Endpoint,
        exchange: Exchange,
        guard: StreamGuard | None,
    ) -> None:
        self.response = response
        self.down = down
        self.adapter = adapter
        self.endpoint = endpoint
        self.exchange = exchange
        self.guard = guard
        self.state = StreamState()
        self.texts: list[str] | None = None
        """Collects the stream's text as received (only when spans record content)."""

    async def run(self) -> None:
        try:
            await self._pump()
        except UpstreamError as err:
            failure: GuardlineError = err
            if self.guard is not None:
                try:  # deliver what arrived, once cleared, before saying what went wrong
                    tail = await self.guard.finish()
                    if tail:
                        await self.down.body(self._out(tail))
                except (GuardrailBlockedError, GuardrailError) as stopped:
                    failure = stopped
            await self._end_with_error(failure)
            return
        except (GuardrailBlockedError, GuardrailError) as err:
            await self._end_with_error(err)
            return
        await self.down.end()
        await self.response.drain(DRAIN_SECONDS)

    async def _pump(self) -> None:
        decoder = SSEDecoder()
        state, guard = self.state, self.guard
        while not state.terminal:
            chunk = await self.response.next_chunk()
            if chunk is None:
                raise UpstreamProtocolError("The upstream stream ended before its final event.")
            events = decoder.feed(chunk)
            if not events:
                continue
            now = time.perf_counter()
            if guard is None or not guard.holding:
                await self._forward(events, guard, now)
                continue
            for event in events:
                seen = self._inspect(event, now)
                if seen is not None:
                    cleared = await guard.feed(seen, state.last)
                    if cleared:  # out as soon as cleared, even mid-chunk
                        await self.down.body(self._out(cleared))
                if state.terminal:
                    break
        self.exchange.upstream_done = time.perf_counter()

    def _inspect(self, event: SSEEvent, now: float) -> SSEEvent | None:
        """Check one event and note what telemetry needs; None when the client must not
        see it (the usage chunk Guardline asked for on its behalf)."""
        state = self.state
        self.adapter.inspect_event(self.endpoint, event, state)
        data = state.last
        if data is None:
            return event
        self.adapter.observe_event(self.endpoint, data, self.exchange.reply, now)
        if self.texts is not None:
            self.texts += [
                ref.get() for _, ref in channels.event_texts(self.adapter.provider, data)
            ]
        if self.exchange.strip_usage:
            if self.adapter.usage_only(data):
                return None
            if self.guard is not None:
                data.pop("usage", None)  # so an event the guard re-renders leaves it out
        return event

    def _out(self, payload: bytes) -> bytes:
        return self.adapter.strip_usage(payload) if self.exchange.strip_usage else payload

    async def _forward(self, events: list[SSEEvent], guard: StreamGuard | None, now: float) -> None:
        """Nothing held: the events go out first; monitor-mode scanning looks after."""
        state = self.state
        seen: list[tuple[SSEEvent, dict[str, Any] | None]] = []
        try:
            for event in events:
                out = self._inspect(event, now)
                if out is not None:
                    seen.append((out, state.last))
                if state.terminal:
                    break
        finally:
            if seen:
                await self.down.body(self._out(b"".join(event.raw for event, _ in seen)))
        if guard is not None:
            for event, data in seen:
                await guard.feed(event, data)

    async def _end_with_error(self, err: GuardlineError) -> None:
        exchange = self.exchange
        blocked = isinstance(err, GuardrailBlockedError)
        exchange.outcome = Outcome.BLOCKED if blocked else Outcome.ERROR
        exchange.error_code = err.code
        event = self.adapter.stream_error_event(err, exchange.request_id, self.endpoint, self.state)
        await self.down.body(event)
        await self.down.end()
