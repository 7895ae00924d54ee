"""The dataset consumer against a real Kafka-protocol broker (Tansu): records land in the
JSON Lines dataset in order; a group splits the partitions; a stop, or a crash, resumes
from the committed offsets; messages that are not sample records are kept apart; a broker
that goes away and comes back (empty) is waited out."""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer
from kafka.errors import KafkaTimeoutError

from guardline.errors import ConfigError
from guardline.exporters import jsonl
from guardline.exporters.consumer import (
    REJECTED_DIRECTORY,
    ConsumeStats,
    DatasetConsumer,
    default_prefix,
    source_from_settings,
    validate,
)
from guardline.exporters.samples import feedback_record
from guardline.settings import load_settings
from tests.broker import Tansu
from tests.conftest import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("quiet_kafka")]

TOPIC = "guardline.samples"
GROUP = "datasets"
# Tansu answers a JoinGroup after about session_timeout / 2 (1 s at least).
FAST: dict[str, Any] = {
    "group": GROUP,
    "session_timeout": 2.0,
    "heartbeat_interval": 0.5,
    "request_timeout": 2.0,
    "poll_timeout": 0.2,
    "retry_backoff_max": 0.5,
}
TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield

    def leaked() -> list[str]:
        return [
            t.name
            for t in threading.enumerate()
            if t.ident not in before and ("kafka" in t.name or "guardline" in t.name)
        ]

    eventually(lambda: not leaked(), timeout=5.0)
    assert not leaked()


# producing --------------------------------------------------------------------------------


def exchange(request_id: str, seq: int) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "kind": "exchange",
        "request_id": request_id,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "time": "2026-11-21T10:00:00.000Z",
        "selected": "flagged",
        "route": "chat",
        "prompt": f"prompt {seq} é ✓",
        "response": "response",
        "findings": [{"detector": "pii", "category": "EMAIL", "direction": "input", "score": 0.9}],
        "cost_usd": 0.0012,
        "seq": seq,
    }


def feedback(request_id: str, seq: int) -> dict[str, Any]:
    record = feedback_record(
        request_id, outcome="edited", score=0.5, retained_fraction=None, comment=f"#{seq}"
    )
    record["seq"] = seq
    return record


def records(n: int, keys: int = 10, tag: str = "") -> list[dict[str, Any]]:
    """``n`` records over ``keys`` request ids, exchanges and feedback interleaved; ``seq``
    grows in production order."""
    return [(exchange if i % 3 == 0 else feedback)(f"req{tag}-{i % keys}", i) for i in range(n)]


def message(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": str(record["request_id"]).encode(),
        "value": orjson.dumps(record),
        "headers": [
            ("guardline-schema", str(record["schema_version"]).encode()),
            ("guardline-kind", str(record["kind"]).encode()),
            ("traceparent", TRACEPARENT),
        ],
    }


def produce(broker: Tansu, messages: Sequence[Mapping[str, Any]]) -> None:
    """Send and wait for every acknowledgement (idempotent, acks=all)."""
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_block_ms=2000,
        request_timeout_ms=1000,
        delivery_timeout_ms=3000,
        reconnect_backoff_max_ms=500,
    )
    try:
        futures = [producer.send(TOPIC, **m) for m in messages]
        for future in futures:
            future.get(timeout=5)
    finally:
        try:
            producer.close(timeout=5)
        except KafkaTimeoutError:  # records pending for a broker that is gone
            producer._sender.force_close()
            producer._sender.join(5)
            producer.close(timeout=0)


def produce_records(broker: Tansu, batch: Sequence[dict[str, Any]]) -> None:
    produce(broker, [message(r) for r in batch])


# reading the dataset -------------------------------------------------------------------


def dataset(out: Path, prefix: str | None = None) -> list[dict[str, Any]]:
    """The records of every writer's files (or of one), in file order. A line still being
    written (no newline yet) is not a record."""
    return [
        orjson.loads(line)
        for path in jsonl.files(out, prefix)
        for line in path.read_bytes().split(b"\n")[:-1]
    ]


def rejected(out: Path) -> list[dict[str, Any]]:
    directory = out / REJECTED_DIRECTORY
    return dataset(directory) if directory.exists() else []


def assert_order_per_key(lines: Sequence[dict[str, Any]]) -> None:
    """Within one writer's files, each request id's records come in production order."""
    last: dict[str, int] = {}
    for record in lines:
        key = record["request_id"]
        assert record["seq"] > last.get(key, -1), f"{key} out of order"
        last[key] = record["seq"]


def ident(record: Mapping[str, Any]) -> tuple[str, str, int]:
    return (record["request_id"], record["kind"], record["seq"])


