"""Jobs through Kafka, for a cluster: the receiver publishes each new job to
``reeval.topic``; ``guardline reeval worker`` processes share it as a consumer group and
publish every change of a job (and, when it is done, its report) to ``<topic>.status``,
which the receiver reads into its own store to answer ``GET /v1/reeval/jobs``.

A worker commits a job's offset only once the job has finished, so a worker killed
mid-run leaves it uncommitted: the group hands it to the next member (or the restarted
worker), which runs it again. A job its store already has as done is not run again, and
the receiver never moves a finished job back, so a repeat delivery changes nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from guardline.errors import ConfigError, GuardlineError
from guardline.exporters.consumer import consumer_config, kafka_consumer
from guardline.exporters.kafka import close_producer, kafka_producer, producer_config
from guardline.reeval.jobs import FINAL, Job, JobStore
from guardline.reeval.results import EvaluationEvents
from guardline.reeval.worker import Executor
from guardline.settings import KafkaSettings, Settings

log = logging.getLogger("guardline.reeval")

STATUS = ".status"
_GROUP = {
    "auto_offset_reset": "earliest",
    "allow_auto_create_topics": False,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
}
"""How both consumers here (the worker group, the receiver's status reader) join."""
MAX_MESSAGE = 900_000
"""Below Kafka's default 1 MB message limit: a report larger than this is not carried in
the status message (its location still is)."""


class QueueError(GuardlineError):
    """A job that could not be handed to Kafka."""


def _kafka(settings: Settings) -> KafkaSettings:
    kafka = settings.samples.kafka
    if not kafka.bootstrap_servers:
        raise ConfigError(
            "reeval.queue is kafka but samples.kafka.bootstrap_servers is empty: the job "
            "queue uses the samples brokers and their security settings"
        )
    return kafka


def status_message(job: Job) -> bytes:
    """The job, and once it is done, its report and summary inline (when they fit)."""
    body: dict[str, Any] = {"job": job.public()}
    if job.state == "done" and job.report and job.summary:
        html, summary = Path(job.report).read_bytes(), Path(job.summary).read_bytes()
        if len(html) + len(summary) < MAX_MESSAGE:
            body["report_html"], body["summary_json"] = html.decode(), summary.decode()
    return orjson.dumps(body)


class KafkaQueue:
    """The receiver's side: ``submit`` publishes a job (raising QueueError when the
    broker does not take it), and a thread applies status messages to ``store``."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        on_update: Callable[[Job], None] | None = None,
    ) -> None:
        kafka = _kafka(settings)
        self.topic = settings.reeval.topic
        self.store = store
        self._on_update = on_update
        self._timeout = kafka.send_timeout
        self._producer = kafka_producer(
            {**producer_config(kafka), "client_id": f"{kafka.client_id}-reeval"}
        )
        # Every receiver replica reads every status: a group of its own, named by host.
        group = f"{settings.reeval.group}-receiver-{socket.gethostname()}"
        self._config = consumer_config(kafka, "reeval", group, **_GROUP, enable_auto_commit=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="guardline-reeval-status")
        self._thread.start()

    def submit(self, job: Job) -> None:
        value = orjson.dumps(job.public())
        try:
            self._producer.send(self.topic, key=job.id.encode(), value=value).get(self._timeout)
        except Exception as exc:  # kafka-python's errors share no useful base
            raise QueueError(f"cannot queue job {job.id} on {self.topic}: {exc}") from None

    def _follow(self) -> None:
        consumer = None
        try:
            consumer = kafka_consumer(self._config)
            consumer.subscribe([self.topic + STATUS])
            while not self._stop.is_set():
                for batch in consumer.poll(timeout_ms=500).values():
                    for message in batch:
                        job = apply_status(self.store, message.value)
                        if job is not None and self._on_update is not None:
                            self._on_update(job)
        except Exception:  # logged; the status shown goes stale, jobs still run
            log.exception("re-evaluation status reader stopped")
        finally:
            if consumer is not None:
                consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        close_producer(self._producer)


def apply_status(store: JobStore, value: bytes) -> Job | None:
    """Store the job a status message carries; the job as stored, or None if skipped."""
    try:
        body = orjson.loads(value)
        job = Job(**body["job"])
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("status message skipped: %s", exc)
        return None
    if "report_html" in body:
        directory = store.directory.parent / "reports" / job.id
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.html").write_text(body["report_html"], encoding="utf-8")
        (directory / "summary.json").write_text(body["summary_json"], encoding="utf-8")
        job.report, job.summary = str(directory / "report.html"), str(directory / "summary.json")
    return job if store.put(job) else None


class KafkaWorker:
    """``guardline reeval worker``: one job at a time from the job topic, committed when
    it has finished."""

    def __init__(self, settings: Settings, store: JobStore, stop: threading.Event) -> None:
        kafka = _kafka(settings)
        self.topic = settings.reeval.topic
        self.store = store
        self.stop = stop
        self._producer = kafka_producer(
            {**producer_config(kafka), "client_id": f"{kafka.client_id}-reeval-worker"}
        )
        self.executor = Executor(
            settings, store, on_update=self._publish, events=EvaluationEvents(settings.telemetry)
        )
        self._config = consumer_config(
            kafka,
            "reeval",
            settings.reeval.group,
            **_GROUP,
            max_poll_records=1,
            # A job holds its message while it runs: allow it an hour before the group
            # takes the partition away (heartbeats keep the member alive meanwhile).
            max_poll_interval_ms=3_600_000,
        )
        self.done = 0

    def _publish(self, job: Job) -> None:
        future = self._producer.send(
            self.topic + STATUS, key=job.id.encode(), value=status_message(job)
        )
        if job.state in FINAL:
            future.get(30)  # the outcome must be out before the offset is committed

    def run(self) -> int:
        consumer = kafka_consumer(self._config)
        consumer.subscribe([self.topic])
        log.info("re-evaluation worker %d consuming %s", os.getpid(), self.topic)
        try:
            while not self.stop.is_set():
                for batch in consumer.poll(timeout_ms=500, max_records=1).values():
                    for message in batch:
                        self._handle(message.value)
                        consumer.commit()
        finally:
            consumer.close()
            close_producer(self._producer, 10.0)
            self.executor.close()
        return self.done

    def _handle(self, value: bytes) -> None:
        try:
            job = Job(**orjson.loads(value))
        except (orjson.JSONDecodeError, TypeError) as exc:
            log.warning("job message skipped: %s", exc)
            return
        self.store.create(job)  # a redelivery finds it (done, or left running)
        stored = self.store.get(job.id)
        if stored.state in FINAL:
            log.info("job %s is already %s: not run again", job.id, stored.state)
            self._publish(stored)
            return
        self.executor.execute(job.id)
        self.done += 1
