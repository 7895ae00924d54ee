"""A Guardline whose telemetry lands in in-memory exporters, and ways to read it back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guardline.exporters.names import Instrument
from guardline.exporters.telemetry import OTelTelemetry
from guardline.settings import Settings
from tests.servers import Running, proxy


@dataclass
class Observed:
    gw: Running[Any]
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    telemetry: OTelTelemetry

    @property
    def url(self) -> str:
        return self.gw.url

    def points(self, spec: Instrument) -> list[Any]:
        """Every data point of one instrument, now."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == spec.name:
                        out += list(metric.data.data_points)
        return out

    def total(self, spec: Instrument, **attributes: Any) -> float:
        """Sum (counters) or count (histograms) over points whose attributes match."""
        total = 0.0
        for point in self.points(spec):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += point.count if hasattr(point, "bucket_counts") else point.value
        return total

    def hist_sum(self, spec: Instrument, **attributes: Any) -> float:
        return sum(
            point.sum
            for point in self.points(spec)
            if all(point.attributes.get(k) == v for k, v in attributes.items())
        )

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())


@contextmanager
def observed(settings: Settings, **kwargs: Any) -> Iterator[Observed]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    telemetry = OTelTelemetry(settings.telemetry, metric_readers=[reader], span_exporters=[spans])
    with proxy(settings, telemetry=telemetry, **kwargs) as gw:
        yield Observed(gw, reader, spans, telemetry)
