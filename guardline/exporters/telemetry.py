"""Turning exchanges into OpenTelemetry spans and metrics.

``Telemetry`` is what the proxy calls; ``NullTelemetry`` (telemetry off) is the fake
beside it. Everything is recorded once, when an exchange finishes, after the client has
its last byte, so recording never adds latency to the call it describes. Metric labels
come from bounded sets only (see ``labels``); message content is never a label.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client.registry import Collector

from guardline.detectors.base import Finding
from guardline.exchange import Endpoint, Exchange, Outcome, Usage
from guardline.exporters import names as n
from guardline.exporters.cost import PriceTable
from guardline.exporters.labels import LabelCaps
from guardline.exporters.meters import Labels
from guardline.exporters.models import model_label
from guardline.exporters.multiprocess import MergedCollector, SnapshotWriter, exposition
from guardline.exporters.names import Instrument
from guardline.exporters.pipeline import Pipeline, build_pipeline
from guardline.settings import TelemetrySettings

if TYPE_CHECKING:
    from guardline.exporters.samples import SampleStats
    from guardline.proxy.feedback import Feedback
    from guardline.proxy.signing import Attribution
    from guardline.proxy.transport import Header

log = logging.getLogger("guardline.telemetry")

OPERATIONS = {
    Endpoint.CHAT_COMPLETIONS: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
    Endpoint.RESPONSES: "chat",
    Endpoint.MESSAGES: "chat",
}
"""GenAI operation names; other endpoints (models, pass-through) are not GenAI operations."""

_CHARS_PER_TOKEN = 4.0  # the usual rule of thumb for English text with BPE tokenizers
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})


class Telemetry(Protocol):
    enabled: bool
    records_content: bool

    def begin(self, exchange: Exchange, headers: Sequence[Header], server: str) -> list[Header]:
        """Start the exchange's span; the trace headers to send upstream instead of the
        client's (empty: forward the client's unchanged)."""
        ...

    def stream_opened(self, exchange: Exchange) -> None: ...

    def stream_closed(self, exchange: Exchange) -> None: ...

    def finish(self, exchange: Exchange, content: tuple[str, str] | None = None) -> None:
        """Record a finished exchange (``content``: redacted input and output text)."""
        ...

    def feedback(
        self, attribution: Attribution, feedback: Feedback, replaced: Feedback | None = None
    ) -> None:
        """Record one feedback post; ``replaced`` is the earlier post on the same request
        id it supersedes (counted as superseded, so each call's feedback counts once)."""
        ...

    def detectors(self, backends: Mapping[str, str]) -> None:
        """Report which backend each detector runs."""
        ...

    def samples(self, stats: Callable[[], SampleStats]) -> None:
        """Report what the samples pipeline did (``stats`` is read at each collection)."""
        ...

    def scrape(self) -> bytes | None:
        """The Prometheus text exposition, or None when ``/metrics`` is off."""
        ...

    def health(self) -> dict[str, Any]: ...

    def shutdown(self) -> None: ...


class NullTelemetry:
    """Telemetry switched off: nothing recorded, nothing exported."""

    enabled = False
    records_content = False

    def begin(self, exchange: Exchange, headers: Sequence[Header], server: str) -> list[Header]:
        return []

    def stream_opened(self, exchange: Exchange) -> None:
        return None

    def stream_closed(self, exchange: Exchange) -> None:
        return None

    def finish(self, exchange: Exchange, content: tuple[str, str] | None = None) -> None:
        return None

    def feedback(
        self, attribution: Attribution, feedback: Feedback, replaced: Feedback | None = None
    ) -> None:
        return None

    def detectors(self, backends: Mapping[str, str]) -> None:
        return None

    def samples(self, stats: Callable[[], SampleStats]) -> None:
        return None

    def scrape(self) -> bytes | None:
        return None

    def health(self) -> dict[str, Any]:
        return {"enabled": False}

    def shutdown(self) -> None:
        return None


class OTelTelemetry:
    """Spans and metrics through the OpenTelemetry SDK."""

    enabled = True

    def __init__(
        self,
        settings: TelemetrySettings,
        *,
        prices: PriceTable | None = None,
        metric_readers: Sequence[MetricReader] = (),
        span_exporters: Sequence[SpanExporter] = (),
    ) -> None:
        self.settings = settings
        self.records_content = settings.record_content
        self.pipeline: Pipeline = build_pipeline(
            settings, metric_readers=metric_readers, span_exporters=span_exporters
        )
        self._page: Collector | None = self.pipeline.registry
        self._snapshots: SnapshotWriter | None = None
        if self.pipeline.registry is not None and settings.multiprocess_dir is not None:
            # Several workers: each leaves snapshots; any worker's page sums them all.
            self._snapshots = SnapshotWriter(
                settings.multiprocess_dir,
                self.pipeline.registry,
                interval=settings.snapshot_interval,
            )
            self._page = MergedCollector(
                settings.multiprocess_dir, self.pipeline.registry, self._snapshots.name
            )
            self._snapshots.start()
        self.prices = prices or PriceTable.load(settings.prices_file)
        self.labels = LabelCaps(settings.label_cap, settings.label_caps)
        self._key_cache: dict[tuple[Any, ...], _Keys] = {}
        self._pending: list[tuple[Exchange, tuple[str, str] | None]] = []
        self._pending_lock = threading.Lock()
        self._scheduled = False
        self.pipeline.meters.before_collect(self._drain)
        self._tracer = (
            self.pipeline.tracers.get_tracer(n.INSTRUMENTATION_SCOPE, schema_url=n.SCHEMA_URL)
            if self.pipeline.tracers is not None
            else None
        )
        meters = self.pipeline.meters
        self._duration = meters.histogram(n.OPERATION_DURATION)
        self._tokens = meters.histogram(n.TOKEN_USAGE)
        self._first_chunk = meters.histogram(n.TIME_TO_FIRST_CHUNK)
        self._per_chunk = meters.histogram(n.TIME_PER_OUTPUT_CHUNK)
        self._overhead = meters.histogram(n.OVERHEAD)
        self._requests = meters.counter(n.REQUESTS)
        self._findings = meters.counter(n.FINDINGS)
        self._actions = meters.counter(n.ACTIONS)
        self._cost = meters.counter(n.COST)
        self._unpriced = meters.counter(n.UNPRICED)
        self._estimated = meters.counter(n.ESTIMATED_TOKENS)
        self._feedback = meters.counter(n.FEEDBACK)
        self._retained = meters.histogram(n.RETAINED)
        self._score = meters.histogram(n.SCORE)
        self._superseded = meters.counter(n.FEEDBACK_SUPERSEDED)
        self._retained_superseded = meters.histogram(n.RETAINED_SUPERSEDED)
        self._score_superseded = meters.histogram(n.SCORE_SUPERSEDED)
        self._signals = meters.counter(n.SIGNALS)
        self._streams = meters.counter(n.ACTIVE_STREAMS)
        self._recording_cpu = meters.counter(n.RECORDING_CPU)

    # the proxy's calls ----------------------------------------------------------------

    def begin(self, exchange: Exchange, headers: Sequence[Header], server: str) -> list[Header]:
        if self._tracer is None:
            return []
        carrier = {k.decode(): v.decode("latin-1") for k, v in headers if k in _TRACE_HEADERS}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        started = time.time_ns() - int((time.perf_counter() - exchange.received) * 1e9)
        span = self._tracer.start_span(
            _span_name(exchange),
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=started,
            attributes={n.SERVER_ADDRESS: server},
        )
        exchange.trace = span
        out: dict[str, str] = {}
        _PROPAGATOR.inject(out, context=trace.set_span_in_context(span))
        return [(k.encode(), v.encode()) for k, v in out.items()]

    def stream_opened(self, exchange: Exchange) -> None:
        self._streams.add(1, _stream_labels(exchange))

    def stream_closed(self, exchange: Exchange) -> None:
        self._streams.add(-1, _stream_labels(exchange))

    def finish(self, exchange: Exchange, content: tuple[str, str] | None = None) -> None:
        # Recorded in batches a moment later: one pass over many exchanges runs with the
        # CPU's caches warm. Measured at saturation: +25 µs of CPU per call recorded one at
        # a time, +10 µs in batches.
        with self._pending_lock:
            self._pending.append((exchange, content))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            asyncio.get_running_loop().call_later(_BATCH_SECONDS, self._drain)
        except RuntimeError:  # no event loop (a tool, a test): record now
            self._drain()

    def _drain(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
        if not pending:
            return
        started = time.thread_time()
        for exchange, content in pending:
            try:
                self._record(exchange, content)
            except Exception:
                log.exception("telemetry failed to record request %s", exchange.request_id)
        self._recording_cpu.add(time.thread_time() - started, ())

    def _record(self, exchange: Exchange, content: tuple[str, str] | None) -> None:
        done = exchange.done or time.perf_counter()
        error = _error_type(exchange)
        keys = self._keys(exchange, error)
        labels = keys.labels
        self._requests.add(1, keys.requests)
        self._overhead.record(_overhead(exchange, done), labels)
        usage = self._usage(exchange)
        cost = None
        genai = keys.genai
        if genai is not None:
            self._duration.record(done - exchange.received, genai)
            if exchange.stream and exchange.first_chunk is not None:
                self._first_chunk.record(exchange.first_chunk - exchange.received, genai)
                times = exchange.reply.chunk_times
                self._per_chunk.record_many(
                    [after - before for before, after in itertools.pairwise(times)], genai
                )
            if usage is not None:
                cost = self._record_usage(exchange, usage, keys)
            self._record_signals(exchange, labels)
        if exchange.findings:
            self._record_findings(exchange, labels)
        for action, count in exchange.actions.items():
            self._actions.add(count, (*labels, (n.ACTION, action)))
        if self._tracer is not None:
            self._end_span(
                exchange, usage=usage, cost=cost, error=error, done=done, content=content
            )

    def feedback(
        self, attribution: Attribution, feedback: Feedback, replaced: Feedback | None = None
    ) -> None:
        # Every post is counted, and so is every post a later one replaced: counters only
        # grow (rate() works), and each call's latest feedback is the difference.
        labels: Labels = (
            (n.PROVIDER_NAME, attribution.provider),
            (n.ROUTE, attribution.route),
            (n.REQUEST_MODEL, self.labels.model(model_label(attribution.model))),
            (n.APP, self.labels.app(attribution.app or n.UNKNOWN)),
        )
        self._feedback.add(1, (*labels, (n.FEEDBACK_OUTCOME, feedback.outcome)))
        if feedback.retained_fraction is not None:
            self._retained.record(feedback.retained_fraction, labels)
        if feedback.score is not None:
            self._score.record(feedback.score, labels)
        if replaced is None:
            return
        self._superseded.add(1, (*labels, (n.FEEDBACK_OUTCOME, replaced.outcome)))
        if replaced.retained_fraction is not None:
            self._retained_superseded.record(replaced.retained_fraction, labels)
        if replaced.score is not None:
            self._score_superseded.record(replaced.score, labels)

    def detectors(self, backends: Mapping[str, str]) -> None:
        values: dict[Labels, float] = {
            ((n.DETECTOR, name), (n.BACKEND, backend)): 1.0 for name, backend in backends.items()
        }
        self.pipeline.meters.gauge(n.DETECTOR_BACKEND, lambda: values)

    def samples(self, stats: Callable[[], SampleStats]) -> None:
        observed = _SampleMetrics(stats)
        meters = self.pipeline.meters
        meters.before_collect(observed.refresh)
        for spec in observed.values:
            meters.gauge(spec, partial(observed.values.__getitem__, spec))

    def scrape(self) -> bytes | None:
        if self._page is None:
            return None
        return exposition(self._page)[0]

    def health(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "exporters": self.pipeline.exporters,
            "traces": self._tracer is not None,
            "workers_merged": self._snapshots is not None,
            "prices_as_of": self.prices.as_of,
        }

    def shutdown(self) -> None:
        self._drain()
        if self._snapshots is not None:
            # Before the pipeline: its shutdown unregisters the collector the final
            # snapshot reads, and this worker's totals would drop out of the sum.
            self._snapshots.stop()
            self._snapshots = None
        self.pipeline.shutdown()

    # internals ------------------------------------------------------------------------

    def _keys(self, exchange: Exchange, error: str | None) -> _Keys:
        """The label tuples of an exchange, built once per combination (a cache lookup
        per exchange instead of a dozen tuples)."""
        key = (
            exchange.provider,
            exchange.endpoint,
            exchange.model,
            exchange.app,
            exchange.upstream,
            exchange.stream,
            exchange.outcome,
            error,
        )
        keys = self._key_cache.get(key)
        if keys is None:
            if len(self._key_cache) >= _KEY_CACHE:
                self._key_cache.clear()  # made-up model names must not grow it forever
            keys = self._key_cache[key] = self._build_keys(exchange, error)
        return keys

    def _build_keys(self, exchange: Exchange, error: str | None) -> _Keys:
        labels: Labels = (
            (n.PROVIDER_NAME, exchange.provider),
            (n.ROUTE, exchange.endpoint.value),
            (n.REQUEST_MODEL, self.labels.model(model_label(exchange.model))),
            (n.APP, self.labels.app(exchange.app or n.UNKNOWN)),
            (n.UPSTREAM, exchange.upstream or n.UNKNOWN),
            (n.STREAM, "true" if exchange.stream else "false"),
        )
        errored: Labels = ((n.ERROR_TYPE, self.labels.error_type(error)),) if error else ()
        requests = (*labels, (n.OUTCOME, exchange.outcome.value), *errored)
        operation = OPERATIONS.get(exchange.endpoint)
        if operation is None:
            return _Keys(labels, requests, None, (), ())
        genai = (*labels, (n.OPERATION_NAME, operation), *errored)
        flags = ((n.ESTIMATED, "false"), (n.ESTIMATED, "true"))
        tokens = tuple(
            (*genai, (n.TOKEN_TYPE, kind), flag)
            for flag in flags
            for kind in (n.TOKEN_INPUT, n.TOKEN_OUTPUT)
        )
        return _Keys(labels, requests, genai, tokens, tuple((*genai, f) for f in flags))

    def _usage(self, exchange: Exchange) -> Usage | None:
        """The upstream's counts; an estimate (marked) only when it reported none for a
        call it answered."""
        usage = exchange.reply.usage
        if usage is not None:
            return usage
        if (
            exchange.endpoint not in OPERATIONS
            or exchange.status is None
            or exchange.status >= 300
            or exchange.outcome is not Outcome.OK
        ):
            return None
        return Usage(
            input_tokens=math.ceil(exchange.input_chars / _CHARS_PER_TOKEN),
            output_tokens=math.ceil(exchange.reply.output_chars / _CHARS_PER_TOKEN),
            estimated=True,
        )

    def _record_usage(self, exchange: Exchange, usage: Usage, keys: _Keys) -> float | None:
        genai = keys.genai
        assert genai is not None
        estimated = 1 if usage.estimated else 0
        self._tokens.record(usage.input_tokens, keys.tokens[2 * estimated])
        if exchange.endpoint is not Endpoint.EMBEDDINGS:
            self._tokens.record(usage.output_tokens, keys.tokens[2 * estimated + 1])
        if usage.estimated:
            self._estimated.add(1, genai)
        model = exchange.reply.model or exchange.model
        cost = self.prices.cost(model, usage)
        if cost is None:
            self._unpriced.add(1, genai)
            if self.prices.first_unpriced(model):
                log.warning(
                    "no price for model %r: its cost is counted as unpriced "
                    "(add it to telemetry.prices_file)",
                    model_label(model),
                )
            return None
        self._cost.add(cost, keys.cost[estimated])
        return cost

    def _record_signals(self, exchange: Exchange, labels: Labels) -> None:
        reply = exchange.reply
        signals = []
        if exchange.regenerated:
            signals.append("regenerated")
        if exchange.outcome is Outcome.OK and exchange.status is not None and exchange.status < 300:
            if reply.truncated:
                signals.append("truncated")
            if reply.refusal:
                signals.append("refusal")
            if reply.empty and exchange.endpoint is not Endpoint.EMBEDDINGS:
                signals.append("empty")
        for signal in signals:
            self._signals.add(1, (*labels, (n.SIGNAL, signal)))

    def _record_findings(self, exchange: Exchange, labels: Labels) -> None:
        counts: dict[tuple[str, str, str, str, str], int] = {}
        for finding in exchange.findings:
            key = (
                finding.detector,
                self.labels.category(finding.category),
                finding.direction,
                _action(exchange, finding),
                self.labels.category(finding.detail) if finding.detail else "",
            )
            counts[key] = counts.get(key, 0) + 1
        for (detector, category, direction, action, detail), count in counts.items():
            self._findings.add(
                count,
                (
                    *labels,
                    (n.DETECTOR, detector),
                    (n.CATEGORY, category),
                    (n.DIRECTION, direction),
                    (n.ACTION, action),
                    (n.DETAIL, detail),
                ),
            )

    def _end_span(
        self,
        exchange: Exchange,
        *,
        usage: Usage | None,
        cost: float | None,
        error: str | None,
        done: float,
        content: tuple[str, str] | None,
    ) -> None:
        span = exchange.trace
        end = time.time_ns() - int((time.perf_counter() - done) * 1e9)
        if span is None:  # failed before the upstream call: a span all the same
            assert self._tracer is not None
            span = self._tracer.start_span(
                _span_name(exchange),
                kind=SpanKind.CLIENT,
                start_time=end - int((done - exchange.received) * 1e9),
            )
        exchange.trace = None
        attributes: dict[str, Any] = {
            n.PROVIDER_NAME: exchange.provider,
            n.ROUTE: exchange.endpoint.value,
            n.OUTCOME: exchange.outcome.value,
            n.REQUEST_ID: exchange.request_id,
            n.STREAM: exchange.stream,
            n.OVERHEAD_SECONDS: _overhead(exchange, done),
        }
        if exchange.client_request_id:
            attributes[n.CLIENT_REQUEST_ID] = exchange.client_request_id
        operation = OPERATIONS.get(exchange.endpoint)
        if operation is not None:
            attributes[n.OPERATION_NAME] = operation
        if exchange.model:
            attributes[n.REQUEST_MODEL] = exchange.model
        reply = exchange.reply
        if reply.model:
            attributes[n.RESPONSE_MODEL] = reply.model
        if reply.finish_reason:
            attributes[n.RESPONSE_FINISH_REASONS] = (reply.finish_reason,)
        if exchange.app:
            attributes[n.APP] = exchange.app
        if exchange.upstream:
            attributes[n.UPSTREAM] = exchange.upstream
        if usage is not None:
            attributes[n.USAGE_INPUT_TOKENS] = usage.input_tokens
            attributes[n.USAGE_OUTPUT_TOKENS] = usage.output_tokens
            attributes[n.USAGE_CACHE_READ_TOKENS] = usage.cached_input_tokens
            attributes[n.USAGE_CACHE_CREATION_TOKENS] = usage.cache_write_tokens
            attributes[n.USAGE_REASONING_TOKENS] = usage.reasoning_tokens
            attributes[n.ESTIMATED] = usage.estimated
        if cost is not None:
            attributes[n.COST_USD] = cost
        if exchange.findings:
            attributes[n.FINDINGS_COUNT] = len(exchange.findings)
            attributes[n.FINDINGS_CATEGORIES] = sorted(
                {f"{f.direction}.{f.detector}.{f.category}" for f in exchange.findings}
            )
        if exchange.actions:
            attributes[n.ACTIONS_TAKEN] = sorted(
                f"{action}={count}" for action, count in exchange.actions.items()
            )
        if exchange.regenerated:
            attributes[n.REGENERATED] = True
        if content is not None:
            attributes[n.INPUT_MESSAGES], attributes[n.OUTPUT_MESSAGES] = content
        if error is not None:
            attributes[n.ERROR_TYPE] = error
            span.set_status(Status(StatusCode.ERROR, error))
        span.set_attributes(attributes)
        span.end(end_time=end)


@dataclass(frozen=True, slots=True)
class _Keys:
    labels: Labels
    requests: Labels
    genai: Labels | None
    """None for calls that are not GenAI operations."""
    tokens: tuple[Labels, ...]
    """Token usage labels: input, output; then the same marked estimated."""
    cost: tuple[Labels, ...]
    """Cost labels: measured, estimated."""


_KEY_CACHE = 4096
_BATCH_SECONDS = 0.05


def _span_name(exchange: Exchange) -> str:
    operation = OPERATIONS.get(exchange.endpoint)
    if operation is None:
        return f"{exchange.method} {exchange.endpoint.value}"
    return f"{operation} {model_label(exchange.model)}" if exchange.model else operation


@functools.lru_cache(maxsize=64)
def _stream_key(provider: str, endpoint: Endpoint) -> Labels:
    return ((n.PROVIDER_NAME, provider), (n.ROUTE, endpoint.value))


def _stream_labels(exchange: Exchange) -> Labels:
    return _stream_key(exchange.provider, exchange.endpoint)


def _error_type(exchange: Exchange) -> str | None:
    """``error.type``: Guardline's error code, or the upstream's HTTP status."""
    outcome = exchange.outcome
    if outcome is Outcome.OK:
        return None
    if outcome is Outcome.UPSTREAM_ERROR:
        return str(exchange.status)
    if outcome is Outcome.CLIENT_DISCONNECT:
        return "client_disconnect"
    return exchange.error_code or "_OTHER"


def _overhead(exchange: Exchange, done: float) -> float:
    """Guardline's own time: before the upstream call went out, and after its last byte."""
    if exchange.upstream_sent is None:
        return done - exchange.received
    before = exchange.upstream_sent - exchange.received
    after = done - exchange.upstream_done if exchange.upstream_done is not None else 0.0
    return before + max(after, 0.0)


def _action(exchange: Exchange, finding: Finding) -> str:
    """What was done about a finding: the rule's action in guard mode, ``flag`` otherwise."""
    policy = exchange.policy
    if policy is None:
        return "flag"
    rule = policy.rules(finding.direction).get(finding.detector)
    if rule is None or rule.mode != "guard":
        return "flag"
    return rule.action


class _SampleMetrics:
    """The samples pipeline's counters and gauges, read once per collection."""

    def __init__(self, stats: Callable[[], SampleStats]) -> None:
        self._stats = stats
        self.values: dict[Instrument, dict[Labels, float]] = {
            spec: {}
            for spec in (
                n.SAMPLES_SELECTED,
                n.SAMPLES_WRITTEN,
                n.SAMPLES_DROPPED,
                n.SAMPLES_SENT,
                n.SAMPLES_SPOOLED,
                n.SAMPLES_REPLAYED,
                n.KAFKA_ERRORS,
                n.SPOOL_BYTES,
                n.SPOOL_LIMIT,
                n.SENDER_LAG,
                n.KAFKA_CONNECTED,
            )
        }

    def refresh(self) -> None:
        stats = self._stats()
        values = self.values
        values[n.SAMPLES_SELECTED] = {
            ((n.SAMPLE_REASON, reason),): count for reason, count in stats.selected.items()
        }
        values[n.SAMPLES_WRITTEN] = {((n.SINK, sink),): c for sink, c in stats.written.items()}
        # Every sink shows a zero, so "dropped should stay 0" has a series to watch.
        dropped: dict[Labels, float] = {
            ((n.SINK, sink), (n.DROP_REASON, "none")): 0 for sink in stats.written
        }
        for (sink, reason), count in stats.dropped.items():
            dropped[((n.SINK, sink), (n.DROP_REASON, reason))] = count
        values[n.SAMPLES_DROPPED] = dropped
        kafka = stats.kafka
        if kafka is None:
            return
        values[n.SAMPLES_SENT] = {(): kafka.sent}
        values[n.SAMPLES_SPOOLED] = {(): kafka.spooled}
        values[n.SAMPLES_REPLAYED] = {(): kafka.replayed}
        values[n.KAFKA_ERRORS] = {(): kafka.errors}
        values[n.SPOOL_BYTES] = {(): kafka.spool_bytes}
        values[n.SPOOL_LIMIT] = {(): kafka.spool_limit}
        values[n.SENDER_LAG] = {(): kafka.lag_seconds}
        values[n.KAFKA_CONNECTED] = {(): 1.0 if kafka.connected else 0.0}
