"""Kafka wiring shared by the services (kafka-python): one way to build producers and consumers.

- Producers are idempotent with ``acks=all``: a produce acknowledged by the broker is durable and
  a retried send is never written twice.
- Consumers never auto-commit: a service commits offsets explicitly, *after* its effects are
  durable (the loop shape in each service numbers the steps).
- Errors from kafka-python are translated at this boundary into ``TransportError`` (retriable).

Imports: kafka-python, prometheus_client (the lag gauge) and the core settings/errors/topics
modules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Gauge

from services.core.errors import TransportError
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision


def layout_from(settings: TetherSettings) -> TopicLayout:
    return TopicLayout(
        prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
    )


def make_producer(settings: TetherSettings, client_id: str, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "client_id": f"{settings.kafka_client_id_prefix}-{client_id}",
        "acks": "all",
        "enable_idempotence": True,
        "max_in_flight_requests_per_connection": 5,
        "retries": 2**31 - 1,
        "delivery_timeout_ms": 120_000,
        "linger_ms": 5,
        "compression_type": None,
    }
    config.update(overrides)
    try:
        return KafkaProducer(**config)
    except KafkaError as exc:
        raise TransportError(f"cannot create Kafka producer: {type(exc).__name__}") from exc


def make_consumer(
    settings: TetherSettings,
    group_id: str,
    topics: Iterable[str] = (),
    **overrides: Any,
) -> KafkaConsumer:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "client_id": f"{settings.kafka_client_id_prefix}-{group_id}",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.max_poll_records,
        "isolation_level": "read_committed",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    config.update(overrides)
    try:
        consumer = KafkaConsumer(**config)
    except KafkaError as exc:
        raise TransportError(f"cannot create Kafka consumer: {type(exc).__name__}") from exc
    topics = list(topics)
    if topics:
        consumer.subscribe(topics)
    return consumer


def make_admin(settings: TetherSettings) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
            client_id=f"{settings.kafka_client_id_prefix}-admin",
        )
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka: {type(exc).__name__}") from exc


def provision_topics(settings: TetherSettings) -> list[str]:
    """Create every missing topic of the configured layout (idempotent)."""
    admin = make_admin(settings)
    try:
        return provision(admin, layout_from(settings))
    finally:
        admin.close()


def next_offsets(records: Iterable[Any]) -> dict[TopicPartition, int]:
    """The offsets to commit after processing ``records``: last offset + 1 per partition."""
    offsets: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
    return offsets


def commit_offsets(consumer: KafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    """Synchronously commit ``offsets`` (from :func:`next_offsets`) for the consumer's group."""
    if not offsets:
        return
    try:
        consumer.commit(
            offsets={tp: OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        )
    except KafkaError as exc:
        raise TransportError(f"offset commit failed: {type(exc).__name__}") from exc


def partition_lag(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Per owned partition: high watermark (from the last fetch) minus the consumer's position.

    Local state only, no request; a partition without a fetch yet (or without a known position)
    is left out. Call it from the thread that polls (the consumer is not thread-safe)."""
    lag: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=0)
        except KafkaError:
            continue
        if position is not None:
            lag[(tp.topic, tp.partition)] = max(0, high - position)
    return lag


class ConsumerLagExporter:
    """Keeps ``tether_consumer_lag_messages{group,topic,partition}`` current for one consumer:
    ``update(consumer)`` after a poll (at most every ``interval`` seconds); partitions the
    consumer no longer owns (a rebalance) are removed, so another replica's series takes over."""

    def __init__(self, gauge: Gauge, group: str, interval: float = 1.0) -> None:
        self._gauge = gauge
        self._group = group
        self._interval = interval
        self._next = 0.0
        self._exported: set[tuple[str, int]] = set()

    def update(self, consumer: KafkaConsumer) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        lag = partition_lag(consumer)
        for topic, partition in self._exported - set(lag):
            self._gauge.remove(self._group, topic, str(partition))
        for (topic, partition), messages in lag.items():
            self._gauge.labels(self._group, topic, str(partition)).set(messages)
        self._exported = set(lag)