class Run:
    """A ``DatasetConsumer`` run on a thread; ``stats`` is live, ``result()`` joins."""

    def __init__(self, broker: Tansu, out: Path, *, prefix: str, **options: Any) -> None:
        self.stop = threading.Event()
        self.consumer = DatasetConsumer(broker.bootstrap, TOPIC, out, prefix=prefix, **FAST)
        self.stats: ConsumeStats = self.consumer.stats
        self.error: BaseException | None = None
        self._options = options
        self._thread = threading.Thread(target=self._run, name=f"test-{prefix}")
        self._thread.start()

    def _run(self) -> None:
        try:
            self.consumer.run(stop=self.stop, **self._options)
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float = 20.0) -> ConsumeStats:
        self.stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "consumer did not stop"
        if self.error is not None:
            raise self.error
        return self.stats


@pytest.fixture
def broker(tansu: Tansu) -> Tansu:
    tansu.create_topic(TOPIC, partitions=3)
    return tansu


# (a) materialised -------------------------------------------------------------------------


def test_records_land_in_the_dataset_in_order_per_key(broker: Tansu, tmp_path: Path) -> None:
    batch = records(90)
    produce_records(broker, batch)
    out = tmp_path / "datasets"

    started = time.monotonic()
    stats = DatasetConsumer(broker.bootstrap, TOPIC, out, prefix="c1", **FAST).run(max_idle=2.5)
    assert time.monotonic() - started < 15

    lines = dataset(out)
    assert sorted(map(ident, lines)) == sorted(map(ident, batch))
    by_seq = {r["seq"]: r for r in batch}
    for line in lines:  # the records as produced, byte for byte after a JSON round trip
        assert line == by_seq[line["seq"]]
    assert_order_per_key(lines)
    assert [p.name.split("-")[0] for p in jsonl.files(out)] == ["c1"]
    assert not (out / REJECTED_DIRECTORY).exists()
    assert stats.prefix == "c1"
    assert (stats.consumed, stats.written, stats.rejected, stats.uncommitted) == (90, 90, 0, 0)
    assert stats.outages == 0
    assert sum(stats.committed.values()) == 90  # next offsets: one partition's count each
    assert stats.committed == {p: o + 1 for p, o in stats.last_offsets.items()}
    assert stats.assigned == frozenset()  # left the group


# (b) a group splits the work --------------------------------------------------------------


def test_two_consumers_in_a_group_split_the_partitions(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC, partitions=4)
    out = tmp_path / "datasets"
    first, second = Run(tansu, out, prefix="one"), Run(tansu, out, prefix="two")
    try:

        def settled() -> bool:
            a, b = first.stats.assigned, second.stats.assigned
            return bool(a and b and not a & b and a | b == {0, 1, 2, 3})

        assert eventually(settled, timeout=15), (first.stats, second.stats)
        batch = records(200, keys=25)
        produce_records(tansu, batch)
        assert eventually(lambda: first.stats.written + second.stats.written >= 200, 15)
    finally:
        one, two = first.result(), second.result()

    assert one.written
    assert two.written
    assert not one.last_offsets.keys() & two.last_offsets.keys()
    lines = dataset(out)
    assert sorted(map(ident, lines)) == sorted(map(ident, batch))  # each exactly once
    for prefix in ("one", "two"):
        assert_order_per_key(dataset(out, prefix))
    assert one.written + two.written == 200
    assert one.uncommitted == two.uncommitted == 0


# (c) stop / crash, then resume ----------------------------------------------------------


