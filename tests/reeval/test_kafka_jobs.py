"""Jobs through Kafka (a real broker, Tansu): the receiver publishes the job an alert
starts, a ``guardline reeval worker`` process runs it and publishes progress and the
report back; a worker SIGKILLed mid-job leaves it to the next, which completes it once."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from guardline.reeval.jobs import Job, JobStore
from guardline.reeval.queue import STATUS, KafkaQueue
from guardline.reeval.receiver import Receiver, create_receiver_app
from guardline.settings import load_settings
from tests.broker import Tansu
from tests.conftest import openai_client
from tests.reeval.test_receiver import FIRING, TOKEN, Hook
from tests.reeval.traffic import Traffic, make_traffic, run_job
from tests.servers import context_of, proxy, proxy_settings, running, simulator
from tests.test_cli import GUARDLINE

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("quiet_kafka")]

TOPIC = "guardline.reeval.jobs"
SAMPLES = "guardline.samples"
JUDGE_DELAY_MS = 250
"""Each judge call waits this long: the job lasts seconds, so a worker can die mid-job."""


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Traffic:
    return make_traffic(tmp_path_factory.mktemp("samples"), 12)


def _config(path: Path, broker: Tansu, traffic: Traffic, judge_url: str, work: Path) -> Path:
    window = (traffic.end - traffic.boundary).total_seconds()
    config = {
        "upstreams": {"openai": {"provider": "openai", "base_url": judge_url + "/v1"}},
        "samples": {"kafka": {"bootstrap_servers": [broker.bootstrap]}},
        "reeval": {
            "queue": "kafka",
            "topic": TOPIC,
            "directory": str(work),
            "datasets": str(traffic.samples),
            "window": window,
            "judge": {"enabled": True, "max_samples": 12},
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "GUARDLINE_REEVAL_TOKEN": TOKEN}
    with log.open("ab") as out:
        return subprocess.Popen(
            [GUARDLINE, "reeval", "worker", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


@pytest.fixture
def judge_vendor(tmp_path: Path) -> Iterator[str]:
    rules = [
        {
            "match": "worthless idiot",
            "reply": '{"flagged": true, "category": "insult", "score": 0.9}',
            "ttft_ms": JUDGE_DELAY_MS,
        },
        {"match": "(?s).", "reply": '{"flagged": false}', "ttft_ms": JUDGE_DELAY_MS},
    ]
    script = tmp_path / "judge.yaml"
    script.write_bytes(orjson.dumps(rules))
    with simulator(script=script) as sim:
        yield sim.url


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_worker_killed_mid_job_leaves_it_to_the_next_which_completes_it_once(
    tansu: Tansu,
    traffic: Traffic,
    judge_vendor: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tansu.create_topic(TOPIC)
    tansu.create_topic(TOPIC + STATUS, partitions=1)
    monkeypatch.setenv("GUARDLINE_REEVAL_TOKEN", TOKEN)
    config = _config(tmp_path / "guardline.yaml", tansu, traffic, judge_vendor, tmp_path / "w")
    settings = load_settings(config, {"reeval": {"directory": str(tmp_path / "r")}})
    store = JobStore(settings.reeval.directory)
    queue = KafkaQueue(settings, store)
    receiver = Receiver(settings.reeval, store, queue.submit)
    log = tmp_path / "workers.log"
    first = _worker(config, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        with running(create_receiver_app(receiver)) as server:
            hook = Hook(server.url, store, [])
            alert = copy.deepcopy(FIRING)
            alert["alerts"][0]["startsAt"] = traffic.end.isoformat()
            answer = hook.post(alert)
            assert answer.status_code == 202, answer.text
            (job_id,) = answer.json()["started"]

            def running_job() -> bool:
                job = _get(store, job_id)
                return job is not None and job.state == "running" and job.progress > 0.1

            _wait(running_job, 60, "the first worker never got going")
            first.send_signal(signal.SIGKILL)  # mid-job: its offset is not committed
            first.wait(10)
            assert _get(store, job_id).state == "running"  # type: ignore[union-attr]
            second = _worker(config, log)
            done = _wait(lambda: _finished(store, job_id), 120, "the job was never completed")
            assert done.state == "done", done.error
            report = hook.get(f"/v1/reeval/jobs/{job_id}/report")
            assert report.status_code == 200
            assert "<svg" in report.text
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        queue.close()
    assert done.attempts == 2  # the killed run and the one that finished
    assert done.counts["window"] == traffic.calls
    outcomes = [orjson.loads(m.value)["job"]["state"] for m in tansu.consume_all(TOPIC + STATUS, 1)]
    assert outcomes.count("done") == 1, outcomes
    versions = list((tmp_path / "w" / "datasets").iterdir())
    assert len(versions) == 1, versions  # written once, by the run that finished
    assert "stopped after 1 jobs" in log.read_text()


def _get(store: JobStore, job_id: str) -> Job | None:
    jobs = [j for j in store.all() if j.id == job_id]
    return jobs[0] if jobs else None


def _finished(store: JobStore, job_id: str) -> Job | None:
    job = _get(store, job_id)
    return job if job is not None and job.state in ("done", "failed") else None


def test_a_job_reads_its_samples_from_the_topic_by_time(tansu: Tansu, tmp_path: Path) -> None:
    """reeval.source kafka: the samples topic (no JSON Lines at all), read from the
    window's start by message time; the same counts as the datasets would give."""
    tansu.create_topic(SAMPLES)
    kafka = {
        "bootstrap_servers": [tansu.bootstrap],
        "topic": SAMPLES,
        "spool_directory": str(tmp_path / "spool"),
    }
    config = {"baseline_rate": 1.0, "jsonl": {"enabled": False}, "kafka": kafka}
    with simulator() as sim, proxy(proxy_settings(sim.url, samples=config)) as gw:
        client = openai_client(gw.url)
        for i in range(10):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"Hello {i}."}]
            )
        time.sleep(0.05)
        boundary = datetime.now(UTC)
        time.sleep(0.05)
        for i in range(6):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Hello {i}."}],
                extra_headers={"x-sim-scenario": "toxic"},
            )
        assert context_of(gw).samples.sinks[-1].flush(20)
        end = datetime.now(UTC)
    settings = load_settings(
        overrides={
            "samples": {"kafka": kafka},
            "reeval": {"source": "kafka", "directory": str(tmp_path / "reeval")},
        }
    )
    done = run_job(settings, boundary, end)
    assert done.state == "done", done.error
    assert (done.counts["window"], done.counts["baseline"]) == (6, 6)
    assert done.counts["window_flagged_online"] == 6
