"""What leaves Guardline for monitoring systems: the Prometheus page and OTLP pushes."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from guardline.exporters import names as n
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.servers import Running, context_of, proxy, proxy_settings, running

MESSAGES = [{"role": "user", "content": "Summarise the quarterly report."}]


class Collector:
    """An OTLP/HTTP receiver on loopback: keeps every protobuf body by path."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if dict(scope["headers"]).get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        self.bodies.setdefault(scope["path"], []).append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def metric_names(self) -> set[str]:
        names = set()
        for body in self.bodies.get("/v1/metrics", []):
            request = ExportMetricsServiceRequest.FromString(body)
            for resource in request.resource_metrics:
                for scope in resource.scope_metrics:
                    names |= {metric.name for metric in scope.metrics}
        return names

    def spans(self) -> list[Any]:
        out = []
        for body in self.bodies.get("/v1/traces", []):
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    out += list(scope.spans)
        return out


@pytest.fixture
def collector() -> Iterator[Running[Collector]]:
    with running(Collector()) as server:
        yield server


def _traffic(url: str) -> None:
    """Normal, streamed, flagged, failed and Anthropic calls."""
    client = openai_client(url)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-scenario": "pii"}
    )
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)
    client.embeddings.create(model="text-embedding-3-small", input="hello")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-fault": "500"}
        )
    claude = anthropic_client(url)
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=MESSAGES
    ) as stream:
        stream.until_done()


def _feedback(url: str, rid: str, outcome: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/feedback", json={"request_id": rid, "outcome": outcome, **extra})


def test_metrics_page_has_the_documented_names(gw: Running[Any]) -> None:
    _traffic(gw.url)
    raw = openai_client(gw.url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    rid = raw.headers["x-guardline-request-id"]
    assert _feedback(gw.url, rid, "edited", retained_fraction=0.5, score=0.8).status_code == 202
    response = httpx.get(gw.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {s.name for f in families.values() for s in f.samples}
    expected = {
        n.OPERATION_DURATION,
        n.TOKEN_USAGE,
        n.TIME_TO_FIRST_CHUNK,
        n.TIME_PER_OUTPUT_CHUNK,
        n.REQUESTS,
        n.OVERHEAD,
        n.ACTIVE_STREAMS,
        n.FINDINGS,
        n.COST,
        n.FEEDBACK,
        n.RETAINED,
        n.SCORE,
        n.SIGNALS,
        n.RECORDING_CPU,
        n.DETECTOR_BACKEND,
    }
    for spec in expected:
        missing = set(spec.samples) - samples
        assert not missing, f"{spec.name}: {missing} not on /metrics"
    # The documented label names appear as Prometheus labels.
    requests = families[n.REQUESTS.prometheus]
    labels = set().union(*(s.labels for s in requests.samples))
    assert {"gen_ai_request_model", "gen_ai_provider_name", "guardline_outcome"} <= labels
    assert {"error_type"} <= labels
    assert "target_info" in families
    backends = {
        s.labels["guardline_detector"]: s.labels["guardline_detector_backend"]
        for s in families[n.DETECTOR_BACKEND.prometheus].samples
    }
    health = httpx.get(gw.url + "/healthz").json()["detectors"]
    assert backends == {name: d["backend"] for name, d in health.items()}
    assert backends["toxicity"].startswith("linear")


def test_metrics_can_be_switched_off(sim: Running[Simulator]) -> None:
    with proxy(proxy_settings(sim.url, telemetry={"prometheus": False})) as gw:
        assert httpx.get(gw.url + "/metrics").status_code == 404
    with proxy(proxy_settings(sim.url, telemetry={"enabled": False})) as gw:
        openai_client(gw.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert httpx.get(gw.url + "/metrics").status_code == 404
        assert httpx.get(gw.url + "/healthz").json()["telemetry"] == {"enabled": False}


def test_otlp_export_reaches_a_receiver(
    sim: Running[Simulator], collector: Running[Collector]
) -> None:
    settings = proxy_settings(
        sim.url, telemetry={"otlp_endpoint": collector.url, "otlp_interval": 0.2}
    )
    with proxy(settings) as gw:
        health = httpx.get(gw.url + "/healthz").json()["telemetry"]
        assert health["traces"] is True
        assert any(e.startswith("otlp") for e in health["exporters"])
        _traffic(gw.url)
        names = eventually(collector.app.metric_names)
        assert {n.OPERATION_DURATION.name, n.REQUESTS.name, n.TOKEN_USAGE.name} <= names
        tracers = context_of(gw).telemetry.pipeline.tracers  # type: ignore[attr-defined]
        spans = eventually(lambda: tracers.force_flush() and collector.app.spans())
        assert "chat gpt-4o-mini" in {span.name for span in spans}


def test_otlp_endpoint_from_the_standard_environment(
    sim: Running[Simulator], collector: Running[Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
    with proxy(proxy_settings(sim.url)) as gw:
        openai_client(gw.url).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        telemetry: Any = context_of(gw).telemetry
        # Recorded just after the client has its answer; then flush both signals.
        assert eventually(lambda: n.REQUESTS.name in telemetry.pipeline.meters.collect().to_json())
        telemetry.shutdown()
        assert n.REQUESTS.name in collector.app.metric_names()
        assert collector.app.spans()
