"""The OpenTelemetry pipeline: metric readers fed by Guardline's meters, the tracer
provider, and their exporters.

Metrics always feed a Prometheus reader (its own ``CollectorRegistry``, served on
``/metrics``); OTLP/HTTP push is added when an endpoint is configured, in settings or in
the standard ``OTEL_EXPORTER_OTLP_*`` environment. Spans are only made when something
receives them (OTLP, or exporters handed in by tests): a span nobody exports would be
CPU for nothing, and the client's ``traceparent`` then passes through untouched.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry

from guardline import __version__
from guardline.exporters.meters import Meters
from guardline.exporters.names import INSTRUMENTATION_SCOPE, SCHEMA_URL
from guardline.settings import TelemetrySettings

log = logging.getLogger("guardline.telemetry")

_OTLP_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


@dataclass
class Pipeline:
    meters: Meters
    readers: list[MetricReader]
    tracers: TracerProvider | None
    registry: CollectorRegistry | None
    """Where the Prometheus reader puts this process's metrics (None: /metrics off)."""
    exporters: list[str] = field(default_factory=list)

    def shutdown(self) -> None:
        # Flushes OTLP: the last interval's metrics and queued spans are pushed, not lost.
        closers: list[Any] = [self.tracers, *self.readers]
        for closer in closers:
            if closer is not None:
                try:
                    closer.shutdown()
                except Exception:
                    log.exception("telemetry shutdown failed")
        self.readers = []
        self.tracers = None


def otlp_endpoint(settings: TelemetrySettings) -> str | None:
    """The OTLP base URL from settings, or "env" when the OTEL_* environment names one."""
    if settings.otlp_endpoint:
        return settings.otlp_endpoint.rstrip("/")
    if any(os.environ.get(name) for name in _OTLP_ENV):
        return "env"
    return None


def build_pipeline(
    settings: TelemetrySettings,
    *,
    metric_readers: Sequence[MetricReader] = (),
    span_exporters: Sequence[SpanExporter] = (),
) -> Pipeline:
    resource = Resource.create(
        {
            "service.name": settings.service_name,
            "service.version": __version__,
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        },
        schema_url=SCHEMA_URL,
    )
    exporters: list[str] = []
    readers: list[MetricReader] = list(metric_readers)
    registry = None
    if settings.prometheus:
        registry = CollectorRegistry(auto_describe=True)
        # Scope labels would add three constant labels to every series; target_info
        # carries the resource once.
        readers.append(PrometheusMetricReader(registry=registry, scope_info_enabled=False))
        exporters.append("prometheus")
    endpoint = otlp_endpoint(settings)
    span_processors: list[Any] = [SimpleSpanProcessor(e) for e in span_exporters]
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        # With no endpoint argument the exporters read the OTEL_* environment themselves.
        metrics_at = None if endpoint == "env" else f"{endpoint}/v1/metrics"
        traces_at = None if endpoint == "env" else f"{endpoint}/v1/traces"
        readers.append(
            PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=metrics_at),
                export_interval_millis=settings.otlp_interval * 1000,
            )
        )
        span_processors.append(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_at)))
        exporters.append(f"otlp ({'OTEL_* environment' if endpoint == 'env' else endpoint})")
    meters = Meters(resource, InstrumentationScope(INSTRUMENTATION_SCOPE, __version__, SCHEMA_URL))
    for reader in readers:
        meters.attach(reader)
    tracers = None
    if span_processors:
        tracers = TracerProvider(resource=resource)
        for processor in span_processors:
            tracers.add_span_processor(processor)
    return Pipeline(meters, readers, tracers, registry, exporters)
