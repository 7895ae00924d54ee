"""The dataset consumer: sample records from a Kafka topic into JSON Lines datasets.

Every proxy replica produces its sample records onto one topic (``guardline.exporters.
kafka``); ``guardline datasets consume`` reads that topic in a consumer group and writes
the records into the same JSON Lines files the embedded sink writes
(``guardline.exporters.jsonl``), so a whole cluster ends up with one dataset. Several
consumers may share the group (Kafka splits the partitions among them) and the directory
(each writes its own files, ``samples-c-<host>-<pid>-<day>-<seq>.jsonl``).

Delivery is at least once. A batch is written and fsynced before its offsets are
committed, so a crash never loses a record, but a record written and not yet committed
when the consumer dies (or loses its partitions while the broker is away) is written again
by whoever reads the partition next. Producers too deliver at least once. Readers
de-duplicate by ``request_id`` (with ``kind``); this module never tries to, and the stats'
``uncommitted`` counts the records this run leaves for a later reader to write again.

Messages that are not version-1 sample records (not JSON, an unknown ``schema_version`` or
``kind``, a ``request_id`` other than the key) are never dropped silently: they go, with
their topic, partition, offset, reason and raw bytes, to ``<out>/rejected/rejected-<prefix>
-<day>-<seq>.jsonl`` (outside the dataset's own files), are counted and logged.

A broker outage is waited out: polls and commits are bounded, the consumer keeps retrying,
offsets of what is on disk are committed once the broker is back, and the outage is logged
once when it starts and once when it ends.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import socket
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

import orjson

from guardline.errors import ConfigError, GuardlineError
from guardline.exporters.jsonl import JsonlSink
from guardline.exporters.kafka import (
    KIND_HEADER,
    SCHEMA_HEADER,
    security_config,
    security_options,
)
from guardline.exporters.samples import SCHEMA_VERSION
from guardline.logs import iso_time
from guardline.settings import KafkaSettings, Settings

log = logging.getLogger("guardline.samples")

DEFAULT_GROUP = "guardline-datasets"
SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
KINDS = frozenset({"exchange", "feedback"})
REJECTED_DIRECTORY = "rejected"
# The oldest Kafka protocol the client assumes before it has talked to a broker. Giving
# it one keeps the constructor from bootstrapping eagerly (which blocks, and leaks a
# thread when it fails); each connection still negotiates down to what its broker offers.
API_VERSION = (3, 9)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_FATAL_NAMES = (
    "AuthorizationError",
    "SaslAuthenticationFailedError",
    "KafkaConfigurationError",
    "IllegalStateError",
    "UnsupportedVersionError",
)
_REBALANCE_NAMES = (
    "CommitFailedError",
    "RebalanceInProgressError",
    "IllegalGenerationError",
    "UnknownMemberIdError",
    "FencedInstanceIdError",
)
_REJECTIONS_LOGGED = 100  # each one; after that, every 1000th

_active_prefixes: set[str] = set()
_active_lock = threading.Lock()


class ConsumeError(GuardlineError):
    """The consumer cannot go on (records could not be written, or Kafka refused the
    credentials or the group); offsets of what is not on disk were not committed."""


class KafkaSource(TypedDict):
    """Where a ``DatasetConsumer`` reads from, as :func:`source_from_settings` gives it."""

    bootstrap_servers: tuple[str, ...]
    topic: str
    client_id: str
    security_protocol: SecurityProtocol
    sasl_mechanism: SaslMechanism | None
    sasl_username: str | None
    sasl_password_env: str | None


@dataclass
class ConsumeStats:
    """What one run did; updated as it goes (another thread may read it)."""

    prefix: str = ""
    consumed: int = 0
    """Messages read from the topic."""
    written: int = 0
    """Sample records written to the dataset (fsynced before their offsets are committed)."""
    rejected: int = 0
    """Messages that are not sample records, written to the rejected file instead."""
    commits: int = 0
    commit_failures: int = 0
    uncommitted: int = 0
    """Messages handled (written or rejected) whose offsets this run could not commit
    (the broker was away, or the partition moved to another member first): a later
    reader handles them again. Duplicates are not tracked otherwise; readers de-duplicate
    by ``request_id``."""
    outages: int = 0
    """Times the brokers became unreachable (or commits kept failing)."""
    assigned: frozenset[int] = frozenset()
    """Partitions this consumer owns right now."""
    last_offsets: dict[int, int] = field(default_factory=dict)
    """Per partition, the offset of the last message handled."""
    committed: dict[int, int] = field(default_factory=dict)
    """Per partition, the last committed offset (the next message to read)."""


def default_prefix() -> str:
    """``samples-c-<host>-<pid>``: one prefix per consumer process, sanitised to what
    dataset file names allow."""
    host = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-.") or "host"
    return f"samples-c-{host[:100]}-{os.getpid()}"


def source_from_settings(
    settings: Settings,
    *,
    bootstrap_servers: Sequence[str] | None = None,
    topic: str | None = None,
) -> KafkaSource:
    """``DatasetConsumer`` keyword arguments from ``samples.kafka`` (brokers, topic, TLS/SASL),
    with ``bootstrap_servers`` and ``topic`` overridden when given (a CLI's options). The
    password stays in its environment variable until the consumer connects."""
    kafka = settings.samples.kafka
    servers = tuple(bootstrap_servers) if bootstrap_servers else kafka.bootstrap_servers
    if not servers:
        raise ConfigError(
            "no Kafka brokers: pass --bootstrap-servers or set samples.kafka.bootstrap_servers"
        )
    return KafkaSource(
        bootstrap_servers=servers,
        topic=topic or kafka.topic,
        client_id=f"{kafka.client_id}-datasets",
        security_protocol=kafka.security_protocol,
        sasl_mechanism=kafka.sasl_mechanism,
        sasl_username=kafka.sasl_username,
        sasl_password_env=kafka.sasl_password_env,
    )


class DatasetConsumer:
    """One run of the dataset consumer: ``DatasetConsumer(...).run(stop=, max_idle=)``;
    ``stats`` is live while ``run`` goes."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str] | str,
        topic: str,
        out_dir: Path,
        *,
        group: str = DEFAULT_GROUP,
        prefix: str | None = None,
        client_id: str = "guardline-datasets",
        security_protocol: SecurityProtocol = "PLAINTEXT",
        sasl_mechanism: SaslMechanism | None = None,
        sasl_username: str | None = None,
        sasl_password_env: str | None = None,
        max_file_bytes: int = 64 * 1024 * 1024,
        max_poll_records: int = 500,
        poll_timeout: float = 1.0,
        session_timeout: float = 10.0,
        heartbeat_interval: float = 3.0,
        request_timeout: float = 10.0,
        retry_backoff_max: float = 5.0,
        flush_timeout: float = 60.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        servers = [bootstrap_servers] if isinstance(bootstrap_servers, str) else bootstrap_servers
        self.bootstrap_servers = [s.strip() for s in servers if s.strip()]
        if not self.bootstrap_servers:
            raise ConfigError("no Kafka bootstrap servers")
        if not topic:
            raise ConfigError("no topic")
        if prefix is not None and not _PREFIX.fullmatch(prefix):
            raise ConfigError(f"prefix {prefix!r} must match {_PREFIX.pattern}")
        if not 0 < heartbeat_interval < session_timeout:
            raise ConfigError("heartbeat_interval must be positive and below session_timeout")
        if request_timeout * 1000 <= 500:  # kafka-python: above fetch_max_wait_ms
            raise ConfigError("request_timeout must be above 0.5 s")
        self.topic = topic
        self.out_dir = out_dir
        self.group = group
        self._wanted_prefix = prefix
        self.max_file_bytes = max_file_bytes
        self.max_poll_records = max_poll_records
        self.poll_timeout = poll_timeout
        self.request_timeout = request_timeout
        self.retry_backoff_max = retry_backoff_max
        self.flush_timeout = flush_timeout
        self._close_timeout = min(request_timeout, 5.0)
        self._config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": client_id,
            "group_id": group,
            "auto_offset_reset": "earliest",
            "enable_auto_commit": False,
            "allow_auto_create_topics": False,
            "api_version": API_VERSION,
            "max_poll_records": max_poll_records,
            "session_timeout_ms": int(session_timeout * 1000),
            "heartbeat_interval_ms": int(heartbeat_interval * 1000),
            "request_timeout_ms": int(request_timeout * 1000),
            "bootstrap_timeout_ms": int(request_timeout * 1000),
            "reconnect_backoff_max_ms": int(min(retry_backoff_max, 30.0) * 1000),
            "retry_backoff_ms": 100,
            **security_options(
                security_protocol,
                sasl_mechanism,
                sasl_username,
                sasl_password_env,
                os.environ if environ is None else environ,
            ),
        }
        self.stats = ConsumeStats()
        self._lock = threading.Lock()
        # partition -> (next offset to commit, messages handled since the last commit)
        self._pending: dict[int, tuple[int, int]] = {}
        self._down_since: float | None = None
        self._unconnected_since: float | None = None
        self._next_commit = 0.0
        self._next_health = 0.0
        self._sink: JsonlSink | None = None
        self._rejected: JsonlSink | None = None
        self._rejections = 0
        self._ran = False

    # the run ------------------------------------------------------------------------------

    def run(
        self, *, stop: threading.Event | None = None, max_idle: float | None = None
    ) -> ConsumeStats:
        """Read ``topic`` in consumer group ``group`` into JSON Lines files in ``out_dir``
        until ``stop`` is set or, with ``max_idle``, no message has come for that many
        seconds while it holds partitions (joining the group does not count); then commit
        what is on disk, leave the group and return the stats. ``stop`` may be set from a
        signal handler.

        Raises :class:`ConsumeError` when records cannot be written, or Kafka refuses the
        credentials or the group (a broker outage is waited out, never raised);
        ``ConfigError`` for a prefix in use (bad arguments raise it from the constructor)."""
        if self._ran:
            raise RuntimeError("a DatasetConsumer runs once")
        self._ran = True
        stop = stop or threading.Event()
        prefix = _claim_prefix(self._wanted_prefix)
        self.stats.prefix = prefix
        consumer: Any = None
        try:
            self._sink = JsonlSink(
                self.out_dir,
                prefix=prefix,
                max_bytes=self.max_file_bytes,
                queue_size=self.max_poll_records * 2 + 16,
            )
            consumer = kafka_consumer(self._config)
            consumer.subscribe([self.topic], listener=_listener(self))
            log.info(
                "Consuming %s from %s in group %s into %s (files %s-*)",
                self.topic,
                ",".join(self.bootstrap_servers),
                self.group,
                self.out_dir,
                prefix,
            )
            self._loop(consumer, stop, max_idle)
        finally:
            try:
                self._finish(consumer)
            finally:
                _release_prefix(prefix)
        log.info(
            "Consumer %s stopped: %d consumed, %d written, %d rejected, %d uncommitted",
            prefix,
            self.stats.consumed,
            self.stats.written,
            self.stats.rejected,
            self.stats.uncommitted,
        )
        return self.stats

    def _loop(self, consumer: Any, stop: threading.Event, max_idle: float | None) -> None:
        last_message = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            timeout = self.poll_timeout
            if max_idle is not None:
                if not self.stats.assigned:  # joining the group is not being idle
                    last_message = now
                left = last_message + max_idle - now
                if left <= 0:
                    log.info("No message for %.1f s: stopping", max_idle)
                    return
                timeout = min(timeout, left)
            try:
                batch = consumer.poll(timeout_ms=max(1, int(timeout * 1000)))
            except Exception as exc:
                if _fatal(exc):
                    raise ConsumeError(f"Kafka refused: {exc}") from exc
                self._mark_down(f"poll failed: {exc!r}")
                _sleep(stop, min(self.retry_backoff_max, 1.0))
                continue
            if batch:
                last_message = time.monotonic()
                self._mark_up()
                self._write(batch)
            self._commit(consumer, final=False)
            self._check_health(consumer)

    def _write(self, batch: Mapping[Any, Sequence[Any]]) -> None:
        """Hand a poll's messages to the sinks, wait until they are on disk, and only then
        count their offsets as ready to commit."""
        sink = self._sink
        assert sink is not None
        dropped = sink.dropped
        dropped_rejected = self._rejected.dropped if self._rejected else 0
        offsets: dict[int, tuple[int, int]] = {}
        written = rejected = 0
        for partition, messages in batch.items():
            for message in messages:
                self.stats.consumed += 1
                record, reason = validate(message.key, message.value, message.headers)
                if record is not None:
                    sink.submit(record)
                    written += 1
                else:
                    self._reject(message, reason)
                    rejected += 1
            if messages:
                _, count = offsets.get(partition.partition, (0, 0))
                offsets[partition.partition] = (messages[-1].offset + 1, count + len(messages))
        sinks = [sink] + ([self._rejected] if self._rejected else [])
        for each in sinks:
            if not each.flush(self.flush_timeout):
                raise ConsumeError(f"{each.directory}: records not on disk after flush")
        lost = sink.dropped - dropped
        lost += (self._rejected.dropped if self._rejected else 0) - dropped_rejected
        if lost:
            raise ConsumeError(f"{lost} records could not be written under {self.out_dir}")
        self.stats.written += written
        self.stats.rejected += rejected
        with self._lock:
            for partition_id, (next_offset, count) in offsets.items():
                _, waiting = self._pending.get(partition_id, (0, 0))
                self._pending[partition_id] = (next_offset, waiting + count)
                self.stats.last_offsets[partition_id] = next_offset - 1

    def _reject(self, message: Any, reason: str) -> None:
        if self._rejected is None:
            assert self._sink is not None
            self._rejected = JsonlSink(
                self.out_dir / REJECTED_DIRECTORY,
                prefix=f"rejected-{self._sink.prefix}",
                max_bytes=self.max_file_bytes,
                queue_size=self.max_poll_records * 2 + 16,
            )
        self._rejections += 1
        count = self._rejections
        if count <= _REJECTIONS_LOGGED or count % 1000 == 0:
            log.warning(
                "Rejected message %s[%d]@%d (%s), kept in %s (%d rejected so far)",
                message.topic,
                message.partition,
                message.offset,
                reason,
                self._rejected.directory,
                count,
            )
        self._rejected.submit(
            {
                "rejected_at": iso_time(time.time()),
                "reason": reason,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "timestamp": message.timestamp,
                "key": _raw(message.key),
                "headers": [[name, _raw(value)] for name, value in message.headers or ()],
                "value": _raw(message.value),
            }
        )

    # offsets --------------------------------------------------------------------------------

    def _commit(self, consumer: Any, *, final: bool) -> None:
        """Commit the offsets of what is on disk: after every batch, and while the broker
        is away, again every ``retry_backoff_max`` seconds."""
        with self._lock:
            pending = dict(self._pending)
        if not pending:
            return
        if not final and time.monotonic() < self._next_commit:
            return
        from kafka.structs import OffsetAndMetadata, TopicPartition  # noqa: PLC0415

        offsets = {
            TopicPartition(self.topic, partition): OffsetAndMetadata(next_offset, "", -1)
            for partition, (next_offset, _) in pending.items()
        }
        try:
            consumer.commit(offsets, timeout_ms=int(self.request_timeout * 1000))
        except Exception as exc:
            if _fatal(exc):
                raise ConsumeError(f"Kafka refused the commit: {exc}") from exc
            self.stats.commit_failures += 1
            if _rebalanced(exc):  # the partitions move on; no outage, no backoff
                log.warning(
                    "Offsets not committed: the group rebalanced first (%s); the last "
                    "records of %s may be written again by their next reader",
                    type(exc).__name__,
                    sorted(pending),
                )
                return
            self._next_commit = time.monotonic() + self.retry_backoff_max
            waiting = sum(count for _, count in pending.values())
            self._mark_down(f"commit failed ({type(exc).__name__}); {waiting} on disk")
            return
        self.stats.commits += 1
        self._next_commit = 0.0
        with self._lock:
            for partition, (next_offset, count) in pending.items():
                self.stats.committed[partition] = next_offset
                now_offset, now_count = self._pending.get(partition, (-1, 0))
                if now_offset == next_offset:
                    del self._pending[partition]
                elif now_offset > next_offset:  # more arrived meanwhile (not in this loop)
                    self._pending[partition] = (now_offset, now_count - count)
        self._mark_up()

    def _revoked(self, partitions: Sequence[int]) -> None:
        """Partitions leave this consumer (a rebalance, or closing): offsets not committed
        by now will not be; whoever reads the partition next handles those again."""
        with self._lock:
            for partition in partitions:
                _, count = self._pending.pop(partition, (0, 0))
                self.stats.uncommitted += count
            self.stats.assigned = self.stats.assigned - frozenset(partitions)
        if partitions:
            log.info("Partitions %s of %s revoked", sorted(partitions), self.topic)

    def _assigned(self, partitions: Sequence[int]) -> None:
        with self._lock:
            self.stats.assigned = self.stats.assigned | frozenset(partitions)
        if partitions:
            log.info("Partitions %s of %s assigned", sorted(partitions), self.topic)

    # broker health --------------------------------------------------------------------------

    def _check_health(self, consumer: Any) -> None:
        """Once a second: no open connection at all means the brokers are away (a group
        member always holds one to its coordinator)."""
        now = time.monotonic()
        if now < self._next_health:
            return
        self._next_health = now + 1.0
        try:
            count = consumer.metrics()["consumer-metrics"]["connection-count"]
        except Exception:  # an unstable kafka-python interface: no verdict
            return
        if count:
            self._unconnected_since = None
            if not self._pending:  # else a successful commit says it is back
                self._mark_up()
        elif self._unconnected_since is None:
            self._unconnected_since = now
        elif now - self._unconnected_since >= max(2.0, self.poll_timeout * 2):
            self._mark_down("no connection to any broker")

    def _mark_down(self, why: str) -> None:
        if self._down_since is not None:
            log.debug("Kafka still unreachable: %s", why)
            return
        self._down_since = time.monotonic()
        self.stats.outages += 1
        log.warning(
            "Kafka %s unreachable (%s): retrying; nothing is lost, offsets of records "
            "already written are committed once it is back",
            ",".join(self.bootstrap_servers),
            why,
        )

    def _mark_up(self) -> None:
        if self._down_since is None:
            return
        log.warning(
            "Kafka %s reachable again after %.1f s",
            ",".join(self.bootstrap_servers),
            time.monotonic() - self._down_since,
        )
        self._down_since = None

    # the end ----------------------------------------------------------------------------

    def _finish(self, consumer: Any) -> None:
        """Flush, commit what is on disk, leave the group, close the files. Each step
        bounded; a failing step does not skip the ones after it."""
        try:
            if consumer is not None:
                try:
                    self._commit(consumer, final=True)
                except ConsumeError as exc:
                    log.error("Final commit refused: %s", exc)
                try:  # leaves the group; bounded, also while a join is pending
                    consumer.close(autocommit=False, timeout_ms=int(self._close_timeout * 1000))
                except Exception as exc:
                    log.warning("Kafka consumer close: %s", exc)
        finally:
            with self._lock:
                for _, count in self._pending.values():
                    self.stats.uncommitted += count
                self._pending.clear()
                self.stats.assigned = frozenset()
            for sink in (self._sink, self._rejected):
                if sink is not None:
                    sink.close()


