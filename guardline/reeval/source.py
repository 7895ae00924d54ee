"""Where a job's samples come from: the JSON Lines datasets, or the Kafka samples topic
read by timestamp (no consumer group, nothing committed: a job only reads).

Either way the records go through the datasets' own parser and join
(``join_records``): feedback joined, duplicates dropped, bad lines counted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from guardline.errors import ConfigError
from guardline.exporters.consumer import consumer_config, kafka_consumer
from guardline.exporters.datasets import (
    DatasetError,
    Filters,
    ReadStats,
    Sample,
    join_records,
    read_dataset,
)
from guardline.settings import Settings

log = logging.getLogger("guardline.reeval")


def samples(settings: Settings, since: datetime, until: datetime) -> tuple[list[Sample], ReadStats]:
    """Every sample record from ``since`` (inclusive) to ``until`` (exclusive)."""
    filters = Filters(since=since, until=until)
    if settings.reeval.source == "jsonl":
        directory = settings.reeval.datasets or settings.samples.jsonl.directory
        return read_dataset(directory, filters)
    return join_records(_topic(settings, since, until), filters)


def _topic(
    settings: Settings, since: datetime, until: datetime
) -> Iterator[tuple[str, int, bytes]]:
    kafka = settings.samples.kafka
    if not kafka.bootstrap_servers:
        raise ConfigError("reeval.source is kafka but samples.kafka.bootstrap_servers is empty")
    from kafka import TopicPartition  # noqa: PLC0415 - only with a Kafka source

    consumer: Any = kafka_consumer(consumer_config(kafka, "reeval-source", None))
    try:
        numbers = consumer.partitions_for_topic(kafka.topic)
        if not numbers:
            raise DatasetError(f"no topic {kafka.topic!r} on {','.join(kafka.bootstrap_servers)}")
        partitions = [TopicPartition(kafka.topic, p) for p in sorted(numbers)]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        since_ms, until_ms = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
        try:
            starts = consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
        except Exception as exc:  # a broker without timestamp lookups: read from the start
            log.info("no offsets by time (%s): reading %s from the start", exc, kafka.topic)
            consumer.seek_to_beginning(*partitions)
        else:
            for tp in partitions:
                found = starts.get(tp)
                consumer.seek(tp, found.offset if found is not None else ends[tp])
        open_partitions = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
        while open_partitions:
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                for message in batch:
                    if message.offset >= ends[tp] or message.timestamp >= until_ms:
                        open_partitions.discard(tp)
                        break
                    yield (
                        f"{tp.topic} partition {tp.partition} offset",
                        message.offset,
                        message.value,
                    )
            for tp in list(open_partitions):
                if consumer.position(tp) >= ends[tp]:
                    open_partitions.discard(tp)
    finally:
        consumer.close()
