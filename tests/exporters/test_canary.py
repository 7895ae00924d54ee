"""Canaries: a unique card number and API key go through a real ``guardline serve`` process
on every kind of path; neither may appear in its logs, its spans or its metrics."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator

import httpx
import openai
import pytest

from guardline.simulator import Simulator
from tests.conftest import anthropic_client, eventually, openai_client
from tests.exporters.test_export import Collector
from tests.servers import Running, running, simulator
from tests.test_cli import _free_port, _process, _wait_ok


def _card() -> str:
    """A fresh Visa-shaped number with a valid Luhn check digit."""
    body = "4" + "".join(secrets.choice("0123456789") for _ in range(14))
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


@pytest.fixture
def echo_sim() -> Iterator[Running[Simulator]]:
    with simulator(scenario="echo") as sim:
        yield sim


def test_card_and_key_never_leave_in_logs_spans_or_metrics(
    echo_sim: Running[Simulator],
) -> None:
    card = _card()
    key = "sk-canary-" + secrets.token_hex(16)
    prompt = f"Charge my card {card} for the order, thanks."
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (
        running(Collector()) as collector,
        _process(
            "serve",
            "--port",
            str(port),
            "--upstream",
            echo_sim.url,
            "--log-level",
            "debug",
            GUARDLINE_TELEMETRY__RECORD_CONTENT="true",
            GUARDLINE_TELEMETRY__OTLP_ENDPOINT=collector.url,
            GUARDLINE_TELEMETRY__OTLP_INTERVAL="0.3",
        ) as proc,
    ):
        _wait_ok(url + "/readyz", proc, timeout=60)
        messages = [{"role": "user", "content": prompt}]
        client = openai_client(url, api_key=key)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages
        )
        assert card in raw.parse().choices[0].message.content  # monitor mode: traffic as is
        list(client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True))
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, extra_headers={"x-sim-fault": "500"}
            )
        with pytest.raises(openai.APIError):  # a stream cut short: an error event
            list(
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=messages,
                    extra_headers={"x-sim-fault": "truncate"},
                    stream=True,
                )
            )
        claude = anthropic_client(url, api_key=key)
        claude.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=messages)
        # Malformed JSON that quotes the canaries; a feedback comment carrying them.
        bad = httpx.post(
            url + "/v1/chat/completions",
            content=f'{{"model": "gpt-4o-mini", "messages": "{card} {key}"',
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        )
        assert bad.status_code == 400
        rid = raw.headers["x-guardline-request-id"]
        feedback = httpx.post(
            url + "/v1/feedback",
            json={"request_id": rid, "outcome": "edited", "comment": f"{card} {key}"},
            headers={"authorization": f"Bearer {key}"},
        )
        assert feedback.status_code == 202
        metrics = httpx.get(url + "/metrics").text
        assert eventually(lambda: collector.app.bodies.get("/v1/metrics"), timeout=10)
        proc.send_signal(signal.SIGTERM)  # flushes queued spans and the last metrics
        _, logs = proc.communicate(timeout=30)
        assert proc.returncode == 0, logs

    exported = b"".join(b for bodies in collector.app.bodies.values() for b in bodies)
    spans = collector.app.spans()
    # The checks below mean something only if each channel carried this traffic.
    assert len(spans) >= 5
    assert b"<CREDIT_CARD>" in exported  # content was recorded, redacted
    assert "gen_ai_client_operation_duration_seconds" in metrics
    assert '"request_id"' in logs  # debug logs with request ids were written
    for channel, text in (("logs", logs), ("metrics", metrics)):
        assert card not in text, channel
        assert key not in text, channel
    assert card.encode() not in exported
    assert key.encode() not in exported