def validate(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None = None
) -> tuple[dict[str, Any] | None, str]:
    """The sample record a message holds, or ``None`` and why it is not one."""
    if value is None:
        return None, "no value"
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(record, dict):
        return None, f"not a JSON object but {type(record).__name__}"
    version = record.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        return None, f"schema_version {version!r} is not an integer"
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        return None, f"unsupported schema_version {version}"
    kind = record.get("kind")
    if kind not in KINDS:
        return None, f"unknown kind {kind!r}"
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        return None, "request_id is not a non-empty string"
    if key is None:
        return None, "no key"
    try:
        text_key = key.decode()
    except UnicodeDecodeError:
        return None, "key is not UTF-8"
    if text_key != request_id:
        return None, "key differs from request_id"
    for name, expected in ((SCHEMA_HEADER, str(version)), (KIND_HEADER, kind)):
        found = _header(headers, name)
        if found is not None and found != expected.encode():
            return None, f"header {name} {found!r} disagrees with the record ({expected})"
    return record, ""


def _header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


def _raw(data: bytes | None) -> dict[str, str] | None:
    """Bytes kept as they came: text when they are UTF-8, else base64."""
    if data is None:
        return None
    try:
        return {"encoding": "utf-8", "data": data.decode()}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(data).decode("ascii")}


