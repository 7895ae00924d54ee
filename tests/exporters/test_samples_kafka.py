"""Samples from the running proxy onto a real Kafka-protocol broker (Tansu): consumed back
with the right key, headers and payload; a broker outage under traffic loses no sample,
keeps order per key, and leaves the proxy's latency where it was."""

from __future__ import annotations

import secrets
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from guardline.cli import main
from guardline.simulator import Simulator
from tests.broker import Tansu
from tests.conftest import openai_client
from tests.exporters.test_canary import _card
from tests.servers import Running, context_of, proxy, proxy_settings, simulator
from tests.test_cli import GUARDLINE

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("quiet_kafka")]

TOPIC = "guardline.samples"
MODEL = "gpt-4o-mini"


@pytest.fixture
def echo_sim() -> Iterator[Running[Simulator]]:
    with simulator(scenario="echo") as sim:
        yield sim


def _gateway(sim: Running[Simulator], broker: Tansu, data: Path) -> Any:
    kafka = {
        "bootstrap_servers": [broker.bootstrap],
        "topic": TOPIC,
        "spool_directory": str(data / "spool"),
        "send_timeout": 2.0,
        "retry_backoff_max": 0.5,
    }
    samples = {"jsonl": {"directory": str(data / "samples")}, "baseline_rate": 0.0, "kafka": kafka}
    return proxy(proxy_settings(sim.url, samples=samples))


class _Traffic:
    """Flagged calls (a card number in the prompt) from a thread, each timed."""

    def __init__(self, url: str, conversations: int = 4) -> None:
        self.url = url
        self.client = openai_client(url)
        self.feedback: list[str] = []
        self.card = _card()
        self.conversations = conversations
        self.sent: list[tuple[str, str]] = []  # (conversation, request id) in order
        self.latencies: list[tuple[str, float]] = []  # (phase, seconds)
        self.phase = "normal"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.sent) >= count

    def _run(self) -> None:
        while not self._stop.is_set():
            conversation = f"c{len(self.sent) % self.conversations}"
            prompt = f"[{conversation}] charge card {self.card} for order {len(self.sent)}"
            started = time.perf_counter()
            raw = self.client.chat.completions.with_raw_response.create(
                model=MODEL,
                messages=[{"role": "user", "content": prompt}],
                extra_headers={"x-request-id": f"{conversation}-{secrets.token_hex(6)}"},
            )
            self.latencies.append((self.phase, time.perf_counter() - started))
            token = raw.headers["x-guardline-request-id"]
            self.sent.append((conversation, token.split("~")[0]))
            if len(self.sent) % 10 == 0:  # a second record under the same key
                feedback = {"request_id": token, "outcome": "rejected", "score": 0.0}
                httpx.post(self.url + "/v1/feedback", json=feedback).raise_for_status()
                self.feedback.append(token.split("~")[0])
            time.sleep(0.005)


def test_samples_arrive_with_key_headers_and_payload(
    echo_sim: Running[Simulator], tansu: Tansu, tmp_path: Path
) -> None:
    tansu.create_topic(TOPIC)
    with _gateway(echo_sim, tansu, tmp_path) as gw:
        with _Traffic(gw.url) as traffic:
            traffic.wait_for(30)
        sink = context_of(gw).samples.sinks[-1]
        assert sink.flush(20)
    messages = tansu.consume_all(TOPIC, len(traffic.sent) + len(traffic.feedback))
    by_id = {m.key.decode(): m for m in messages}
    assert set(by_id) == {rid for _, rid in traffic.sent}
    kinds = [(m.key.decode(), dict(m.headers)["guardline-kind"]) for m in messages]
    assert sorted(k for k in kinds if k[1] == b"feedback") == sorted(
        (rid, b"feedback") for rid in traffic.feedback
    )
    for message in messages:
        record = orjson.loads(message.value)
        headers = dict(message.headers)
        assert record["request_id"] == message.key.decode()
        assert headers["guardline-schema"] == b"1"
        assert headers["guardline-kind"] == record["kind"].encode()
        if record["kind"] == "feedback":
            assert record["feedback"]["outcome"] == "rejected"
            continue
        assert record["selected"] == "flagged"
        assert traffic.card not in message.value.decode()  # redacted before any sink
        assert "<CREDIT_CARD>" in record["prompt"]
        if record["trace_id"]:
            assert headers["traceparent"].decode().split("-")[1] == record["trace_id"]
    # The JSON Lines dataset holds the same records (no duplicates without an outage).
    lines = b"".join(p.read_bytes() for p in (tmp_path / "samples").glob("*.jsonl"))
    in_files = sorted(
        (orjson.loads(x)["request_id"], orjson.loads(x)["kind"]) for x in lines.splitlines()
    )
    assert in_files == sorted((rid, kind.decode()) for rid, kind in kinds)


