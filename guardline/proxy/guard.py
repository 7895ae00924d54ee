"""The stream guard (DESIGN section 5): no text a guard-mode detector would flag ever
reaches the client, at a cost linear in the length of the stream.

Each *channel* (a choice's content, a content block, a tool call's arguments: every
string of a delta, whatever its field) accumulates its text. Text is released only once
*cleared*: scanned in a window that ends at a sentence boundary (or, past ``max_hold``
characters without one, at a word boundary with 128 characters held back), never inside
a finding. Each window is scanned once; detectors that need left context (presidio's
context words) also see their ``context_chars`` before it. Every other string of an event
(ids and enums excepted, see ``adapters.fields``) is scanned whole before the event may
go. Events whose text is not cleared wait, and every event after them waits too, so
order is kept. Replacements land in the event where their span starts; an event whose
text did not change is sent as its original bytes, and one that changed loses its
log-probabilities (their tokens would spell the original). Comments, ``id`` and other
SSE lines besides ``event`` and ``data`` are not forwarded in guard mode.

Monitor-mode detectors see the same windows in the background and never hold anything.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from guardline.detectors.redaction import resolve
from guardline.detectors.sentences import last_boundary
from guardline.errors import GuardrailBlockedError, UpstreamProtocolError
from guardline.exchange import Endpoint
from guardline.proxy.adapters import Adapter, ChannelKey, Text, TextRef, channels, fields
from guardline.proxy.inspection import Inspector
from guardline.proxy.sse import SSEEvent
from guardline.settings import Provider

_TAIL = 128  # characters kept back at a forced cut: longer than any value split there
_LOOKBACK = 8  # a boundary needs the punctuation and closing marks before the space


@dataclass(slots=True, eq=False)  # identity: channels are keys of the touched set
class _Channel:
    text: str = ""
    cleared: int = 0
    """``text[:cleared]`` has been scanned and may be released."""
    watched: int = 0
    """``text[:watched]`` has been handed to the monitor-mode scan."""
    searched: int = 0
    closed: bool = False
    signed: bool = False
    replacements: list[tuple[int, int, str]] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    def boundary_after(self, floor: int) -> int | None:
        """The last sentence boundary past ``floor`` in text not searched before (plus the
        few characters a boundary needs to be recognised), so each search is linear."""
        start = max(floor, self.searched - _LOOKBACK)
        self.searched = len(self.text)
        return last_boundary(self.text, start)


@dataclass(slots=True)
class _Segment:
    channel: _Channel
    ref: TextRef
    start: int
    end: int


@dataclass(slots=True)
class _Held:
    event: SSEEvent
    data: dict[str, Any] | None
    segments: list[_Segment]
    finals: list[tuple[_Channel, TextRef]]
    rewritten: bool = False
    """A whole text of the event was rewritten already, or its front was sent."""
    whole: bool = False
    """The event has strings scanned whole (it is then never sent in two parts)."""


class StreamGuard:
    def __init__(
        self, inspector: Inspector, adapter: Adapter, endpoint: Endpoint, max_hold: int = 1024
    ) -> None:
        self._inspector = inspector
        self._adapter = adapter
        self._endpoint = endpoint
        self._max_hold = max(max_hold, 2 * _TAIL)
        self._redactor = inspector.guardrails.redactor
        self._channels: dict[ChannelKey, _Channel] = {}
        self._pending: deque[_Held] = deque()
        self._shapes = _Shapes()
        self.holding = inspector.guarding("response")
        self._watching = inspector.monitoring("response")

    @property
    def active(self) -> bool:
        return self.holding or self._watching

    def texts(self) -> list[str]:
        """The response text received so far, one string per channel (choice, tool
        call), before any redaction: samples take it from here instead of extracting
        every event's text a second time."""
        return [channel.text for channel in self._channels.values() if channel.text]

    async def feed(self, event: SSEEvent, data: dict[str, Any] | None) -> bytes:
        """Take one upstream event; return the bytes that may go to the client now.
        Raises GuardrailBlockedError / GuardrailError when the policy stops the stream."""
        provider = self._adapter.provider
        if data is None:
            texts, closes, finals = [], [], []
            if event.data == "[DONE]":
                closes = [()]
        else:
            texts = channels.event_texts(provider, data)
            closes = channels.event_closes(event, data)
            finals = channels.final_texts(data)
        if not self.holding:
            self._observe(texts, closes)
            return event.raw
        if event.event is not None and not fields.ENUM.check(event.event, {}):
            raise UpstreamProtocolError("The upstream sent a stream event with an invalid name.")
        whole = [] if data is None else self._shapes.texts(data, provider, texts, finals)
        if not (texts or closes or finals or whole or self._pending or event.extra):
            return event.raw
        held = _Held(event, data, [], [], whole=bool(whole))
        if whole:  # complete values: scanned now, in one pass
            held.rewritten = bool(await self._inspector.guard_texts("response", whole))
        touched: list[_Channel] = []
        for key, ref in texts:
            channel = self._channels.get(key)
            if channel is None:
                channel = self._channels[key] = _Channel(signed=ref.signed)
            channel.closed = False  # more text: it is held like any other until cleared
            start = len(channel.text)
            channel.text += ref.get()
            held.segments.append(_Segment(channel, ref, start, len(channel.text)))
            touched.append(channel)
        for key, ref in finals:
            if key not in self._channels:  # a whole text with no deltas before it
                self._channels[key] = _Channel(text=ref.get(), closed=True, signed=ref.signed)
                touched.append(self._channels[key])
            held.finals.append((self._channels[key], ref))
        self._pending.append(held)
        touched += self._close(closes)
        for channel in dict.fromkeys(touched):
            await self._advance(channel)
        return self._flush()

    async def finish(self) -> bytes:
        """The upstream ended without its final event: release what can be cleared."""
        for channel in self._close([()]):
            await self._advance(channel)
        self._observe([], [])
        return self._flush()

    # guard mode -------------------------------------------------------------------------

    async def _advance(self, channel: _Channel) -> None:
        cut, scan_end = self._cut(channel)
        if cut <= channel.cleared:
            return
        inspector = self._inspector
        inspector.watch("response", channel.text, channel.watched, cut)
        channel.watched = cut
        verdict = await inspector.verdict("response", channel.text, channel.cleared, scan_end)
        for finding in verdict.findings:  # a forced cut never splits a finding
            if finding.start < cut < finding.end:
                cut = finding.start
        inspector.enforce("response", verdict, until=cut)
        redact = [f for f in resolve(verdict.redact) if f.end <= cut]
        if redact and channel.signed and inspector.guardrails.signed_thinking == "block":
            inspector.exchange.act("block")
            raise GuardrailBlockedError(redact[0].detector, redact[0].category, "response")
        for f in redact:
            value = channel.text[f.start : f.end]
            channel.replacements.append(
                (f.start, f.end, self._redactor.replacement(f.category, value))
            )
        if redact:
            inspector.exchange.act("redact", len(redact))
        channel.cleared = max(channel.cleared, cut)

    def _cut(self, channel: _Channel) -> tuple[int, int]:
        """Where the next release may end, and how far to scan to decide it: to the cut
        at a sentence boundary; to the end of the text at a forced cut, so a value
        straddling the cut is seen whole."""
        text = channel.text
        if channel.closed:
            return len(text), len(text)
        end = channel.boundary_after(channel.cleared)
        if end is not None and end > channel.cleared:
            return end, end
        if len(text) - channel.cleared > self._max_hold:
            limit = len(text) - _TAIL
            space = max(
                text.rfind(" ", channel.cleared, limit), text.rfind("\n", channel.cleared, limit)
            )
            return (space + 1 if space >= channel.cleared else limit), len(text)
        return channel.cleared, channel.cleared

    def _close(self, prefixes: list[ChannelKey]) -> list[_Channel]:
        closed = []
        for prefix in prefixes:
            for key, channel in self._channels.items():
                if key[: len(prefix)] == prefix and not channel.closed:
                    channel.closed = True
                    closed.append(channel)
        return closed

    def _flush(self) -> bytes:
        out: list[bytes] = []
        while self._pending:
            held = self._pending[0]
            waiting = [s for s in held.segments if s.end > s.channel.cleared]
            if waiting or any(c.cleared < len(c.text) for c, _ in held.finals):
                if (
                    not held.whole
                    and held.data is not None
                    and "sequence_number" not in held.data  # a client may check them
                    and len(held.segments) == 1
                    and waiting
                    and waiting[0].channel.cleared > waiting[0].start
                ):
                    out.append(self._emit_part(held, waiting[0]))
                break
            self._pending.popleft()
            out.append(self._emit(held))
        return b"".join(out)

    def _emit_part(self, held: _Held, segment: _Segment) -> bytes:
        """Send the cleared front of a single-text event now; keep the rest held."""
        cleared = segment.channel.cleared
        text = self._output(segment.channel, segment.start, cleared)
        segment.channel.released.append(text)
        segment.ref.set(text)
        segment.start = cleared
        held.rewritten = True  # its rest goes out re-rendered, whatever it holds
        return _render(held.event, held.data, rewritten=True)

    def _emit(self, held: _Held) -> bytes:
        changed = held.rewritten
        for segment in held.segments:
            channel = segment.channel
            text = self._output(channel, segment.start, segment.end)
            channel.released.append(text)
            if text != segment.ref.get():
                segment.ref.set(text)
                changed = True
        for channel, ref in held.finals:
            if not channel.released:
                channel.released.append(self._output(channel, 0, len(channel.text)))
            whole = "".join(channel.released)
            if whole != ref.get():
                ref.set(whole)
                changed = True
        if changed or held.event.extra:
            return _render(held.event, held.data, rewritten=changed)
        return held.event.raw

    @staticmethod
    def _output(channel: _Channel, start: int, end: int) -> str:
        """``text[start:end]`` with replacements; a replacement sits where its span starts."""
        text = channel.text
        parts = []
        pos = start
        for r_start, r_end, value in channel.replacements:
            if r_end <= start or r_start >= end:
                continue
            if r_start >= pos:
                parts.append(text[pos:r_start])
            if r_start >= start:
                parts.append(value)
            pos = max(pos, r_end)
        if pos < end:
            parts.append(text[pos:end])
        return "".join(parts)

    # monitor mode -------------------------------------------------------------------------

    def _observe(self, texts: list[tuple[ChannelKey, TextRef]], closes: list[ChannelKey]) -> None:
        """Monitor only: accumulate text and hand complete sentences to the background scan."""
        if not self._watching:
            return
        for key, ref in texts:
            self._channels.setdefault(key, _Channel()).text += ref.get()
        for channel in self._channels.values():
            end = channel.boundary_after(channel.watched)
            if end is not None and end > channel.watched:
                self._inspector.watch("response", channel.text, channel.watched, end)
                channel.watched = end
        self._close(closes)
        for channel in self._channels.values():
            if channel.closed and channel.watched < len(channel.text):
                self._inspector.watch("response", channel.text, channel.watched, len(channel.text))
                channel.watched = len(channel.text)