class StopsAfter(DatasetConsumer):
    """Sets ``stop`` once ``count`` records are written: a stop mid-stream."""

    def __init__(self, *args: Any, count: int, stop: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count = count
        self._stop = stop

    def _write(self, batch: Mapping[Any, Sequence[Any]]) -> None:
        super()._write(batch)
        if self.stats.written >= self._count:
            self._stop.set()


def test_a_stop_mid_stream_resumes_from_the_committed_offsets(
    broker: Tansu, tmp_path: Path
) -> None:
    batch = records(300)
    produce_records(broker, batch)
    out = tmp_path / "datasets"
    stop = threading.Event()
    options = {**FAST, "max_poll_records": 10}

    first = StopsAfter(
        broker.bootstrap, TOPIC, out, prefix="first", count=100, stop=stop, **options
    ).run(stop=stop)
    assert 100 <= first.written < 300
    assert first.uncommitted == 0  # a graceful stop commits all it wrote
    assert sum(first.committed.values()) == first.written

    second = DatasetConsumer(broker.bootstrap, TOPIC, out, prefix="second", **options).run(
        max_idle=2.5
    )
    assert second.consumed == 300 - first.written  # from the committed offsets on
    lines = dataset(out)
    assert sorted(map(ident, lines)) == sorted(map(ident, batch))
    assert_order_per_key(dataset(out, "first") + dataset(out, "second"))


CRASHING = """
import logging, sys
from pathlib import Path
logging.getLogger("kafka").setLevel(logging.CRITICAL)
from guardline.exporters.consumer import DatasetConsumer
DatasetConsumer(sys.argv[1], sys.argv[2], Path(sys.argv[3]), prefix="crashed",
                group=sys.argv[4], session_timeout=2.0, heartbeat_interval=0.5,
                request_timeout=2.0, poll_timeout=0.2, max_poll_records=10).run()
"""


def test_a_crash_loses_nothing_and_repeats_at_most_the_uncommitted_tail(
    broker: Tansu, tmp_path: Path
) -> None:
    batch = records(400)
    produce_records(broker, batch)
    out = tmp_path / "datasets"
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING, broker.bootstrap, TOPIC, str(out), GROUP],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert eventually(lambda: len(dataset(out)) >= 100 or proc.poll() is not None, 20)
        proc.send_signal(signal.SIGKILL)  # between batches or in the middle of one
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    crashed = len(dataset(out, "crashed"))
    assert 100 <= crashed < 400

    # The dead member holds its partitions until its session times out (2 s). Every
    # partition ends in a record of its own, so once all are there it has read it all.
    run = Run(broker, out, prefix="resumed")
    try:
        wanted = set(map(ident, batch))
        assert eventually(lambda: wanted <= set(map(ident, dataset(out))), 20)
    finally:
        resumed = run.result()
    lines = dataset(out)
    counts = Counter(map(ident, lines))
    assert set(counts) == set(map(ident, batch))  # nothing lost
    duplicates = sum(n - 1 for n in counts.values())
    # Written, fsynced, not yet committed at the kill: at most one poll (10 records).
    assert duplicates <= 10, duplicates
    assert resumed.written == 400 - crashed + duplicates
    assert_order_per_key(dataset(out, "resumed"))


# (d) messages that are not sample records ---------------------------------------------


