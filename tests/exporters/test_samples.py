"""Sample selection, the record's shape, and redaction before anything leaves."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
import pytest

from guardline.detectors.base import FakeDetector, Finding
from guardline.detectors.guardrails import Guardrails
from guardline.exchange import Endpoint, Exchange, Usage
from guardline.exporters import samples as samples_module
from guardline.exporters.content import WITHHELD, redact
from guardline.exporters.samples import SCHEMA_VERSION, Samples, Selector, sample_record
from guardline.exporters.sink import InMemorySink
from guardline.proxy.feedback import Feedback
from guardline.settings import SamplesSettings, load_settings
from tests.servers import default_detectors


def _exchange(
    findings: list[Finding] | None = None, endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS
) -> Exchange:
    now = time.perf_counter()
    exchange = Exchange(
        request_id="rid-1",
        provider="openai",
        endpoint=endpoint,
        method="POST",
        path="/v1/chat/completions",
        received=now - 0.25,
        model="gpt-4o-mini",
        app="support-bot",
        upstream="openai",
        done=now,
        status=200,
    )
    exchange.findings = findings or []
    return exchange


FLAG = Finding("pii", "EMAIL_ADDRESS", 0.9, 0, 5, "response")


def test_flagged_exchanges_are_always_selected() -> None:
    selector = Selector(SamplesSettings(baseline_rate=0.0))
    assert selector.reason(_exchange([FLAG])) == "flagged"
    assert selector.reason(_exchange()) is None


def test_the_baseline_is_a_random_share_of_the_rest() -> None:
    selector = Selector(SamplesSettings(baseline_rate=0.25), random.Random(7))
    picked = sum(selector.reason(_exchange()) == "baseline" for _ in range(4000))
    assert 880 <= picked <= 1120  # 1000 expected; ±12% is over 4 standard deviations


def test_route_overrides_and_the_off_switch() -> None:
    settings = SamplesSettings(
        baseline_rate=1.0,
        routes={"embeddings": {"enabled": False}, "messages": {"baseline_rate": 0.0}},
    )
    selector = Selector(settings)
    assert selector.reason(_exchange([FLAG], Endpoint.EMBEDDINGS)) is None
    assert selector.reason(_exchange(endpoint=Endpoint.MESSAGES)) is None
    assert selector.reason(_exchange([FLAG], Endpoint.MESSAGES)) == "flagged"
    assert selector.reason(_exchange()) == "baseline"
    assert Selector(SamplesSettings(enabled=False)).reason(_exchange([FLAG])) is None


def test_a_record_has_the_documented_fields() -> None:
    exchange = _exchange(
        [FLAG, Finding("stereotype", "gender_occupation", 1.0, 0, 3, "response", "nurse:she")]
    )
    exchange.reply.usage = Usage(input_tokens=12, output_tokens=30, cached_input_tokens=4)
    exchange.reply.finish_reason = "stop"
    exchange.act("redact")
    record = sample_record(
        exchange, reason="flagged", prompt="<EMAIL_ADDRESS> asks", response="ok", cost_usd=0.00002
    )
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["request_id"] == "rid-1"
    assert record["route"] == "chat.completions"
    assert record["application"] == "support-bot"
    assert record["findings"][1] == {
        "detector": "stereotype",
        "category": "gender_occupation",
        "direction": "response",
        "score": 1.0,
        "detail": "nurse:she",
    }
    assert record["usage"]["cached_input_tokens"] == 4
    assert record["actions"] == {"redact": 1}
    assert record["latency_ms"] >= 250
    assert record["time"].endswith("Z")
    assert orjson.loads(orjson.dumps(record)) == record  # JSON-ready as it is


def test_redaction_replaces_pii_and_rescans() -> None:
    guardrails = Guardrails(load_settings(), default_detectors())
    text = "Card 4111 1111 1111 1111, mail dana.w@example.org, thanks."
    out = asyncio.run(redact(guardrails, text, "request"))
    assert "4111" not in out
    assert "dana.w@example.org" not in out
    assert "<CREDIT_CARD>" in out
    assert "<EMAIL_ADDRESS>" in out
    assert asyncio.run(redact(guardrails, "Nothing personal here.", "response")) == (
        "Nothing personal here."
    )


def test_text_is_withheld_when_it_cannot_be_checked() -> None:
    settings = load_settings()
    no_pii = Guardrails(settings, {"fake": FakeDetector()})
    assert asyncio.run(redact(no_pii, "mail bob@example.org", "request")) == WITHHELD
    broken = Guardrails(settings, {"pii": FakeDetector(name="pii", error=RuntimeError("down"))})
    assert asyncio.run(redact(broken, "mail bob@example.org", "request")) == WITHHELD


def _named(request_id: str) -> Exchange:
    exchange = _exchange()
    exchange.request_id = request_id
    return exchange


def _samples(memory: int) -> tuple[Samples, InMemorySink]:
    settings = SamplesSettings(
        baseline_rate=0.0, feedback_memory=memory, export_raw_text_including_pii=True
    )
    sink = InMemorySink()
    guardrails = Guardrails(load_settings(), {})
    return Samples(settings, guardrails, sinks=[sink]), sink


def _rejected() -> Feedback:
    return Feedback(outcome="rejected", score=None, retained_fraction=None, comment=None)


def test_rejections_join_only_what_is_still_remembered() -> None:
    samples, sink = _samples(memory=3)
    ids = [f"r{i}" for i in range(5)]
    for rid in ids:
        asyncio.run(samples.exchange(_named(rid), ["hello " + rid], ["hi"]))
    assert sink.records == []  # nothing flagged, no baseline
    for rid in ids:
        asyncio.run(samples.feedback(rid, _rejected()))
    exchanges = [r["request_id"] for r in sink.records if r["kind"] == "exchange"]
    feedback = [r["request_id"] for r in sink.records if r["kind"] == "feedback"]
    assert exchanges == ids[2:]  # the two oldest were forgotten
    assert feedback == ids  # still written: a reader may have the exchange from elsewhere
    assert samples.unjoined == 2


def test_remembered_text_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(samples_module, "_MEMORY_CHARS", 100)
    samples, sink = _samples(memory=100)
    for i in range(10):
        asyncio.run(samples.exchange(_named(f"r{i}"), ["x" * 20], ["y" * 10]))
    assert samples._chars <= 100
    asyncio.run(samples.feedback("r0", _rejected()))  # its text went to make room
    asyncio.run(samples.feedback("r9", _rejected()))
    assert [r["request_id"] for r in sink.records if r["kind"] == "exchange"] == ["r9"]