def _sleep(stop: threading.Event, seconds: float) -> None:
    """Sleep, waking early on ``stop``, without ``Event.wait``: a signal handler that sets
    ``stop`` in this thread would deadlock on the lock ``wait`` holds."""
    end = time.monotonic() + seconds
    while not stop.is_set() and (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


def _claim_prefix(wanted: str | None) -> str:
    """A prefix no other consumer of this process uses (files must have one writer)."""
    with _active_lock:
        if wanted is not None:
            if wanted in _active_prefixes:
                raise ConfigError(f"prefix {wanted!r} is in use by another consumer")
            prefix = wanted
        else:
            base = prefix = default_prefix()
            n = 1
            while prefix in _active_prefixes:
                prefix = f"{base}-{n}"
                n += 1
        _active_prefixes.add(prefix)
        return prefix


def _release_prefix(prefix: str) -> None:
    with _active_lock:
        _active_prefixes.discard(prefix)


def _fatal(exc: BaseException) -> bool:
    """Errors retrying cannot fix: credentials, permissions, configuration."""
    return any(cls.__name__ in _FATAL_NAMES for cls in type(exc).__mro__)


def _rebalanced(exc: BaseException) -> bool:
    """Commit errors that mean this member's partitions are moving, not an outage."""
    return any(cls.__name__ in _REBALANCE_NAMES for cls in type(exc).__mro__)


def consumer_config(
    settings: KafkaSettings, client: str, group: str | None, **extra: Any
) -> dict[str, Any]:
    """kafka-python consumer settings for ``samples.kafka``'s brokers and security, as
    client ``<client_id>-<client>`` in ``group`` (None: no group, partitions assigned by
    hand), committing nothing by itself; ``extra`` adds or overrides."""
    return {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "client_id": f"{settings.client_id}-{client}",
        "group_id": group,
        "enable_auto_commit": False,
        "api_version": API_VERSION,
        "request_timeout_ms": 15_000,
        **security_config(settings),
        **extra,
    }


def kafka_consumer(config: dict[str, Any]) -> Any:
    with warnings.catch_warnings():  # its import reads resources with deprecated APIs
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer  # noqa: PLC0415 - only when consuming

    return KafkaConsumer(**config)


def _listener(owner: DatasetConsumer) -> Any:
    """A rebalance listener telling ``owner`` which partitions it holds. It runs on
    kafka-python's I/O thread, so it only updates state (a commit from there would wait
    on that same thread)."""
    from kafka import ConsumerRebalanceListener  # noqa: PLC0415

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            owner._revoked([tp.partition for tp in revoked if tp.topic == owner.topic])

        def on_partitions_assigned(self, assigned: Any) -> None:
            owner._assigned([tp.partition for tp in assigned if tp.topic == owner.topic])

    return Listener()