def test_invalid_messages_go_to_the_rejected_file_and_valid_ones_flow(
    broker: Tansu, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = records(6)
    mismatched = message(good[1]) | {"key": b"someone-else"}
    bad = [
        {"key": b"req-x", "value": b"{not json"},
        {"key": b"req-y", "value": b"\xff\xfe\x00binary"},
        message(exchange("req-v2", 100) | {"schema_version": 2}),
        mismatched,
        {"key": b"req-z", "value": b"[1, 2]"},
        message(exchange("req-m", 101) | {"kind": "mystery"}),
    ]
    # Every message on one key's partition would not test much: mix them in order.
    stream = [message(good[0]), *bad[:3], message(good[1]), *bad[3:], *map(message, good[2:])]
    produce(broker, stream)
    out = tmp_path / "datasets"

    with caplog.at_level(logging.WARNING, logger="guardline.samples"):
        stats = DatasetConsumer(broker.bootstrap, TOPIC, out, prefix="v", **FAST).run(max_idle=2.5)

    assert sorted(map(ident, dataset(out))) == sorted(map(ident, good))
    assert (stats.consumed, stats.written, stats.rejected) == (12, 6, 6)
    kept = rejected(out)
    assert [p.name.split("-")[:2] for p in jsonl.files(out / REJECTED_DIRECTORY)] == [
        ["rejected", "v"]
    ]
    reasons = {r["key"]["data"] if r["key"] else None: r["reason"] for r in kept}
    assert reasons["req-x"].startswith("not JSON")
    assert reasons["req-y"].startswith("not JSON")
    assert reasons["req-v2"] == "unsupported schema_version 2"
    assert reasons["req-m"] == "unknown kind 'mystery'"
    assert reasons["someone-else"] == "key differs from request_id"
    assert reasons["req-z"] == "not a JSON object but list"
    by_key = {r["key"]["data"]: r for r in kept}
    assert by_key["req-x"]["value"] == {"encoding": "utf-8", "data": "{not json"}
    assert by_key["req-y"]["value"] == {
        "encoding": "base64",
        "data": base64.b64encode(b"\xff\xfe\x00binary").decode(),
    }
    assert orjson.loads(by_key["someone-else"]["value"]["data"]) == good[1]
    assert ["traceparent", {"encoding": "utf-8", "data": TRACEPARENT.decode()}] in by_key[
        "someone-else"
    ]["headers"]
    for r in kept:
        assert (r["topic"], r["partition"] in {0, 1, 2}, r["offset"] >= 0) == (TOPIC, True, True)
    # offsets point at the messages themselves, and were committed past them
    assert sum(stats.committed.values()) == 12
    assert sum("Rejected message" in r.getMessage() for r in caplog.records) == 6


@pytest.mark.parametrize(
    ("key", "value", "headers", "reason"),
    [
        (b"r", None, None, "no value"),
        (b"r", b"", None, "not JSON"),
        (b"r", b'"text"', None, "not a JSON object"),
        (
            b"r",
            b'{"schema_version": "1", "kind": "exchange", "request_id": "r"}',
            None,
            "is not an integer",
        ),
        (
            b"r",
            b'{"schema_version": true, "kind": "exchange", "request_id": "r"}',
            None,
            "is not an integer",
        ),
        (
            b"r",
            b'{"schema_version": 2, "kind": "exchange", "request_id": "r"}',
            None,
            "unsupported",
        ),
        (b"r", b'{"schema_version": 1, "request_id": "r"}', None, "unknown kind"),
        (b"r", b'{"schema_version": 1, "kind": "exchange"}', None, "request_id"),
        (None, b'{"schema_version": 1, "kind": "exchange", "request_id": "r"}', None, "no key"),
        (b"\xff", b'{"schema_version": 1, "kind": "exchange", "request_id": "r"}', None, "UTF-8"),
        (b"s", b'{"schema_version": 1, "kind": "exchange", "request_id": "r"}', None, "differs"),
        (
            b"r",
            b'{"schema_version": 1, "kind": "exchange", "request_id": "r"}',
            [("guardline-kind", b"feedback")],
            "header guardline-kind",
        ),
        (
            b"r",
            b'{"schema_version": 1, "kind": "feedback", "request_id": "r"}',
            [("guardline-schema", b"1"), ("guardline-kind", b"feedback")],
            "",
        ),
    ],
)
def test_validate(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    reason: str,
) -> None:
    record, why = validate(key, value, headers)
    assert (record is None) == bool(reason)
    assert reason in why


# (e) the broker goes away ------------------------------------------------------------------


def test_a_broker_outage_is_waited_out(
    broker: Tansu, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "datasets"
    before = records(30, tag="a")
    produce_records(broker, before)
    with caplog.at_level(logging.INFO, logger="guardline.samples"):
        run = Run(broker, out, prefix="steady")
        try:
            assert eventually(lambda: run.stats.written >= 30, 15)
            broker.stop()
            assert eventually(lambda: run.stats.outages == 1, 10)
            time.sleep(0.5)
            # A fresh, empty broker: the topic must be created again.
            broker.start()
            broker.create_topic(TOPIC, partitions=3)
            after = records(45, tag="b")
            produce_records(broker, after)
            wanted = set(map(ident, after))
            assert eventually(lambda: wanted <= set(map(ident, dataset(out))), 20)
        finally:
            stats = run.result()

    assert run.error is None
    assert stats.outages == 1
    lines = dataset(out)
    assert set(map(ident, lines)) == set(map(ident, before + after))
    # The fresh broker forgot the group's offsets: it reads its new log from the start
    # again, so duplicates of the new records are allowed; the old ones are not repeated.
    counts = Counter(map(ident, lines))
    assert all(counts[i] == 1 for i in map(ident, before))
    messages = [r.getMessage() for r in caplog.records if r.name == "guardline.samples"]
    assert sum("unreachable" in m for m in messages) == 1  # once per outage
    assert sum("reachable again" in m for m in messages) == 1


# wiring ------------------------------------------------------------------------------------


def test_source_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(
        overrides={
            "samples": {
                "kafka": {
                    "bootstrap_servers": ["k1:9092", "k2:9092"],
                    "topic": "samples.prod",
                    "security_protocol": "SASL_SSL",
                    "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_username": "guardline",
                    "sasl_password_env": "TEST_KAFKA_PASSWORD",
                }
            }
        }
    )
    source = source_from_settings(settings)
    assert source["bootstrap_servers"] == ("k1:9092", "k2:9092")
    assert source["topic"] == "samples.prod"
    assert source["sasl_password_env"] == "TEST_KAFKA_PASSWORD"
    assert "secret" not in repr(source)
    overridden = source_from_settings(settings, bootstrap_servers=["b:1"], topic="t")
    assert (overridden["bootstrap_servers"], overridden["topic"]) == (("b:1",), "t")

    monkeypatch.delenv("TEST_KAFKA_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="TEST_KAFKA_PASSWORD is not set"):
        DatasetConsumer(out_dir=Path("unused"), **source)
    monkeypatch.setenv("TEST_KAFKA_PASSWORD", "s3cret-value")
    DatasetConsumer(out_dir=Path("unused"), **source)  # connects only in run()

    with pytest.raises(ConfigError, match="no Kafka brokers"):
        source_from_settings(load_settings())


def test_default_prefix_is_a_valid_file_prefix() -> None:
    prefix = default_prefix()
    assert prefix.startswith("samples-c-")
    assert prefix.endswith(f"-{os.getpid()}")
    assert all(c.isalnum() or c in "_.-" for c in prefix)
