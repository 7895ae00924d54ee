"""Every telemetry name Guardline emits: instruments, attributes, label values.

Dashboards, alert rules and tests import these; nobody retypes a metric name.

GenAI names follow the OpenTelemetry GenAI semantic conventions as of semantic-conventions
v1.44.0 (Development status; the GenAI group has since moved to its own repository). A
proxy is the model's *client*, so the client instruments apply: operation duration, token
usage, time to first chunk and time per output chunk. Guardline's own instruments are
prefixed ``guardline.``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

SEMCONV_VERSION = "1.44.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
INSTRUMENTATION_SCOPE = "guardline"

Kind = Literal["counter", "histogram", "updown", "gauge"]

# Recommended bucket boundaries from the GenAI metric conventions.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
FIRST_CHUNK_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
PER_CHUNK_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
# Guardline's own time is sub-millisecond when healthy; these resolve 50 µs to 1 s.
OVERHEAD_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
FRACTION_BUCKETS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True, slots=True)
class Instrument:
    name: str
    kind: Kind
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None

    @property
    def prometheus(self) -> str:
        """The metric family name on ``/metrics`` (OTel's Prometheus exporter rules:
        dots become underscores, the unit is appended, annotations like ``{token}`` drop)."""
        name = _PROM_SANITIZE.sub("_", self.name)
        unit = _PROM_UNITS.get(self.unit, _PROM_SANITIZE.sub("_", _ANNOTATION.sub("", self.unit)))
        if unit and not name.endswith("_" + unit):
            name += "_" + unit
        return name

    @property
    def samples(self) -> tuple[str, ...]:
        """The sample names a scrape shows for this family."""
        base = self.prometheus
        if self.kind == "counter":
            return (base + "_total",)
        if self.kind == "histogram":
            return (base + "_bucket", base + "_count", base + "_sum")
        return (base,)


_PROM_SANITIZE = re.compile(r"[^a-zA-Z0-9:]+")
_ANNOTATION = re.compile(r"{.*}")
_PROM_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}

# -- GenAI semantic-convention instruments -------------------------------------------------
OPERATION_DURATION = Instrument(
    "gen_ai.client.operation.duration", "histogram", "s", "GenAI operation duration.",
    DURATION_BUCKETS,
)  # fmt: skip
TOKEN_USAGE = Instrument(
    "gen_ai.client.token.usage", "histogram", "{token}",
    "Number of input and output tokens used.", TOKEN_BUCKETS,
)  # fmt: skip
TIME_TO_FIRST_CHUNK = Instrument(
    "gen_ai.client.operation.time_to_first_chunk", "histogram", "s",
    "Time from the application's request reaching Guardline to the first chunk of the "
    "response stream leaving for the application.", FIRST_CHUNK_BUCKETS,
)  # fmt: skip
TIME_PER_OUTPUT_CHUNK = Instrument(
    "gen_ai.client.operation.time_per_output_chunk", "histogram", "s",
    "Time between consecutive output chunks of a response stream.", PER_CHUNK_BUCKETS,
)  # fmt: skip

# -- Guardline's own instruments -----------------------------------------------------------
REQUESTS = Instrument(
    "guardline.requests", "counter", "{request}",
    "Exchanges through the proxy, by outcome and error.type.",
)  # fmt: skip
OVERHEAD = Instrument(
    "guardline.proxy.overhead", "histogram", "s",
    "Time Guardline itself added to an exchange: before the upstream call was sent and "
    "after the upstream's last byte, excluding the time spent waiting on the upstream.",
    OVERHEAD_BUCKETS,
)  # fmt: skip
ACTIVE_STREAMS = Instrument(
    "guardline.streams.active", "updown", "{stream}", "Response streams being relayed now."
)
FINDINGS = Instrument(
    "guardline.guardrail.findings", "counter", "{finding}",
    "Guardrail findings, by detector, category, direction and the action taken.",
)  # fmt: skip
ACTIONS = Instrument(
    "guardline.guardrail.actions", "counter", "{action}",
    "Exchanges a guardrail changed: redact (text rewritten) or block (call refused).",
)  # fmt: skip
COST = Instrument("guardline.cost", "counter", "usd", "Cost of exchanges in US dollars, by model.")
UNPRICED = Instrument(
    "guardline.cost.unpriced", "counter", "{request}",
    "Exchanges with token usage whose model has no price: their cost is unknown, not zero.",
)  # fmt: skip
ESTIMATED_TOKENS = Instrument(
    "guardline.tokens.estimated", "counter", "{request}",
    "Exchanges whose token counts were estimated because the upstream reported none.",
)  # fmt: skip
FEEDBACK = Instrument(
    "guardline.feedback", "counter", "{feedback}",
    "Feedback posted to /v1/feedback, every post, by outcome (accepted, rejected, edited). "
    "Counted feedback (each call's latest post) is this minus guardline.feedback.superseded.",
)  # fmt: skip
RETAINED = Instrument(
    "guardline.feedback.retained_fraction", "histogram", "1",
    "Share of a response the user kept (retention), from feedback that reports it.",
    FRACTION_BUCKETS,
)  # fmt: skip
SCORE = Instrument(
    "guardline.feedback.score", "histogram", "1", "Scores (0..1) reported with feedback.",
    FRACTION_BUCKETS,
)  # fmt: skip
FEEDBACK_SUPERSEDED = Instrument(
    "guardline.feedback.superseded", "counter", "{feedback}",
    "Feedback posts a later post on the same request id replaced, by the earlier post's "
    "outcome: subtract from guardline.feedback to count each call's latest feedback once.",
)  # fmt: skip
RETAINED_SUPERSEDED = Instrument(
    "guardline.feedback.superseded.retained_fraction", "histogram", "1",
    "The retained_fraction of replaced feedback posts: subtract from "
    "guardline.feedback.retained_fraction.", FRACTION_BUCKETS,
)  # fmt: skip
SCORE_SUPERSEDED = Instrument(
    "guardline.feedback.superseded.score", "histogram", "1",
    "The score of replaced feedback posts: subtract from guardline.feedback.score.",
    FRACTION_BUCKETS,
)  # fmt: skip
SIGNALS = Instrument(
    "guardline.response.signals", "counter", "{response}",
    "Implicit quality signals seen by the proxy: regenerated, truncated, refusal, empty.",
)  # fmt: skip
RECORDING_CPU = Instrument(
    "guardline.telemetry.cpu", "counter", "s",
    "CPU time Guardline spent recording telemetry (its own cost, measured on its thread).",
)  # fmt: skip
DETECTOR_BACKEND = Instrument(
    "guardline.detector.backend", "gauge", "1",
    "Which backend each detector runs (value 1), so a dashboard shows what is active.",
)  # fmt: skip

SAMPLES_SELECTED = Instrument(
    "guardline.samples.selected", "counter", "{sample}",
    "Exchanges kept as samples for offline evaluation, by why (flagged, baseline, feedback).",
)  # fmt: skip
SAMPLES_WRITTEN = Instrument(
    "guardline.samples.written", "counter", "{record}",
    "Sample records made durable, by sink (jsonl: a dataset line; kafka: in the spool).",
)  # fmt: skip
SAMPLES_SENT = Instrument(
    "guardline.samples.sent", "counter", "{record}",
    "Sample records the Kafka broker acknowledged.",
)  # fmt: skip
SAMPLES_SPOOLED = Instrument(
    "guardline.samples.spooled", "counter", "{record}",
    "Sample records that had to wait in the disk spool because the broker was unreachable.",
)  # fmt: skip
SAMPLES_REPLAYED = Instrument(
    "guardline.samples.replayed", "counter", "{record}",
    "Spooled sample records sent once the broker was back (or after a restart).",
)  # fmt: skip
SAMPLES_DROPPED = Instrument(
    "guardline.samples.dropped", "counter", "{record}",
    "Sample records lost, by sink and reason (queue_full, spool_full, error): should stay 0.",
)  # fmt: skip
SPOOL_BYTES = Instrument(
    "guardline.samples.spool.size", "gauge", "By",
    "Bytes of sample records waiting in the Kafka spool (unsent).",
)  # fmt: skip
SPOOL_LIMIT = Instrument(
    "guardline.samples.spool.limit", "gauge", "By",
    "The spool's bound (samples.kafka.spool_max_bytes): past it records are dropped.",
)  # fmt: skip
SENDER_LAG = Instrument(
    "guardline.samples.sender.lag", "gauge", "s",
    "Age of the oldest sample record the Kafka sender has not delivered yet (0: caught up).",
)  # fmt: skip
KAFKA_CONNECTED = Instrument(
    "guardline.samples.kafka.connected", "gauge", "1",
    "1 while the Kafka broker takes sample records, 0 while it is unreachable.",
)  # fmt: skip
KAFKA_ERRORS = Instrument(
    "guardline.samples.kafka.errors", "counter", "{batch}",
    "Batches of sample records the Kafka broker did not acknowledge (each is retried).",
)  # fmt: skip

# Re-evaluation jobs (served by ``guardline reeval receiver``, which sees every job end).
REEVAL_JOBS = Instrument(
    "guardline.reeval.jobs", "counter", "{job}",
    "Re-evaluation jobs that ended, by evaluation and state (done / failed).",
)  # fmt: skip
REEVAL_DURATION = Instrument(
    "guardline.reeval.duration", "histogram", "s",
    "How long a re-evaluation job ran, from start to report.",
    (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
)  # fmt: skip
REEVAL_RATE = Instrument(
    "guardline.reeval.rate", "gauge", "1",
    "The last evaluation's flag rate per evaluator and category, in the alert's window and "
    "in the baseline before it.",
)  # fmt: skip
REEVAL_SAMPLES = Instrument(
    "guardline.reeval.samples", "gauge", "{sample}",
    "Samples the last evaluation re-scored, window and baseline.",
)  # fmt: skip
REEVAL_LAST = Instrument(
    "guardline.reeval.last_completed", "gauge", "s",
    "Unix time the last evaluation of each kind finished.",
)  # fmt: skip

INSTRUMENTS: tuple[Instrument, ...] = (
    OPERATION_DURATION,
    TOKEN_USAGE,
    TIME_TO_FIRST_CHUNK,
    TIME_PER_OUTPUT_CHUNK,
    REQUESTS,
    OVERHEAD,
    ACTIVE_STREAMS,
    FINDINGS,
    ACTIONS,
    COST,
    UNPRICED,
    ESTIMATED_TOKENS,
    FEEDBACK,
    RETAINED,
    SCORE,
    FEEDBACK_SUPERSEDED,
    RETAINED_SUPERSEDED,
    SCORE_SUPERSEDED,
    SIGNALS,
    RECORDING_CPU,
    DETECTOR_BACKEND,
    SAMPLES_SELECTED,
    SAMPLES_WRITTEN,
    SAMPLES_SENT,
    SAMPLES_SPOOLED,
    SAMPLES_REPLAYED,
    SAMPLES_DROPPED,
    SPOOL_BYTES,
    SPOOL_LIMIT,
    SENDER_LAG,
    KAFKA_CONNECTED,
    KAFKA_ERRORS,
    REEVAL_JOBS,
    REEVAL_DURATION,
    REEVAL_RATE,
    REEVAL_SAMPLES,
    REEVAL_LAST,
)

SUPERSEDED: Mapping[Instrument, Instrument] = {
    FEEDBACK: FEEDBACK_SUPERSEDED,
    RETAINED: RETAINED_SUPERSEDED,
    SCORE: SCORE_SUPERSEDED,
}
"""Feedback instruments count every post; each one's twin counts (with the same labels) the
posts a later one on the same request id replaced. What counts is the difference."""

# -- attributes ----------------------------------------------------------------------------
# GenAI semantic-convention attributes.
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
TOKEN_TYPE = "gen_ai.token.type"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
# Guardline's attributes (metric labels are the subset marked "label").
ROUTE = "guardline.route"  # label: the Endpoint value
APP = "guardline.app"  # label, capped
UPSTREAM = "guardline.upstream"  # label: a configured upstream name
OUTCOME = "guardline.outcome"  # label: Outcome value
STREAM = "guardline.stream"  # label: "true" / "false"
DETECTOR = "guardline.detector"  # label
CATEGORY = "guardline.category"  # label, capped
DIRECTION = "guardline.direction"  # label: request / response
ACTION = "guardline.action"  # label: flag / redact / block
BACKEND = "guardline.detector.backend"  # label: the backend a detector runs
DETAIL = "guardline.finding.detail"  # label, capped: e.g. nurse:she for skew panels; "" if none
FEEDBACK_OUTCOME = "guardline.feedback.outcome"  # label: accepted / rejected / edited
SIGNAL = "guardline.signal"  # label: one of SIGNAL_VALUES
ESTIMATED = "guardline.usage.estimated"  # label: "true" / "false"
SAMPLE_REASON = "guardline.sample.reason"  # label: flagged / baseline / feedback
SINK = "guardline.sink"  # label: jsonl / kafka / a plug-in sink's name
DROP_REASON = "guardline.drop.reason"  # label: queue_full / spool_full / error
EVALUATION = "guardline.reeval.evaluation"  # label: the job's evaluation (toxicity, ...)
JOB_STATE = "guardline.reeval.state"  # label: done / failed
EVALUATOR = "guardline.reeval.evaluator"  # label: online, toxicity, judge, ...
SET = "guardline.reeval.set"  # label: window / baseline
# The GenAI evaluation event (semantic conventions, Development status).
EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
RESPONSE_ID = "gen_ai.response.id"
REQUEST_ID = "guardline.request_id"  # span attribute only, never a label
CLIENT_REQUEST_ID = "guardline.client_request_id"  # the client's x-request-id; span only
FINDINGS_COUNT = "guardline.findings.count"
FINDINGS_CATEGORIES = "guardline.findings.categories"
ACTIONS_TAKEN = "guardline.actions"
COST_USD = "guardline.cost.usd"
OVERHEAD_SECONDS = "guardline.overhead.seconds"
REGENERATED = "guardline.regenerated"

TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"
OTHER = "other"
"""What a label value becomes once its label has reached its cap of distinct values."""
UNKNOWN = "unknown"
SIGNAL_VALUES = ("regenerated", "truncated", "refusal", "empty")
FEEDBACK_OUTCOMES = ("accepted", "rejected", "edited")