_MISSING: Any = object()


class _Shapes:
    """The last few events of a stream that held no string to scan whole. An event equal
    to one of them once its channels' texts are blanked and its per-event noise (the
    ``sequence_number``, a valid ``obfuscation`` pad) set aside holds none either, and
    the walk over its every string (``fields.texts``) is skipped: almost every event of
    a long stream is such an event, and the comparison is C code."""

    __slots__ = ("_seen",)
    _KEEP = 4

    def __init__(self) -> None:
        self._seen: list[dict[str, Any]] = []

    def texts(
        self,
        data: dict[str, Any],
        provider: Provider,
        texts: list[tuple[ChannelKey, TextRef]],
        finals: list[tuple[ChannelKey, TextRef]],
    ) -> list[Text]:
        """The strings of ``data`` to scan whole: all but its channels' texts and
        declared non-text values."""
        saved = [(ref.holder, ref.key, ref.holder[ref.key]) for _, ref in (*texts, *finals)]
        for holder, key, _ in saved:
            holder[key] = ""  # an empty string is no text: the walk passes it
        # Only noise is set aside: a pad that is not a valid one, or a sequence number
        # that is not a number, stays in place and is walked (and redacted) like any string.
        pad = data.get("obfuscation", _MISSING)
        if pad is not _MISSING:
            if type(pad) is str and fields.declared(provider, "obfuscation", pad, data):
                del data["obfuscation"]
            else:
                pad = _MISSING
        sequence = data.get("sequence_number", _MISSING)
        if type(sequence) is int:
            del data["sequence_number"]
        else:
            sequence = _MISSING
        try:
            if data in self._seen:
                return []
            found = fields.texts(data, provider)
            if not found:
                self._seen = [orjson.loads(orjson.dumps(data)), *self._seen[: self._KEEP - 1]]
            return found
        finally:
            for holder, key, value in saved:
                holder[key] = value
            if pad is not _MISSING:
                data["obfuscation"] = pad
            if sequence is not _MISSING:
                data["sequence_number"] = sequence


def _render(event: SSEEvent, data: dict[str, Any] | None, *, rewritten: bool) -> bytes:
    """The event as Guardline sends a rewritten one: its name and one data line, no other
    SSE lines; log-probabilities beside rewritten text are dropped."""
    head = b"event: " + event.event.encode() + b"\n" if event.event else b""
    if data is None:
        return head + b"data: [DONE]\n\n" if event.data == "[DONE]" else head + b":\n\n"
    # Only an event that spells the word (or escapes something) can carry log-probabilities.
    raw = event.raw
    if rewritten and (raw.count(b'"logprobs"') > raw.count(b'"logprobs":null') or b"\\u" in raw):
        for scope in fields.logprob_scopes(data):
            fields.drop_logprobs(scope)
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
