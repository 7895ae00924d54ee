"""A job's results as telemetry.

- ``ResultMetrics``: the receiver's ``/metrics`` (it sees every job end, local or through
  Kafka): jobs by state, duration, and the last evaluation's rates and sample counts, so
  the dashboards show the last evaluation.
- ``EvaluationEvents``: one ``gen_ai.evaluation.result`` event per window sample and
  evaluator, emitted by whoever ran the job, parented to the exchange's own span (the
  trace and span ids its sample record kept) and carrying ``gen_ai.response.id``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from guardline.exporters import names as n
from guardline.exporters.meters import Labels
from guardline.exporters.multiprocess import exposition
from guardline.exporters.pipeline import build_pipeline, otlp_endpoint
from guardline.reeval.jobs import FINAL, Job
from guardline.settings import TelemetrySettings

log = logging.getLogger("guardline.reeval")


class ResultMetrics:
    def __init__(self, settings: TelemetrySettings) -> None:
        self.pipeline = build_pipeline(settings.model_copy(update={"prometheus": True}))
        meters = self.pipeline.meters
        self._jobs = meters.counter(n.REEVAL_JOBS)
        self._duration = meters.histogram(n.REEVAL_DURATION)
        self._lock = threading.Lock()
        self._rates: dict[str, dict[Labels, float]] = {}
        self._samples: dict[str, dict[Labels, float]] = {}
        self._last: dict[Labels, float] = {}
        self._seen: set[str] = set()
        meters.gauge(n.REEVAL_RATE, lambda: self._flat(self._rates))
        meters.gauge(n.REEVAL_SAMPLES, lambda: self._flat(self._samples))
        meters.gauge(n.REEVAL_LAST, lambda: dict(self._last))

    def _flat(self, by_evaluation: Mapping[str, dict[Labels, float]]) -> dict[Labels, float]:
        with self._lock:
            return {k: v for values in by_evaluation.values() for k, v in values.items()}

    def record(self, job: Job) -> None:
        """Count a job that ended (once, however often its end is reported)."""
        if job.state not in FINAL or job.id in self._seen:
            return
        self._seen.add(job.id)
        evaluation: Labels = ((n.EVALUATION, job.evaluation),)
        self._jobs.add(1, (*evaluation, (n.JOB_STATE, job.state)))
        if job.state != "done" or job.summary is None:
            return
        try:
            summary = orjson.loads(Path(job.summary).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            log.warning("job %s: no summary to export (%s)", job.id, exc)
            return
        duration = summary["job"].get("duration_seconds")
        if isinstance(duration, (int, float)):
            self._duration.record(float(duration), evaluation)
        rates: dict[Labels, float] = {}
        for row in summary["rates"]:
            for side in ("window", "baseline"):
                rate = row[side]["rate"]
                if isinstance(rate, (int, float)) and not math.isnan(rate):
                    labels = (
                        *evaluation,
                        (n.EVALUATOR, row["evaluator"]),
                        (n.CATEGORY, row["category"]),
                        (n.SET, side),
                    )
                    rates[labels] = float(rate)
        counts = summary["counts"]
        samples: dict[Labels, float] = {
            (*evaluation, (n.SET, side)): float(counts[side]) for side in ("window", "baseline")
        }
        finished = datetime.fromisoformat(job.finished).timestamp() if job.finished else 0.0
        with self._lock:  # the last evaluation of this kind replaces the one before
            self._rates[job.evaluation] = rates
            self._samples[job.evaluation] = samples
            self._last[evaluation] = finished

    def scrape(self) -> bytes:
        assert self.pipeline.registry is not None  # prometheus is forced on above
        return exposition(self.pipeline.registry)[0]

    def shutdown(self) -> None:
        self.pipeline.shutdown()


class EvaluationEvents:
    """``gen_ai.evaluation.result`` log events through OTLP (``telemetry.otlp_endpoint``)
    or the given exporters; without either, nothing is built and ``emit`` does nothing."""

    def __init__(
        self, settings: TelemetrySettings, exporters: Sequence[LogRecordExporter] = ()
    ) -> None:
        self.provider: LoggerProvider | None = None
        endpoint = otlp_endpoint(settings)
        chosen = list(exporters)
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
                OTLPLogExporter,
            )

            chosen.append(
                OTLPLogExporter(endpoint=None if endpoint == "env" else f"{endpoint}/v1/logs")
            )
        if not chosen:
            return
        self.provider = LoggerProvider()
        for exporter in chosen:
            self.provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        self._logger = self.provider.get_logger(n.INSTRUMENTATION_SCOPE, schema_url=n.SCHEMA_URL)

    def emit(
        self, evaluation: str, results: Sequence[tuple[Mapping[str, Any], str, dict[str, float]]]
    ) -> int:
        """One event per (sample record, evaluator name, {category: score}); the number sent."""
        if self.provider is None:
            return 0
        from opentelemetry._logs import LogRecord  # noqa: PLC0415

        sent = 0
        for record, evaluator, scores in results:
            flagged = bool(scores)
            attributes: dict[str, Any] = {
                n.EVALUATION_NAME: f"guardline.{evaluator}",
                n.EVALUATION_SCORE: max(scores.values(), default=0.0),
                n.EVALUATION_LABEL: "flagged" if flagged else "pass",
                n.RESPONSE_ID: str(record.get("request_id", "")),
                n.EVALUATION: evaluation,
            }
            if flagged:
                attributes[n.EVALUATION_EXPLANATION] = ", ".join(sorted(scores))
            self._logger.emit(
                LogRecord(
                    event_name=n.EVALUATION_EVENT, context=_parent(record), attributes=attributes
                )
            )
            sent += 1
        return sent

    def flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush()

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def _parent(record: Mapping[str, Any]) -> Context | None:
    """The exchange's span, as its sample record names it, for the event to hang under."""
    try:
        trace_id, span_id = int(str(record["trace_id"]), 16), int(str(record["span_id"]), 16)
    except (KeyError, ValueError, TypeError):
        return None
    span = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return trace.set_span_in_context(NonRecordingSpan(span))
