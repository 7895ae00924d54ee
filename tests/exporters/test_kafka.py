"""The Kafka sink against a real Kafka-protocol broker (Tansu): key, headers, payload;
a broker outage loses nothing and keeps order; a full spool says so; a stop spools."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from guardline.exporters.kafka import KafkaSink, producer_config
from guardline.settings import KafkaSettings
from tests.broker import Tansu

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("quiet_kafka")]

TOPIC = "guardline.samples"


def _settings(broker: Tansu, **overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": (broker.bootstrap,),
        "topic": TOPIC,
        "send_timeout": 2.0,
        "retry_backoff_max": 0.5,
        **overrides,
    }
    return KafkaSettings(**values)


def _record(i: int, request: str | None = None, kind: str = "exchange") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": kind,
        "request_id": request or f"req-{i}",
        "trace_id": f"{i:032x}",
        "span_id": f"{i + 1:016x}",
        "time": "2026-11-21T10:00:00.000Z",
        "seq": i,
    }


def test_records_arrive_with_key_headers_and_payload(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC)
    sink = KafkaSink(_settings(tansu), tmp_path / "spool")
    try:
        for i in range(50):
            assert sink.submit(_record(i))
        assert sink.flush(15)
        assert sink.sent == 50
        assert sink.health()["connected"] is True
    finally:
        sink.close()
    messages = tansu.consume_all(TOPIC, 50)
    assert len(messages) == 50
    by_key = {m.key.decode(): m for m in messages}
    assert set(by_key) == {f"req-{i}" for i in range(50)}
    seven = by_key["req-7"]
    assert orjson.loads(seven.value) == _record(7)
    headers = dict(seven.headers)
    assert headers["guardline-schema"] == b"1"
    assert headers["guardline-kind"] == b"exchange"
    assert headers["traceparent"] == f"00-{7:032x}-{8:016x}-01".encode()
    assert sink.spool.unsent_bytes == 0


def test_an_outage_loses_nothing_and_keeps_order(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC)
    sink = KafkaSink(_settings(tansu), tmp_path / "spool")
    keys = [f"conv-{k}" for k in range(5)]
    submitted: list[dict[str, Any]] = []

    def submit(n: int) -> None:
        for _ in range(n):
            i = len(submitted)
            record = _record(i, keys[i % len(keys)])
            submitted.append(record)
            took = time.perf_counter()
            assert sink.submit(record)
            assert time.perf_counter() - took < 0.05  # never waits for the broker
            time.sleep(0.002)

    try:
        submit(100)
        assert sink.flush(15)
        tansu.stop()
        submit(300)  # the broker is gone
        deadline = time.monotonic() + 10
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not sink.connected
        assert sink.spool.unsent_bytes > 0
        health = sink.health()
        assert health["spool_bytes"] > 0
        assert health["last_error"]
        tansu.start()  # a fresh, empty broker
        tansu.create_topic(TOPIC)
        submit(100)
        assert sink.flush(30)
    finally:
        sink.close()
    assert sink.spooled > 0
    assert sink.replayed >= sink.spooled
    assert sum(sink.dropped.values()) == 0
    # The fresh broker only has what was sent after the outage began.
    lost_with_old_broker = 100
    messages = tansu.consume_all(TOPIC, len(submitted) - lost_with_old_broker)
    seqs = [orjson.loads(m.value)["seq"] for m in messages]
    assert set(seqs) == set(range(lost_with_old_broker, len(submitted)))
    for key in keys:  # per key, in the order submitted (duplicates only repeat a run)
        ordered = [orjson.loads(m.value)["seq"] for m in messages if m.key.decode() == key]
        firsts = list(dict.fromkeys(ordered))
        assert firsts == sorted(firsts)


def test_a_full_spool_drops_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # No broker at all: nothing leaves the spool.
    settings = KafkaSettings(
        bootstrap_servers=("127.0.0.1:1",), spool_max_bytes=2000, send_timeout=0.5
    )
    sink = KafkaSink(settings, tmp_path / "spool")
    try:
        for i in range(40):
            sink.submit(_record(i))
        sink.flush(0.5)
        health = sink.health()
    finally:
        sink.close()
    assert sink.dropped["spool_full"] > 0
    assert health["spool_full"] is True
    assert sink.written + sink.dropped["spool_full"] == 40
    assert "DROPPED" in caplog.text


def test_what_is_unsent_at_stop_goes_out_on_the_next_start(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC)
    tansu.stop()
    first = KafkaSink(_settings(tansu), tmp_path / "spool")
    for i in range(30):
        first.submit(_record(i))
    first.close(timeout=0.5)
    assert first.sent == 0
    assert first.spool.unsent_bytes > 0

    tansu.start()
    tansu.create_topic(TOPIC)
    second = KafkaSink(_settings(tansu), tmp_path / "spool")
    try:
        assert second.flush(20)
        assert second.replayed == 30
    finally:
        second.close()
    messages = tansu.consume_all(TOPIC, 30)
    assert sorted({orjson.loads(m.value)["seq"] for m in messages}) == list(range(30))


def test_no_thread_is_left_behind(tansu: Tansu, tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    tansu.create_topic(TOPIC)
    sink = KafkaSink(_settings(tansu), tmp_path / "spool")
    sink.submit(_record(1))
    assert sink.flush(10)
    tansu.stop()
    sink.submit(_record(2))
    time.sleep(0.5)
    sink.close(timeout=0.5)
    time.sleep(0.2)
    left = {t.name for t in threading.enumerate()} - before
    assert not left, left


@pytest.mark.parametrize("send_timeout", [0.1, 0.5, 1.0, 2.0, 5.0, 30.0])
def test_the_producer_accepts_its_configuration(send_timeout: float) -> None:
    # kafka-python checks its timeouts against each other when constructed; a refused
    # configuration would retry forever as if the broker were down.
    config = producer_config(
        KafkaSettings(bootstrap_servers=("127.0.0.1:1",), send_timeout=send_timeout)
    )
    producer = KafkaProducer(**config, api_version=(3, 9))  # no broker contact
    producer.close(timeout=0.1)


def test_close_delivers_what_was_queued(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC)
    sink = KafkaSink(_settings(tansu), tmp_path / "spool")
    for i in range(300):
        sink.submit(_record(i))
    sink.close()  # no flush first: close itself spools the queue and waits for the broker
    assert sink.sent == 300
    assert sink.spool.unsent_bytes == 0
    assert len({m.key for m in tansu.consume_all(TOPIC, 300)}) == 300
