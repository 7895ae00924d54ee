"""Samples from the running proxy: what is selected, what a record holds, redaction
before any sink (canaries), rejected feedback joined, and the samples metrics."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from guardline.exporters import names as n
from guardline.exporters.content import WITHHELD
from guardline.exporters.datasets import read_dataset
from guardline.exporters.jsonl import files
from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.exporters.test_canary import _card
from tests.servers import Running, context_of, proxy, proxy_settings, simulator

MODEL = "gpt-4o-mini"


@pytest.fixture
def echo_sim() -> Iterator[Running[Simulator]]:
    with simulator(scenario="echo") as sim:
        yield sim


def _gateway(sim: Running[Simulator], directory: Path, **samples: Any) -> Any:
    settings = proxy_settings(
        sim.url, samples={"jsonl": {"directory": str(directory)}, "baseline_rate": 0.0, **samples}
    )
    return proxy(settings)


def _records(directory: Path) -> list[dict[str, Any]]:
    lines = [line for path in files(directory) for line in path.read_bytes().splitlines()]
    return [orjson.loads(line) for line in lines]


def _flush(gw: Running[Any]) -> None:
    for sink in context_of(gw).samples.sinks:
        assert sink.flush(5)


def _settled(gw: Running[Any], directory: Path, count: int) -> list[dict[str, Any]]:
    """The records once ``count`` are written (the sample is made just after the client
    has its answer)."""

    def ready() -> list[dict[str, Any]] | None:
        _flush(gw)
        records = _records(directory)
        return records if len(records) >= count else None

    return eventually(ready) or _records(directory)


def test_flagged_exchanges_become_redacted_records(
    echo_sim: Running[Simulator], tmp_path: Path
) -> None:
    card, email = _card(), f"canary.{secrets.token_hex(4)}@example.org"
    prompt = f"My card is {card} and my email is {email}; please confirm the order."
    with _gateway(echo_sim, tmp_path) as gw:
        client = openai_client(gw.url)
        messages = [{"role": "user", "content": prompt}]
        client.chat.completions.create(model=MODEL, messages=messages)
        list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
        anthropic_client(gw.url).messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=messages
        )
        client.chat.completions.create(  # nothing to flag, baseline 0: no record
            model=MODEL, messages=[{"role": "user", "content": "What is the capital of Peru?"}]
        )
        records = _settled(gw, tmp_path, 3)
    raw = b"".join(path.read_bytes() for path in files(tmp_path))
    assert card.encode() not in raw
    assert email.encode() not in raw
    assert len(records) == 3
    chat, stream, messages_call = records
    for record in records:
        assert record["schema_version"] == 1
        assert record["kind"] == "exchange"
        assert record["selected"] == "flagged"
        assert "<CREDIT_CARD>" in record["prompt"]
        assert "<EMAIL_ADDRESS>" in record["prompt"]
        assert "confirm the order" in record["prompt"]
        assert "confirm the order" in record["response"]  # the echo, redacted too
        assert {f["category"] for f in record["findings"]} >= {"CREDIT_CARD", "EMAIL_ADDRESS"}
        assert record["usage"]["input_tokens"] > 0
        assert record["usage"]["output_tokens"] > 0
        assert record["cost_usd"] is not None
        assert record["cost_usd"] > 0
        assert record["latency_ms"] > 0
        assert record["finish_reason"]
        assert record["time"].endswith("Z")
        assert record["feedback"] is None
    assert chat["route"] == "chat.completions"
    assert chat["provider"] == "openai"
    assert stream["stream"] is True
    assert stream["time_to_first_chunk_ms"] is not None
    assert messages_call["route"] == "messages"
    assert messages_call["provider"] == "anthropic"
    assert len({r["request_id"] for r in records}) == 3


def test_a_blocked_prompt_is_a_sample_too(echo_sim: Running[Simulator], tmp_path: Path) -> None:
    card = _card()
    settings = proxy_settings(
        echo_sim.url,
        samples={"jsonl": {"directory": str(tmp_path)}, "baseline_rate": 0.0},
        policy={"request": {"pii": {"mode": "guard", "action": "block"}}},
    )
    with proxy(settings) as gw:
        response = httpx.post(
            gw.url + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": f"card {card}"}]},
        )
        assert response.status_code == 400
        (record,) = _settled(gw, tmp_path, 1)
    assert record["outcome"] == "blocked"
    assert card not in record["prompt"]
    assert record["prompt"].startswith("card ")
    assert record["actions"].get("block") == 1


def test_baseline_route_overrides_and_the_off_switch(
    echo_sim: Running[Simulator], tmp_path: Path
) -> None:
    plain = [{"role": "user", "content": "What is the capital of Peru?"}]
    with _gateway(echo_sim, tmp_path / "all", baseline_rate=1.0) as gw:
        openai_client(gw.url).chat.completions.create(model=MODEL, messages=plain)
        (record,) = _settled(gw, tmp_path / "all", 1)
        assert record["selected"] == "baseline"
        assert record["findings"] == []
        assert record["prompt"] == "What is the capital of Peru?"
    off = {"chat.completions": {"enabled": False}}
    with _gateway(echo_sim, tmp_path / "route", baseline_rate=1.0, routes=off) as gw:
        client = openai_client(gw.url)
        client.chat.completions.create(model=MODEL, messages=plain)
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
        records = _settled(gw, tmp_path / "route", 1)
        assert [r["route"] for r in records] == ["completions"]
    card = _card()
    with _gateway(echo_sim, tmp_path / "off", enabled=False) as gw:
        openai_client(gw.url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"card {card}"}]
        )
        assert not context_of(gw).samples.active
        assert not (tmp_path / "off").exists() or not files(tmp_path / "off")


def test_rejected_feedback_makes_a_sample_of_an_unselected_exchange(
    echo_sim: Running[Simulator], tmp_path: Path
) -> None:
    plain = [{"role": "user", "content": "Summarise the meeting notes."}]
    with _gateway(echo_sim, tmp_path) as gw:
        client = openai_client(gw.url)
        ids = []
        for _ in range(3):
            raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=plain)
            ids.append(raw.headers["x-guardline-request-id"])
        email = f"reviewer.{secrets.token_hex(4)}@example.org"
        posts = [
            {"request_id": ids[0], "outcome": "rejected", "comment": f"wrong, mail {email}"},
            {"request_id": ids[1], "outcome": "accepted", "score": 1.0},
            {
                "request_id": ids[2],
                "outcome": "rejected",
                "correction": "The meeting agreed on the budget.",
            },
        ]
        for post in posts:
            assert httpx.post(gw.url + "/v1/feedback", json=post).status_code == 202
        records = _settled(gw, tmp_path, 4)
    raw = b"".join(path.read_bytes() for path in files(tmp_path))
    assert email.encode() not in raw
    exchanges = [r for r in records if r["kind"] == "exchange"]
    feedback = [r for r in records if r["kind"] == "feedback"]
    assert len(exchanges) == 2
    assert len(feedback) == 2
    assert all(r["selected"] == "feedback" for r in exchanges)
    assert {r["request_id"] for r in exchanges} == {r["request_id"] for r in feedback}
    assert exchanges[0]["prompt"] == "Summarise the meeting notes."
    first, third = feedback
    assert first["feedback"]["outcome"] == "rejected"
    assert "wrong, mail" in first["feedback"]["comment"]
    assert third["feedback"]["correction"] == "The meeting agreed on the budget."


def test_ids_stay_unique_when_clients_share_one_and_the_later_feedback_wins(
    echo_sim: Running[Simulator], tmp_path: Path
) -> None:
    flagged = [{"role": "user", "content": "Mail the invoice to dana.w@example.com, please."}]
    plain = [{"role": "user", "content": "Summarise the meeting notes."}]
    shared = {"x-request-id": "shared-9"}
    with _gateway(echo_sim, tmp_path) as gw:
        client = openai_client(gw.url)
        tokens = [
            client.chat.completions.with_raw_response.create(
                model=MODEL, messages=messages, extra_headers=shared
            ).headers["x-guardline-request-id"]
            for messages in (flagged, flagged, plain)
        ]
        posts = [  # the user changes their mind on the first and on the third
            (tokens[0], "rejected"),
            (tokens[0], "accepted"),
            (tokens[2], "accepted"),  # unselected and accepted: no record
            (tokens[2], "rejected"),  # now a sample after all
        ]
        for token, outcome in posts:
            post = {"request_id": token, "outcome": outcome}
            assert httpx.post(gw.url + "/v1/feedback", json=post).status_code == 202
        records = _settled(gw, tmp_path, 6)
    ids = [token.split("~")[0] for token in tokens]
    assert len(set(ids)) == 3
    exchanges = {r["request_id"]: r for r in records if r["kind"] == "exchange"}
    assert set(exchanges) == set(ids)
    assert {r["client_request_id"] for r in exchanges.values()} == {"shared-9"}
    posted = [r for r in records if r["kind"] == "feedback"]
    assert [(r["request_id"], r["feedback"]["outcome"]) for r in posted] == [
        (ids[0], "rejected"),
        (ids[0], "accepted"),
        (ids[2], "rejected"),
    ]
    joined = {s.record["request_id"]: s.record for s in read_dataset(tmp_path)[0]}
    assert joined[ids[0]]["feedback"]["outcome"] == "accepted"  # the later post wins
    assert joined[ids[1]]["feedback"] is None  # the other call with the same client id
    assert joined[ids[2]]["feedback"]["outcome"] == "rejected"
    assert joined[ids[2]]["selected"] == "feedback"


def test_without_a_pii_detector_text_is_withheld(
    echo_sim: Running[Simulator], tmp_path: Path
) -> None:
    settings = proxy_settings(
        echo_sim.url,
        samples={"jsonl": {"directory": str(tmp_path)}, "baseline_rate": 1.0},
        detectors={"pii": {"enabled": False}},
    )
    with proxy(settings) as gw:
        openai_client(gw.url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
        )
        (record,) = _settled(gw, tmp_path, 1)
    assert record["prompt"] == WITHHELD
    assert record["response"] == WITHHELD


def test_raw_export_is_explicit_and_loud(
    echo_sim: Running[Simulator], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    card = _card()
    with _gateway(echo_sim, tmp_path, export_raw_text_including_pii=True) as gw:
        openai_client(gw.url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"card {card}"}]
        )
        (record,) = _settled(gw, tmp_path, 1)
        health = httpx.get(gw.url + "/healthz").json()
    assert card in record["prompt"]
    assert "WITHOUT PII redaction" in caplog.text
    assert health["samples"]["redaction"].startswith("off")


def test_samples_metrics_and_health(echo_sim: Running[Simulator], tmp_path: Path) -> None:
    card = _card()
    with _gateway(echo_sim, tmp_path) as gw:
        openai_client(gw.url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"card {card}"}]
        )
        _settled(gw, tmp_path, 1)
        page = httpx.get(gw.url + "/metrics").text
        health = httpx.get(gw.url + "/healthz").json()
    selected = n.SAMPLES_SELECTED.prometheus + "_total"
    written = n.SAMPLES_WRITTEN.prometheus + "_total"
    dropped = n.SAMPLES_DROPPED.prometheus + "_total"
    assert f'{selected}{{guardline_sample_reason="flagged"}} 1.0' in page
    assert f'{written}{{guardline_sink="jsonl"}} 1.0' in page
    assert f'{dropped}{{guardline_drop_reason="none",guardline_sink="jsonl"}} 0.0' in page
    assert health["samples"]["selected"]["flagged"] == 1
    assert health["samples"]["sinks"]["jsonl"]["written"] == 1
