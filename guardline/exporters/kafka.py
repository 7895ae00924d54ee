"""The Kafka sink: sample records onto a topic, through a disk spool, losing nothing.

``submit`` only queues (the request path never waits for a broker). A writer thread
appends each record to the spool (``guardline.exporters.spool``), so a record survives a
broker outage and a crash of this process within milliseconds of being submitted. A
sender thread reads the spool in order and produces to Kafka in batches (key = request
id, headers ``guardline-schema``, ``guardline-kind`` and ``traceparent``; idempotent
producer, ``acks=all``), moving the spool's cursor only past what the broker
acknowledged. When a batch fails the broker counts as down: records keep going to the
spool, the producer is rebuilt (kafka-python's idempotent producer does not recover from
a broker that lost its state) and the sender retries with backoff, then replays the
spool in order. Delivery is at least once: after a failure, records the broker had in
fact taken are sent again; readers de-duplicate by request id.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from guardline.errors import ConfigError
from guardline.exporters.sink import STOP, FlushMarker
from guardline.exporters.spool import Entry, Position, Spool
from guardline.settings import KafkaSettings

log = logging.getLogger("guardline.samples")

SCHEMA_HEADER = "guardline-schema"
KIND_HEADER = "guardline-kind"
TRACEPARENT = "traceparent"


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """kafka-python producer settings: idempotent, ``acks=all``, and every wait bounded
    (its defaults wait 30-120 s, far longer than an outage takes to notice)."""
    timeout_ms = int(settings.send_timeout * 1000)
    linger_ms = 5
    request_ms = max(500, timeout_ms // 2)
    config: dict[str, Any] = {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": linger_ms,
        "max_block_ms": timeout_ms,
        "request_timeout_ms": request_ms,
        # kafka-python refuses a delivery timeout below linger + request timeout.
        "delivery_timeout_ms": max(timeout_ms, linger_ms + request_ms + 100),
        "bootstrap_timeout_ms": timeout_ms,
        "reconnect_backoff_max_ms": 1000,
        **security_config(settings),
    }
    return config


def security_config(settings: KafkaSettings) -> dict[str, Any]:
    """TLS/SASL options shared by the producer and the dataset consumer."""
    return security_options(
        settings.security_protocol,
        settings.sasl_mechanism,
        settings.sasl_username,
        settings.sasl_password_env,
    )


def security_options(
    protocol: str,
    mechanism: str | None,
    username: str | None,
    password_env: str | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """kafka-python's TLS/SASL options; the password is read from the variable
    ``password_env`` names (never from a file) and never logged. ConfigError when they
    do not fit together, so a bad setup fails at start, not as an endless outage."""
    config: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_") and mechanism is None:
        raise ConfigError(f"samples.kafka: security_protocol {protocol} needs a sasl_mechanism")
    if mechanism is not None:
        if not protocol.startswith("SASL_"):
            raise ConfigError(
                f"samples.kafka: sasl_mechanism needs a SASL_ security_protocol, not {protocol}"
            )
        if not username or not password_env:
            raise ConfigError("samples.kafka: SASL needs sasl_username and sasl_password_env")
        password = (os.environ if environ is None else environ).get(password_env)
        if password is None:
            raise ConfigError(
                f"samples.kafka: the SASL password variable {password_env} is not set"
            )
        config.update(
            sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password
        )
    return config


def message(line: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The key and headers of a spooled record (its line is the message value)."""
    record = orjson.loads(line)
    headers = [
        (SCHEMA_HEADER, str(record.get("schema_version", "")).encode()),
        (KIND_HEADER, str(record.get("kind", "")).encode()),
    ]
    trace, span = record.get("trace_id"), record.get("span_id")
    if trace and span:
        headers.append((TRACEPARENT, f"00-{trace}-{span}-01".encode()))
    return str(record.get("request_id", "")).encode(), headers


