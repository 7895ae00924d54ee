"""Crash safety: ``guardline serve`` killed with SIGKILL mid-traffic while the broker is
down; on restart its spool replays everything to the broker, and the JSON Lines
dataset has only whole lines, holding every sample the clients were answered for."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from guardline.exporters.jsonl import files
from guardline.simulator import Simulator
from tests.broker import Tansu
from tests.conftest import eventually
from tests.exporters.test_canary import _card
from tests.exporters.test_samples_kafka import TOPIC
from tests.servers import Running, simulator
from tests.test_cli import _free_port, _process, _wait_ok

pytestmark = pytest.mark.e2e


def _spooled_ids(spool: Path) -> set[str]:
    """Request ids of every whole line in the spool from its cursor on."""
    cursor = spool / "cursor"
    segment, offset = (int(x) for x in cursor.read_text().split()) if cursor.exists() else (0, 0)
    ids: set[str] = set()
    for path in sorted(spool.glob("spool-*.log")):
        number = int(path.stem.split("-")[1])
        if number < segment:
            continue
        data = path.read_bytes()[offset if number == segment else 0 :]
        for line in data.split(b"\n")[:-1]:  # a torn tail has no newline: not a record
            ids.add(orjson.loads(line)["request_id"])
    return ids


def test_sigkill_mid_traffic_then_restart_replays_the_spool(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC)
    tansu.stop()  # the broker is down for the whole first run
    samples, spool = tmp_path / "samples", tmp_path / "spool"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "GUARDLINE_SAMPLES__JSONL__DIRECTORY": str(samples),
        "GUARDLINE_SAMPLES__BASELINE_RATE": "0",
        "GUARDLINE_SAMPLES__KAFKA__BOOTSTRAP_SERVERS": f'["{tansu.bootstrap}"]',
        "GUARDLINE_SAMPLES__KAFKA__TOPIC": TOPIC,
        "GUARDLINE_SAMPLES__KAFKA__SPOOL_DIRECTORY": str(spool),
        "GUARDLINE_SAMPLES__KAFKA__SEND_TIMEOUT": "1",
        "GUARDLINE_SAMPLES__KAFKA__RETRY_BACKOFF_MAX": "0.5",
    }
    card = _card()
    answered: list[tuple[float, str]] = []  # (when, request id) of calls that completed
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"card {card} #{len(answered)}"}],
                }
                try:
                    response = client.post(url + "/v1/chat/completions", json=body)
                except httpx.TransportError:
                    return  # the server is gone
                rid = response.headers["x-guardline-request-id"].split("~")[0]
                answered.append((time.monotonic(), rid))

    sim: Running[Simulator]
    with simulator(scenario="echo") as sim:
        args = ("serve", "--port", str(port), "--upstream", sim.url)
        with _process(*args, **env) as proc:
            _wait_ok(url + "/readyz", proc, timeout=60)
            worker = threading.Thread(target=traffic)
            worker.start()
            eventually(lambda: len(answered) >= 80, timeout=60)
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            proc.wait(10)
            stop.set()
            worker.join(15)
        spooled = _spooled_ids(spool)
        # Answered well before the kill: on disk by then, in the spool and the dataset.
        settled = {rid for when, rid in answered if when < killed - 0.5}
        assert len(settled) >= 50
        assert settled <= spooled

        tansu.start()  # a fresh broker; Guardline starts again with the same directories
        tansu.create_topic(TOPIC)
        with _process(*args, **env) as proc:
            _wait_ok(url + "/readyz", proc, timeout=60)
            messages = tansu.consume_all(TOPIC, len(spooled), timeout=60)
            health = httpx.get(url + "/healthz").json()
    kafka_ids = {m.key.decode() for m in messages}
    assert spooled <= kafka_ids  # everything the spool held went out after the restart
    assert health["samples"]["sinks"]["kafka"]["replayed"] >= len(spooled)
    lines = [line for path in files(samples) for line in path.read_bytes().split(b"\n")]
    assert lines[-1] == b""  # every file ends in a newline: no torn line survives
    records = [orjson.loads(line) for line in lines if line]  # each line is whole JSON
    assert settled <= {r["request_id"] for r in records}
    raw = b"".join(path.read_bytes() for path in files(samples))
    assert card.encode() not in raw
    assert all(card.encode() not in m.value for m in messages)


def test_sigterm_delivers_every_sample_before_exit(tansu: Tansu, tmp_path: Path) -> None:
    tansu.create_topic(TOPIC)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "GUARDLINE_SAMPLES__JSONL__DIRECTORY": str(tmp_path / "samples"),
        "GUARDLINE_SAMPLES__BASELINE_RATE": "0",
        "GUARDLINE_SAMPLES__KAFKA__BOOTSTRAP_SERVERS": f'["{tansu.bootstrap}"]',
        "GUARDLINE_SAMPLES__KAFKA__TOPIC": TOPIC,
        "GUARDLINE_SAMPLES__KAFKA__SPOOL_DIRECTORY": str(tmp_path / "spool"),
    }
    card = _card()
    ids: list[str] = []
    with (
        simulator(scenario="echo") as sim,
        _process("serve", "--port", str(port), "--upstream", sim.url, **env) as proc,
    ):
        _wait_ok(url + "/readyz", proc, timeout=60)
        with httpx.Client(timeout=10) as client:
            for i in range(40):
                body = {
                    "model": "gpt-4o-mini",
                    "messages": [{"role": "user", "content": f"card {card} #{i}"}],
                }
                response = client.post(url + "/v1/chat/completions", json=body)
                ids.append(response.headers["x-guardline-request-id"].split("~")[0])
        proc.send_signal(signal.SIGTERM)  # at once: samples may still be queued
        assert proc.wait(30) == 0
    assert _spooled_ids(tmp_path / "spool") == set()  # nothing left behind
    messages = tansu.consume_all(TOPIC, len(ids))
    assert {m.key.decode() for m in messages} == set(ids)
    lines = [x for p in files(tmp_path / "samples") for x in p.read_bytes().splitlines()]
    assert sorted(orjson.loads(x)["request_id"] for x in lines) == sorted(ids)
