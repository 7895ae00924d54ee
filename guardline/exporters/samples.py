"""Sample records: what an exchange worth evaluating offline leaves behind.

Which exchanges (``Selector``): every flagged one, a random baseline of the others, and
(when their feedback arrives) rejected ones; per-route overrides and an off switch. What a
record holds (``sample_record``, schema version 1, documented in the README): ids, time,
route, provider, model, application, the redacted prompt and response, findings, actions,
usage, cost, latency, finish reason. Text is redacted before a record is built.
"""

from __future__ import annotations

import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from guardline.detectors.base import Direction
from guardline.detectors.guardrails import Guardrails
from guardline.exchange import Exchange, Usage
from guardline.exporters.content import PII, redact
from guardline.exporters.cost import PriceTable
from guardline.exporters.jsonl import JsonlSink
from guardline.exporters.kafka import KafkaSink
from guardline.exporters.sink import Sink
from guardline.logs import iso_time
from guardline.settings import SamplesSettings

if TYPE_CHECKING:
    from guardline.proxy.feedback import Feedback

log = logging.getLogger("guardline.samples")

SCHEMA_VERSION = 1
Reason = Literal["flagged", "baseline", "feedback"]


class Selector:
    """Decides whether an exchange becomes a sample, and why."""

    def __init__(self, settings: SamplesSettings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._random = (rng or random.Random()).random

    def reason(self, exchange: Exchange) -> Reason | None:
        settings = self._settings
        if not settings.enabled:
            return None
        route = settings.routes.get(exchange.endpoint.value)
        if route is not None and route.enabled is False:
            return None
        if exchange.findings:
            return "flagged"
        rate = settings.baseline_rate
        if route is not None and route.baseline_rate is not None:
            rate = route.baseline_rate
        if rate and self._random() < rate:
            return "baseline"
        return None


def sample_record(
    exchange: Exchange,
    *,
    reason: Reason,
    prompt: str,
    response: str,
    cost_usd: float | None,
    trace_id: str | None = None,
    span_id: str | None = None,
    received_at: float | None = None,
) -> dict[str, Any]:
    """One exchange record, JSON-ready. ``prompt`` and ``response`` must already be
    redacted. Its ``feedback`` is null as written: feedback arrives later as its own
    record (``feedback_record``) and readers join the two by ``request_id`` (Guardline's
    own id, unique per exchange; ``client_request_id`` is the client's ``x-request-id``,
    for correlation only, and may be shared by several exchanges or be null)."""
    reply = exchange.reply
    done = exchange.done or exchange.received
    wall = received_at if received_at is not None else time.time() - (done - exchange.received)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "exchange",
        "request_id": exchange.request_id,
        "client_request_id": exchange.client_request_id,
        "trace_id": trace_id,
        "span_id": span_id,
        "time": iso_time(wall),
        "selected": reason,
        "route": exchange.endpoint.value,
        "provider": exchange.provider,
        "model": exchange.model,
        "response_model": reply.model,
        "application": exchange.app,
        "upstream": exchange.upstream,
        "stream": exchange.stream,
        "prompt": prompt,
        "response": response,
        "findings": [
            {
                "detector": f.detector,
                "category": f.category,
                "direction": f.direction,
                "score": round(f.score, 4),
                **({"detail": f.detail} if f.detail else {}),
            }
            for f in exchange.findings
        ],
        "actions": dict(exchange.actions),
        "usage": _usage(reply.usage),
        "cost_usd": cost_usd,
        "latency_ms": round((done - exchange.received) * 1000, 3),
        "time_to_first_chunk_ms": (
            round((exchange.first_chunk - exchange.received) * 1000, 3)
            if exchange.stream and exchange.first_chunk is not None
            else None
        ),
        "finish_reason": reply.finish_reason,
        "outcome": exchange.outcome.value,
        "status": exchange.status,
        "reference": None,
        "feedback": None,
    }