class KafkaSink:
    name = "kafka"

    def __init__(
        self,
        settings: KafkaSettings,
        spool_directory: Path | None = None,
        *,
        producer_factory: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic
        security_config(settings)  # fails now, loudly, rather than as an endless outage
        self.spool = Spool(
            spool_directory or settings.spool_directory, max_bytes=settings.spool_max_bytes
        )
        self._factory = producer_factory or kafka_producer
        self._queue: queue.Queue[Any] = queue.Queue(settings.queue_size)
        self._closed = False
        self._stopping = threading.Event()
        # Counters: each written by one thread only, read by metrics and /healthz.
        self.written = 0
        self.sent = 0
        self.spooled = 0
        self.replayed = 0
        self.failed_batches = 0
        self.dropped: dict[str, int] = {"queue_full": 0, "spool_full": 0, "error": 0}
        self.connected = False
        """The last batch reached the broker."""
        self.down = False
        """The broker was found unreachable and has not taken a batch since."""
        self.lag = 0.0
        self.last_error: str | None = None
        self._full = False
        self._replay_until: Position = self.spool.end if self.spool.recovered else Position(0, 0)
        if self.spool.recovered:
            log.warning(
                "Kafka sink: %d bytes of samples left unsent by a previous run; replaying them",
                self.spool.recovered,
            )
        self._writer = threading.Thread(
            target=self._write_loop, name="guardline-spool", daemon=True
        )
        self._sender = threading.Thread(target=self._send_loop, name="guardline-kafka", daemon=True)
        self._writer.start()
        self._sender.start()

    # the Sink protocol ------------------------------------------------------------------

    def submit(self, record: dict[str, Any]) -> bool:
        if self._closed:
            self._drop("error", "the sink is closed")
            return False
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._drop("queue_full", f"{self._queue.maxsize} records are waiting for the spool")
            return False
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """True once everything submitted so far is in the spool and acknowledged by the
        broker (False on timeout: it stays spooled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        marker = FlushMarker()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        if not marker.done.wait(timeout):
            return False
        target = self.spool.end
        while self.spool.cursor < target:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Spool what is queued, give the sender ``timeout`` seconds to deliver it, then
        stop; whatever is still unsent stays in the spool for the next start."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(STOP)
        self._writer.join()
        deadline = time.monotonic() + timeout
        target = self.spool.end
        # Unless the broker is known to be down, give it the time to take what is left.
        while not self.down and self.spool.cursor < target and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stopping.set()
        self._sender.join()
        self.spool.close()
        left = self.spool.unsent_bytes
        if left:
            log.warning("Kafka sink stopped with %d bytes of samples spooled for later", left)

    def health(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "connected": self.connected,
            "spool_bytes": self.spool.unsent_bytes,
            "spool_max_bytes": self.spool.max_bytes,
            "spool_full": self._full,
            "sent": self.sent,
            "spooled": self.spooled,
            "replayed": self.replayed,
            "dropped": sum(self.dropped.values()),
            "lag_seconds": round(self.lag, 3),
            "last_error": self.last_error,
        }

    def counts(self) -> tuple[int, dict[str, int]]:
        return self.written, {reason: n for reason, n in self.dropped.items() if n}

    # the writer thread: queue -> spool --------------------------------------------------

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < 512:  # whatever else is waiting, in one go
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            lines: list[bytes] = []
            markers: list[FlushMarker] = []
            for item in items:
                if item is STOP:
                    stop = True
                elif isinstance(item, FlushMarker):
                    markers.append(item)
                else:
                    try:
                        lines.append(orjson.dumps(item))
                    except TypeError as exc:
                        self._drop("error", f"a record is not JSON ({exc})")
            if lines:
                self._spool(lines)
            for marker in markers:
                marker.done.set()

    def _spool(self, lines: list[bytes]) -> None:
        try:
            taken = self.spool.append(lines)
        except OSError as exc:
            for _ in lines:
                self._drop("error", f"the spool cannot be written ({exc})")
            return
        self.written += taken
        if self.down:
            self.spooled += taken
        if taken < len(lines):
            self._full = True
            for _ in range(len(lines) - taken):
                self._drop("spool_full", f"the spool is full ({self.spool.max_bytes} bytes)")
        elif self._full:
            self._full = False
            log.warning("Kafka sink: the spool has room again")

    def _drop(self, reason: str, why: str) -> None:
        self.dropped[reason] += 1
        count = sum(self.dropped.values())
        if count == 1 or count % 1000 == 0:
            log.error("Kafka sink DROPPED a sample (%d so far): %s", count, why)

    # the sender thread: spool -> Kafka --------------------------------------------------

    def _send_loop(self) -> None:
        producer: Any = None
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                entries = self.spool.read(self.settings.batch_size, wait=0.2)
                if not entries:
                    self.lag = 0.0
                    continue
                if producer is None:
                    producer = self._connect()
                if producer is not None and self._deliver(producer, entries):
                    backoff = 0.25
                    continue
                # Down: the unacknowledged rest waits in the spool; retry with backoff.
                self.spool.rewind()
                if producer is not None:
                    close_producer(producer)
                    producer = None
                self._mark_down()
                self.lag = _age(entries[0].line)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.settings.retry_backoff_max)
        finally:
            if producer is not None:
                close_producer(producer)

    def _connect(self) -> Any:
        # A plain connect first: kafka-python's constructor, when it cannot bootstrap,
        # raises only after its timeout and leaks the sockets it made.
        reachable = _reachable(self.settings.bootstrap_servers, self.settings.send_timeout)
        if reachable is not None:
            self._failed(reachable)
            return None
        try:
            return self._factory(producer_config(self.settings))
        except Exception as exc:  # kafka-python raises many kinds; all mean "not now"
            self._failed(exc)
            return None

    def _deliver(self, producer: Any, entries: list[Entry]) -> bool:
        """Send a batch and wait for the broker; commit what it acknowledged in order.
        True when all of it was."""
        futures = []
        try:
            for entry in entries:
                key, headers = message(entry.line)
                futures.append(
                    producer.send(self.topic, key=key, value=entry.line, headers=headers)
                )
            producer.flush(timeout=self.settings.send_timeout)
        except Exception as exc:
            self._failed(exc)
        acknowledged = 0
        for future in futures:
            if not (future.is_done and future.succeeded()):
                break
            acknowledged += 1
        if acknowledged:
            end = entries[acknowledged - 1].end
            self.spool.commit(end)
            self.sent += acknowledged
            self.replayed += sum(1 for e in entries[:acknowledged] if e.end <= self._replay_until)
            self.lag = _age(entries[acknowledged].line) if acknowledged < len(entries) else 0.0
            self._mark_up()
        if acknowledged == len(entries):
            return True
        failed = next((f for f in futures[acknowledged:] if f.is_done and f.failed()), None)
        if failed is not None:
            self._failed(failed.exception)
        elif futures:
            self._failed(TimeoutError(f"no acknowledgement within {self.settings.send_timeout}s"))
        return False

    def _failed(self, exc: BaseException) -> None:
        self.failed_batches += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    def _mark_up(self) -> None:
        if self.down:
            # What waited out the outage counts as replayed as it goes out.
            self._replay_until = self.spool.end
            self.down = False
            log.warning("Kafka sink: the broker is back; replaying the spool")
        if not self.connected:
            self.connected = True
            log.info("Kafka sink: connected to %s", ",".join(self.settings.bootstrap_servers))

    def _mark_down(self) -> None:
        self._replay_until = Position(1 << 62, 0)  # until the broker is back
        if not self.down:
            log.error(
                "Kafka sink: the broker is unreachable (%s); samples wait in the spool at %s",
                self.last_error,
                self.spool.directory,
            )
        self.connected = False
        self.down = True


def _reachable(servers: tuple[str, ...], timeout: float) -> OSError | None:
    """None when some bootstrap server accepts a TCP connection, else the last error."""
    error: OSError = ConnectionRefusedError("no bootstrap servers")
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return None
        except OSError as exc:
            error = exc
        except ValueError:
            error = OSError(f"not host:port: {server!r}")
    return error


def _age(line: bytes) -> float:
    """Seconds since the record's exchange (its ``time``), for the sender-lag gauge."""
    try:
        stamp = datetime.fromisoformat(orjson.loads(line)["time"]).timestamp()
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError):
        return 0.0
    return max(0.0, time.time() - stamp)


def kafka_producer(config: dict[str, Any]) -> Any:
    with warnings.catch_warnings():  # its import reads resources with deprecated APIs
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer  # noqa: PLC0415 - only when Kafka is configured

    return KafkaProducer(**config)


def close_producer(producer: Any, timeout: float = 2.0) -> None:
    """Close without hanging: kafka-python's ``close`` raises (and leaves its network
    thread running) while records are pending for a broker that is gone."""
    try:
        producer.close(timeout=timeout)
    except Exception:
        sender = getattr(producer, "_sender", None)
        if sender is not None:  # private, but the only way to end that thread
            sender.force_close()
            sender.join(timeout)
        try:
            producer.close(timeout=0)
        except Exception as exc:
            log.debug("Kafka producer close: %s", exc)
