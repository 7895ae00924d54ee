"""Spans and metrics from real calls through the SDKs, read back from in-memory exporters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from guardline.exporters import names as n
from guardline.exporters.cost import PriceTable
from guardline.exporters.models import normalise_model
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.exporters.telemetry_kit import Observed, observed
from tests.servers import Running, proxy_settings

MESSAGES = [{"role": "user", "content": "Tell me about the weather in Lisbon."}]


@pytest.fixture
def obs(sim: Running[Simulator]) -> Iterator[Observed]:
    with observed(proxy_settings(sim.url)) as o:
        yield o


def _one_span(obs: Observed) -> Any:
    spans = eventually(obs.finished)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def test_non_streaming_chat_span_and_metrics(obs: Observed) -> None:
    client = openai_client(obs.url)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = _one_span(obs)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind is SpanKind.CLIENT
    attrs = span.attributes
    assert attrs[n.OPERATION_NAME] == "chat"
    assert attrs[n.PROVIDER_NAME] == "openai"
    assert attrs[n.REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[n.RESPONSE_MODEL] == completion.model
    assert attrs[n.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[n.RESPONSE_FINISH_REASONS] == ("stop",)
    assert completion.usage is not None
    assert attrs[n.USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens
    assert attrs[n.USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens
    assert attrs[n.ESTIMATED] is False
    assert n.ERROR_TYPE not in attrs
    assert n.INPUT_MESSAGES not in attrs  # content is off by default
    assert span.status.status_code is StatusCode.UNSET

    labels = {n.REQUEST_MODEL: "gpt-4o-mini", n.ROUTE: "chat.completions"}
    assert obs.total(n.OPERATION_DURATION, **labels, **{n.OPERATION_NAME: "chat"}) == 1
    assert obs.total(n.REQUESTS, **labels, **{n.OUTCOME: "ok"}) == 1
    assert obs.hist_sum(n.TOKEN_USAGE, **{n.TOKEN_TYPE: "input"}) == (
        completion.usage.prompt_tokens
    )
    assert obs.hist_sum(n.TOKEN_USAGE, **{n.TOKEN_TYPE: "output"}) == (
        completion.usage.completion_tokens
    )
    price = PriceTable.load().lookup("gpt-4o-mini")
    assert price is not None
    expected = (
        completion.usage.prompt_tokens * price.input
        + completion.usage.completion_tokens * price.output
    ) / 1e6
    assert obs.total(n.COST, **labels) == pytest.approx(expected)
    assert attrs[n.COST_USD] == pytest.approx(expected)
    assert obs.total(n.OVERHEAD) == 1
    assert obs.points(n.TIME_TO_FIRST_CHUNK) == []  # not a stream
    for point in obs.points(n.REQUESTS):  # no ids, ever, in labels
        assert all(not str(v).startswith("chatcmpl") for v in point.attributes.values())


def test_streaming_chat_span_and_metrics(obs: Observed) -> None:
    client = openai_client(obs.url)
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3
    span = _one_span(obs)
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes[n.STREAM] is True
    assert span.attributes[n.USAGE_OUTPUT_TOKENS] > 0
    assert span.attributes[n.ESTIMATED] is False  # asked upstream for usage, so exact
    stream = {n.STREAM: "true", n.OPERATION_NAME: "chat"}
    assert obs.total(n.TIME_TO_FIRST_CHUNK, **stream) == 1
    # One gap per output chunk after the first.
    assert obs.total(n.TIME_PER_OUTPUT_CHUNK, **stream) == len(content_chunks) - 1
    assert obs.total(n.OPERATION_DURATION, **stream) == 1
    assert eventually(lambda: obs.points(n.ACTIVE_STREAMS))
    assert sum(p.value for p in obs.points(n.ACTIVE_STREAMS)) == 0  # opened and closed


def test_stream_of_a_client_that_did_not_ask_has_no_usage_chunk(obs: Observed) -> None:
    with openai_client(obs.url) as client:
        chunks = list(
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        )
        assert all(c.usage is None for c in chunks)
        assert all(c.choices for c in chunks)  # the usage-only chunk has none
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        body = b"".join(raw.http_response.iter_bytes())
    assert b'"usage"' not in body


def test_stream_of_a_client_that_asked_gets_usage_unchanged(
    sim: Running[Simulator], obs: Observed
) -> None:
    client = openai_client(obs.url)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert not chunks[-1].choices
    (record,) = [r for r in sim.app.recorder.records if r.path == "/v1/chat/completions"]
    assert record.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_same_conversation_streamed_or_not_costs_the_same(obs: Observed, api: str) -> None:
    if api == "openai":
        client = openai_client(obs.url)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        model = "gpt-4o"
    else:
        claude = anthropic_client(obs.url)
        model = "claude-haiku-4-5"
        claude.messages.create(model=model, max_tokens=200, messages=MESSAGES)
        with claude.messages.stream(model=model, max_tokens=200, messages=MESSAGES) as stream:
            stream.until_done()
    assert eventually(lambda: obs.total(n.REQUESTS) == 2)

    def per_stream(kind: str, streamed: str) -> float:
        return obs.hist_sum(n.TOKEN_USAGE, **{n.TOKEN_TYPE: kind, n.STREAM: streamed})

    assert per_stream("input", "true") == per_stream("input", "false") > 0
    assert per_stream("output", "true") == per_stream("output", "false") > 0
    cost_streamed = obs.total(n.COST, **{n.STREAM: "true"})
    cost_plain = obs.total(n.COST, **{n.STREAM: "false"})
    assert cost_streamed == pytest.approx(cost_plain)
    assert cost_plain > 0
    assert obs.total(n.ESTIMATED_TOKENS) == 0
    assert obs.total(n.UNPRICED) == 0
    assert {p.attributes[n.REQUEST_MODEL] for p in obs.points(n.COST)} == {normalise_model(model)}


def test_upstream_500_carries_error_type(obs: Observed) -> None:
    client = openai_client(obs.url)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-fault": "500"}
        )
    span = _one_span(obs)
    assert span.attributes[n.ERROR_TYPE] == "500"
    assert span.status.status_code is StatusCode.ERROR
    assert obs.total(n.REQUESTS, **{n.ERROR_TYPE: "500", n.OUTCOME: "upstream_error"}) == 1
    assert obs.total(n.OPERATION_DURATION, **{n.ERROR_TYPE: "500"}) == 1
    assert obs.total(n.TOKEN_USAGE) == 0  # nothing was answered, nothing estimated


def test_upstream_timeout_carries_error_type(sim: Running[Simulator]) -> None:
    settings = proxy_settings(sim.url, upstream={"timeout": {"read": 0.3}})
    with observed(settings) as obs:
        client = openai_client(obs.url)
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-fault": "hang"}
            )
        assert failed.value.status_code == 504
        span = _one_span(obs)
        assert span.attributes[n.ERROR_TYPE] == "upstream_timeout"
        assert obs.total(n.REQUESTS, **{n.ERROR_TYPE: "upstream_timeout"}) == 1
        assert obs.total(n.OPERATION_DURATION, **{n.ERROR_TYPE: "upstream_timeout"}) == 1


def test_traceparent_is_continued_and_propagated(sim: Running[Simulator], obs: Observed) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    client = openai_client(obs.url)
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"traceparent": f"00-{trace_id}-{parent}-01", "x-request-id": "tp-1"},
    )
    span = _one_span(obs)
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == parent
    (record,) = [r for r in sim.app.recorder.records if r.headers.get("x-request-id") == "tp-1"]
    sent = record.headers["traceparent"]
    assert sent == f"00-{trace_id}-{format(span.context.span_id, '016x')}-01"


def test_the_span_carries_the_client_request_id_beside_guardline_s(
    sim: Running[Simulator], obs: Observed
) -> None:
    client = openai_client(obs.url)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-request-id": "corr-7"}
    )
    span = _one_span(obs)
    assert span.attributes[n.CLIENT_REQUEST_ID] == "corr-7"
    signed = raw.headers["x-guardline-request-id"]
    assert span.attributes[n.REQUEST_ID] == signed.split("~")[0] != "corr-7"
    obs.spans.clear()
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert n.CLIENT_REQUEST_ID not in _one_span(obs).attributes


def test_without_span_exporters_the_client_traceparent_passes_through(
    sim: Running[Simulator], gw: Running[Any]
) -> None:
    value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    openai_client(gw.url).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"traceparent": value, "x-request-id": "tp-2"},
    )
    (record,) = [r for r in sim.app.recorder.records if r.headers.get("x-request-id") == "tp-2"]
    assert record.headers["traceparent"] == value


def test_content_recorded_only_when_enabled_and_redacted(sim: Running[Simulator]) -> None:
    settings = proxy_settings(sim.url, telemetry={"record_content": True})
    with observed(settings) as obs:
        openai_client(obs.url).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Write to dana.w@example.org please"}],
            extra_headers={"x-sim-scenario": "echo"},
        )
        span = _one_span(obs)
        recorded = span.attributes[n.INPUT_MESSAGES] + span.attributes[n.OUTPUT_MESSAGES]
        assert "dana.w@example.org" not in recorded
        assert "<EMAIL_ADDRESS>" in span.attributes[n.INPUT_MESSAGES]
        assert "Write to" in span.attributes[n.INPUT_MESSAGES]


def test_findings_and_actions_are_counted_by_category_never_content(
    sim: Running[Simulator],
) -> None:
    settings = proxy_settings(
        sim.url, policy={"response": {"pii": {"mode": "guard", "action": "redact"}}}
    )
    with observed(settings) as obs:
        openai_client(obs.url).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"x-sim-scenario": "pii"}
        )
        span = _one_span(obs)
        categories = span.attributes[n.FINDINGS_CATEGORIES]
        assert "response.pii.EMAIL_ADDRESS" in categories
        found = {
            (p.attributes[n.DETECTOR], p.attributes[n.CATEGORY], p.attributes[n.ACTION])
            for p in obs.points(n.FINDINGS)
        }
        assert ("pii", "EMAIL_ADDRESS", "redact") in found
        assert obs.total(n.ACTIONS, **{n.ACTION: "redact"}) >= 1


def test_model_labels_are_capped(sim: Running[Simulator]) -> None:
    settings = proxy_settings(sim.url, telemetry={"label_caps": {"model": 2}})
    with observed(settings) as obs:
        client = openai_client(obs.url)
        for i in range(6):
            client.chat.completions.create(model=f"made-up-{i}", messages=MESSAGES)
        assert eventually(lambda: obs.total(n.REQUESTS) == 6)
        models = {p.attributes[n.REQUEST_MODEL] for p in obs.points(n.REQUESTS)}
        assert models == {"made-up-0", "made-up-1", n.OTHER}
        assert obs.total(n.UNPRICED) == 6  # unknown models are unpriced, not free


def test_dated_model_names_are_normalised(obs: Observed) -> None:
    openai_client(obs.url).chat.completions.create(
        model="gpt-4o-mini-2024-07-18", messages=MESSAGES
    )
    assert eventually(lambda: obs.total(n.REQUESTS) == 1)
    assert obs.total(n.REQUESTS, **{n.REQUEST_MODEL: "gpt-4o-mini"}) == 1
    assert obs.total(n.UNPRICED) == 0


def test_estimate_only_when_the_upstream_reports_nothing(
    sim: Running[Simulator], obs: Observed
) -> None:
    # A stream the proxy was told not to ask usage for: the upstream reports none.
    settings = proxy_settings(sim.url, telemetry={"inject_stream_usage": False})
    with observed(settings) as quiet:
        list(
            openai_client(quiet.url).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        )
        span = _one_span(quiet)
        assert span.attributes[n.ESTIMATED] is True
        assert span.attributes[n.USAGE_OUTPUT_TOKENS] > 0
        assert quiet.total(n.ESTIMATED_TOKENS) == 1
        assert quiet.total(n.TOKEN_USAGE, **{n.ESTIMATED: "true"}) == 2


def test_truncation_signal(obs: Observed) -> None:
    openai_client(obs.url).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=3
    )
    assert eventually(lambda: obs.total(n.SIGNALS, **{n.SIGNAL: "truncated"}) == 1)
    assert obs.total(n.SIGNALS, **{n.SIGNAL: "empty"}) == 0


def test_guarded_stream_of_a_client_that_did_not_ask_has_no_usage(
    sim: Running[Simulator],
) -> None:
    """Guard mode re-renders the events it redacts: they too come out without usage."""
    settings = proxy_settings(
        sim.url, policy={"response": {"pii": {"mode": "guard", "action": "redact"}}}
    )
    with observed(settings) as obs:
        with openai_client(obs.url) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=MESSAGES,
                stream=True,
                extra_headers={"x-sim-scenario": "pii"},
            )
            body = b"".join(raw.http_response.iter_bytes())
        assert b"<EMAIL_ADDRESS>" in body  # redacted, so events were re-rendered
        assert b'"usage"' not in body
        span = _one_span(obs)
        assert span.attributes[n.ESTIMATED] is False
        assert span.attributes[n.USAGE_OUTPUT_TOKENS] > 0