def feedback_record(
    request_id: str,
    *,
    outcome: str,
    score: float | None,
    retained_fraction: float | None,
    comment: str | None,
    correction: str | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """Feedback on an exchange, as its own record (schema version 1). Free text
    (``comment``, ``correction``) must already be redacted."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "feedback",
        "request_id": request_id,
        "time": iso_time(time.time() if at is None else at),
        "feedback": {
            "outcome": outcome,
            "score": score,
            "retained_fraction": retained_fraction,
            "comment": comment,
            "correction": correction,
        },
    }


def _usage(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "estimated": usage.estimated,
    }


@dataclass(slots=True)
class KafkaStats:
    sent: int
    spooled: int
    replayed: int
    errors: int
    spool_bytes: int
    spool_limit: int
    lag_seconds: float
    connected: bool


@dataclass(slots=True)
class SampleStats:
    """What the samples pipeline has done so far (read by telemetry at collection)."""

    selected: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    """By sink name."""
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)
    """By (sink name, reason)."""
    kafka: KafkaStats | None = None


class Samples:
    """Turns finished exchanges (and later feedback) into redacted records for every
    configured sink. Called on the event loop after the client has its answer; the sinks
    queue, so nothing here waits for a disk or a broker."""

    def __init__(
        self,
        settings: SamplesSettings,
        guardrails: Guardrails,
        *,
        prices: PriceTable | None = None,
        sinks: Sequence[Sink] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._guardrails = guardrails
        self._prices = prices or PriceTable.load()
        self._selector = Selector(settings, rng)
        self.enabled = settings.enabled
        self.sinks: list[Sink] = list(sinks) if sinks is not None else _sinks(settings)
        self.raw = settings.export_raw_text_including_pii
        self.selected: dict[str, int] = {"flagged": 0, "baseline": 0, "feedback": 0}
        self.feedback_records = 0
        self.unjoined = 0
        # request id -> what a rejection needs to make a sample later (unselected ones),
        # or None (selected: its feedback is always worth a record).
        self._recent: OrderedDict[str, _Pending | None] = OrderedDict()
        self._memory = settings.feedback_memory
        self._chars = 0
        if self.enabled and self.raw:
            log.warning(
                "samples: export_raw_text_including_pii is ON: prompts and responses are "
                "written to %s WITHOUT PII redaction",
                ", ".join(sink.name for sink in self.sinks) or "no sink",
            )
        elif self.enabled and PII not in guardrails.scanner.detectors:
            log.warning("samples: no PII detector is enabled, so sample text is withheld")

    @property
    def active(self) -> bool:
        return self.enabled and bool(self.sinks)

    async def exchange(
        self,
        exchange: Exchange,
        prompts: Sequence[str],
        responses: Sequence[str],
        *,
        trace: tuple[str, str] | None = None,
    ) -> None:
        """Select, redact and hand on one finished exchange (``trace``: its trace and
        span ids, hex)."""
        reason = self._selector.reason(exchange)
        pending = _Pending(exchange, list(prompts), list(responses), trace)
        if reason is None:
            self._remember(exchange.request_id, pending)
            return
        self._remember(exchange.request_id, None)
        await self._emit(pending, reason)

    async def feedback(self, request_id: str, feedback: Feedback) -> None:
        """Feedback as its own record; a rejected exchange that was not selected becomes
        a sample now, if it is still remembered. Never raises (the caller's feedback is
        recorded either way)."""
        if not self.active:
            return
        try:
            await self._feedback(request_id, feedback)
        except Exception as exc:  # the message could quote the comment: type only
            log.error("samples failed on feedback for %s (%s)", request_id, type(exc).__name__)

    async def _feedback(self, request_id: str, feedback: Feedback) -> None:
        known = request_id in self._recent
        pending = self._recent.get(request_id)
        if pending is not None and feedback.outcome != "rejected":
            return  # an unselected exchange, accepted or edited: not worth a record
        if pending is not None:
            self._recent[request_id] = None
            await self._emit(pending, "feedback")
        elif not known:
            self.unjoined += 1  # served elsewhere or long ago: readers join it if they can
        record = feedback_record(
            request_id,
            outcome=feedback.outcome,
            score=feedback.score,
            retained_fraction=feedback.retained_fraction,
            comment=await self._text(feedback.comment, "request"),
            correction=await self._text(feedback.correction, "response"),
        )
        self.feedback_records += 1
        self._submit(record)

    def describe(self) -> str:
        """One line for the startup log: where samples go and how they are redacted."""
        if not self.active:
            return "samples: off" if not self.enabled else "samples: no sink configured"
        where = []
        for sink in self.sinks:
            if isinstance(sink, JsonlSink):
                where.append(f"JSON Lines in {sink.directory}")
            elif isinstance(sink, KafkaSink):
                servers = ",".join(sink.settings.bootstrap_servers)
                where.append(
                    f"Kafka topic {sink.topic} at {servers} (spool {sink.spool.directory})"
                )
            else:
                where.append(sink.name)
        redaction = "RAW TEXT, PII NOT REDACTED" if self.raw else "PII redacted"
        if not self.raw and PII not in self._guardrails.scanner.detectors:
            redaction = "text withheld (no PII detector)"
        rate = self.settings.baseline_rate
        return f"samples: flagged + {rate:.1%} baseline -> {'; '.join(where)}; {redaction}"

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:
                log.exception("sample sink %s failed to close", sink.name)

    def stats(self) -> SampleStats:
        stats = SampleStats(selected=dict(self.selected))
        for sink in self.sinks:
            written, dropped = sink.counts()
            stats.written[sink.name] = written
            for reason, count in dropped.items():
                stats.dropped[(sink.name, reason)] = count
            if isinstance(sink, KafkaSink):
                stats.kafka = KafkaStats(
                    sent=sink.sent,
                    spooled=sink.spooled,
                    replayed=sink.replayed,
                    errors=sink.failed_batches,
                    spool_bytes=sink.spool.unsent_bytes,
                    spool_limit=sink.spool.max_bytes,
                    lag_seconds=sink.lag,
                    connected=sink.connected,
                )
        return stats

    def health(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "redaction": "off (raw text, includes PII)" if self.raw else "pii",
            "selected": dict(self.selected),
            "sinks": {sink.name: sink.health() for sink in self.sinks},
        }

    # internals ------------------------------------------------------------------------

    async def _emit(self, pending: _Pending, reason: Reason) -> None:
        self.selected[reason] += 1
        exchange, trace = pending.exchange, pending.trace
        usage = exchange.reply.usage
        # Priced here, not per exchange: most exchanges never become a record.
        cost = (
            None
            if usage is None
            else self._prices.cost(exchange.reply.model or exchange.model, usage)
        )
        record = sample_record(
            exchange,
            reason=reason,
            prompt=await self._text(_joined(pending.prompts), "request") or "",
            response=await self._text(_joined(pending.responses), "response") or "",
            cost_usd=cost,
            trace_id=trace[0] if trace else None,
            span_id=trace[1] if trace else None,
            received_at=pending.received_at,
        )
        self._submit(record)

    async def _text(self, text: str | None, direction: Direction) -> str | None:
        """Redacted (the PII detector's findings, then a re-scan) unless raw export is
        on; cut to ``max_text_chars``."""
        if not text:
            return text
        limit = self.settings.max_text_chars
        if len(text) > limit:
            text = f"{text[:limit]}{TRUNCATED.format(len(text) - limit)}"
        return text if self.raw else await redact(self._guardrails, text, direction)

    def _submit(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                sink.submit(record)
            except Exception:  # a sink must not break the request; it counts its own drops
                log.exception("sample sink %s failed", sink.name)

    def _remember(self, request_id: str, pending: _Pending | None) -> None:
        """Keep the last ``feedback_memory`` exchanges, and their texts only while they
        add up to less than ``_MEMORY_CHARS`` (older ones keep just the id)."""
        if not self._memory:
            return
        recent = self._recent
        previous = recent.pop(request_id, None)
        if previous is not None:
            self._chars -= previous.chars
        recent[request_id] = pending
        if pending is not None:
            self._chars += pending.chars
        while len(recent) > self._memory:
            _, dropped = recent.popitem(last=False)
            if dropped is not None:
                self._chars -= dropped.chars
        if self._chars > _MEMORY_CHARS:
            for rid, old in recent.items():
                if old is not None:
                    recent[rid] = None  # known and unselected; its text is gone
                    self._chars -= old.chars
                    if self._chars <= _MEMORY_CHARS // 2:
                        break


TRUNCATED = " …[{} characters cut]"
_MEMORY_CHARS = 32_000_000
"""Text kept for rejected-feedback joins, at most (about 64 MB)."""


class _Pending:
    """An unselected exchange kept for a while, in case its feedback is a rejection."""

    __slots__ = ("chars", "exchange", "prompts", "received_at", "responses", "trace")

    def __init__(
        self,
        exchange: Exchange,
        prompts: list[str],
        responses: list[str],
        trace: tuple[str, str] | None,
    ) -> None:
        self.exchange = exchange
        self.prompts = prompts
        self.responses = responses
        self.trace = trace
        # Wall time of arrival, fixed now: a rejection may make the record much later.
        self.received_at = time.time() - (time.perf_counter() - exchange.received)
        self.chars = sum(map(len, prompts)) + sum(map(len, responses))


def _joined(texts: Sequence[str]) -> str:
    return "\n\n".join(t for t in texts if t)


def _sinks(settings: SamplesSettings) -> list[Sink]:
    """The sinks the settings ask for (a worker of ``serve --workers N`` writes its own
    files and keeps its own spool)."""
    sinks: list[Sink] = []
    if not settings.enabled:
        return sinks
    writer = settings.writer
    if settings.jsonl.enabled:
        prefix = f"samples-{writer}" if writer else "samples"
        sinks.append(
            JsonlSink(
                settings.jsonl.directory, prefix=prefix, max_bytes=settings.jsonl.max_file_bytes
            )
        )
    if settings.kafka.enabled:
        spool = settings.kafka.spool_directory
        sinks.append(KafkaSink(settings.kafka, spool / writer if writer else spool))
    return sinks