def test_an_outage_loses_no_sample_and_does_not_slow_the_proxy(
    echo_sim: Running[Simulator], tansu: Tansu, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tansu.create_topic(TOPIC)
    with _gateway(echo_sim, tansu, tmp_path) as gw:
        sink = context_of(gw).samples.sinks[-1]
        with _Traffic(gw.url) as traffic:
            traffic.wait_for(60)
            assert sink.flush(20)
            before_outage = len(traffic.sent)
            traffic.phase = "outage"
            tansu.stop()
            traffic.wait_for(before_outage + 150)
            assert not sink.health()["connected"]
            assert sink.health()["spool_bytes"] > 0
            tansu.start()  # a fresh, empty broker on the same address
            tansu.create_topic(TOPIC)
            traffic.phase = "after"
            traffic.wait_for(len(traffic.sent) + 60)
        assert sink.flush(30)
        stats = context_of(gw).samples.stats()
    assert stats.kafka is not None
    assert stats.kafka.spooled > 0
    assert stats.kafka.replayed >= stats.kafka.spooled
    assert not stats.dropped
    # The old broker's memory died with it: every sample from the outage on must be here.
    expected = traffic.sent[before_outage:]
    messages = tansu.consume_all(TOPIC, len(expected))
    kinds = {(m.key.decode(), orjson.loads(m.value)["kind"]) for m in messages}
    assert {(rid, "exchange") for _, rid in expected} <= kinds
    late = {rid for _, rid in expected}
    assert {(rid, "feedback") for rid in traffic.feedback if rid in late} <= kinds
    # In order: per partition (so per key) records come as submitted; a failed batch
    # may repeat a run, never reorder it. Feedback follows its exchange.
    position = {rid: i for i, (_, rid) in enumerate(traffic.sent)}
    partitions: dict[int, list[tuple[str, str]]] = {}
    for m in messages:
        partitions.setdefault(m.partition, []).append(
            (m.key.decode(), orjson.loads(m.value)["kind"])
        )
    for keyed in partitions.values():
        firsts = list(dict.fromkeys(keyed))
        exchanges = [position[rid] for rid, kind in firsts if kind == "exchange"]
        assert exchanges == sorted(exchanges)
        for rid, kind in firsts:
            if kind == "feedback" and (rid, "exchange") in firsts:
                assert firsts.index((rid, "exchange")) < firsts.index((rid, "feedback"))
    normal = [s for phase, s in traffic.latencies if phase == "normal"]
    outage = [s for phase, s in traffic.latencies if phase == "outage"]
    report = {
        name: {
            "n": len(xs),
            "p50_ms": round(statistics.median(xs) * 1000, 2),
            "p95_ms": round(statistics.quantiles(xs, n=20)[-1] * 1000, 2),
            "max_ms": round(max(xs) * 1000, 2),
        }
        for name, xs in (("normal", normal), ("outage", outage))
    }
    with capsys.disabled():
        print(f"\nproxy latency, broker up vs down: {report}")
    # Within the normal range: a request that waited on the broker would take the
    # send timeout (2 s); the spread allowed here is machine noise, two orders below.
    assert report["outage"]["p50_ms"] <= 2 * report["normal"]["p50_ms"] + 5
    assert report["outage"]["p95_ms"] <= 3 * report["normal"]["p95_ms"] + 20


def test_replicas_make_one_dataset_through_the_topic(
    echo_sim: Running[Simulator], tansu: Tansu, tmp_path: Path
) -> None:
    """Two proxies (replicas) produce; ``guardline datasets consume`` materialises the
    topic into one dataset; ``datasets export`` turns it into an FMEval file."""
    tansu.create_topic(TOPIC)
    sent: list[str] = []
    for replica in ("a", "b"):
        with _gateway(echo_sim, tansu, tmp_path / replica) as gw:
            with _Traffic(gw.url) as traffic:
                traffic.wait_for(15)
            assert context_of(gw).samples.sinks[-1].flush(20)
            sent += [rid for _, rid in traffic.sent]
    dataset, out = tmp_path / "dataset", tmp_path / "flagged.jsonl"
    consumed = subprocess.run(
        [
            *(GUARDLINE, "datasets", "consume", "--bootstrap-servers", tansu.bootstrap),
            *("--topic", TOPIC, "--out", str(dataset), "--max-idle", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert consumed.returncode == 0, consumed.stderr
    assert (
        main(["datasets", "export", "--format", "fmeval", "--dir", str(dataset), "--out", str(out)])
        == 0
    )
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(row["request_id"] for row in rows) == sorted(sent)
    assert all("<CREDIT_CARD>" in row["model_input"] for row in rows)
    assert all(row["category"] == "CREDIT_CARD" for row in rows)
