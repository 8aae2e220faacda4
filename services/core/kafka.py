"""Kafka wiring shared by the services (kafka-python): one way to build producers and consumers.

- Producers are idempotent with ``acks=all``: a produce acknowledged by the broker is durable and
  a retried send is never written twice.
- Consumers never auto-commit: a service commits offsets explicitly, *after* its effects are
  durable (the loop shape in each service numbers the steps).
- Errors from kafka-python are translated at this boundary into ``TransportError`` (retriable).
- A broker outage never ends a service: sends whose acknowledgement gates a commit go through
  ``PendingSends``, which flushes with a bounded wait, re-sends what the producer gave up on and
  reports "not yet" instead of raising (the loop keeps polling and tries again).

Imports: kafka-python, prometheus_client (the lag and stall gauges) and the core
settings/errors/topics/progress modules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Gauge

from services.core.errors import TransportError
from services.core.kafka_security import kafka_client_config
from services.core.metrics import CoreMetrics
from services.core.progress import ProgressTracker
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision

T = TypeVar("T")

log = logging.getLogger("tether.kafka")


def layout_from(settings: TetherSettings) -> TopicLayout:
    return TopicLayout(
        prefix=settings.topic_prefix,
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
        tenant_partitions=settings.tenant_partitions,
    )


def make_producer(settings: TetherSettings, client_id: str, **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        **kafka_client_config(settings),
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
    group_id: str | None,
    topics: Iterable[str] = (),
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer of ``group_id`` (``None``: a reader outside any group, for assign/seek)."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        **kafka_client_config(settings),
        "client_id": f"{settings.kafka_client_id_prefix}-{group_id or 'reader'}",
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
            **kafka_client_config(settings),
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


@dataclass
class _Pending:
    send: Callable[[], Any]
    future: Any = None  # None: not handed to the producer yet (or to be sent again)


class PendingSends:
    """Sends whose acknowledgement gates an offset commit, kept until Kafka acknowledged each.

    ``add(send)`` calls ``send()`` (a function that produces one message and returns its future)
    and remembers it; ``settle(timeout)`` flushes for at most ``timeout`` seconds and returns
    True once every send is acknowledged. Nothing here raises on a broker outage:

    - a flush that times out (``KafkaTimeoutError``) -> False, the futures stay pending;
    - a send the producer gave up on (``delivery_timeout_ms`` passed) -> ``send()`` is called
      again at the next ``settle`` (the message is rebuilt: same content, a new future);
    - ``send()`` itself failing (no metadata within ``max_block_ms``) -> retried the same way.

    The caller commits only after ``settle`` returned True, so a message is never lost; a
    message the broker stored but whose acknowledgement was lost may be written twice (a
    re-send), which every consumer of Tether's topics tolerates (ids are deterministic).
    Single-threaded: call it from the loop that owns the producer's sends.
    """

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._items: list[_Pending] = []
        self.resent = 0
        self.flush_timeouts = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, send: Callable[[], Any]) -> None:
        item = _Pending(send)
        self._send(item)
        self._items.append(item)

    def _send(self, item: _Pending) -> None:
        try:
            item.future = item.send()
        except (KafkaError, TransportError) as exc:
            log.warning("send failed (%s): sent again at the next flush", type(exc).__name__)
            item.future = None

    def settle(self, timeout: float) -> bool:
        """Flush (at most ``timeout`` seconds); True when every send is acknowledged."""
        if not self._items:
            return True
        for item in self._items:
            if item.future is None:
                self._send(item)
        try:
            self._producer.flush(timeout=timeout)
        except KafkaError as exc:  # KafkaTimeoutError: the broker is away; try again later
            self.flush_timeouts += 1
            log.warning("flush not acknowledged within %.1fs (%s)", timeout, type(exc).__name__)
        waiting: list[_Pending] = []
        for item in self._items:
            future = item.future
            if future is None or not future.is_done:
                waiting.append(item)
            elif future.failed():
                log.warning("send failed (%s): sending it again", type(future.exception).__name__)
                self.resent += 1
                item.future = None
                waiting.append(item)
        self._items = waiting
        return not waiting


def partition_lag(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Per owned partition: high watermark (from the last fetch) minus the consumer's position.

    Local state only, no request; a partition without a fetch yet (or without a known position)
    is left out. Call it from the thread that polls (the consumer is not thread-safe)."""
    positions = partition_positions(consumer)
    ends = {p: e for p in positions if (e := consumer.highwater(TopicPartition(*p))) is not None}
    return {p: max(0, ends[p] - positions[p]) for p in positions if p in ends}


def partition_positions(consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
    """Per owned partition with a known position: the next offset the consumer will return."""
    positions: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        try:
            position = consumer.position(tp, timeout_ms=0)
        except KafkaError:
            continue
        if position is not None:
            positions[(tp.topic, tp.partition)] = int(position)
    return positions


def partition_ends(
    consumer: KafkaConsumer, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Log end offsets: the broker's answer (a paused partition is not fetched, so its high
    watermark would stay stale), the last fetch's high watermark where the request fails."""
    tps = [TopicPartition(t, p) for t, p in partitions]
    ends = {(tp.topic, tp.partition): h for tp in tps if (h := consumer.highwater(tp)) is not None}
    if not tps:
        return ends
    try:
        answer = consumer.end_offsets(tps, timeout_ms=END_OFFSETS_TIMEOUT_MS)
    except KafkaError as exc:
        log.debug("end offsets unavailable (%s): high watermarks used", type(exc).__name__)
        return ends
    for tp, offset in answer.items():
        key = (tp.topic, tp.partition)
        ends[key] = max(int(offset), ends.get(key, 0))
    return ends


END_OFFSETS_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class ProgressGauges:
    """The stall-detection gauges (``CoreMetrics.partition_stalled`` / ``..._since_advance``)."""

    stalled: Gauge
    seconds_since_advance: Gauge


def progress_exporter(
    metrics: CoreMetrics, group: str, stall_after_seconds: float
) -> ConsumerLagExporter:
    """The lag exporter with stall detection, as every consuming service wires it (add
    ``exporter.healthy`` as a readiness check)."""
    return ConsumerLagExporter(
        metrics.consumer_lag,
        group,
        progress=ProgressTracker(stall_after_seconds),
        gauges=ProgressGauges(metrics.partition_stalled, metrics.partition_seconds_since_advance),
    )


class ConsumerLagExporter:
    """Keeps ``tether_consumer_lag_messages{group,topic,partition}`` current for one consumer:
    ``update(consumer)`` after a poll (at most every ``interval`` seconds); partitions the
    consumer no longer owns (a rebalance) are removed, so another replica's series takes over.

    With a ``progress`` tracker (``services.core.progress``) it also detects stalls: the end
    offsets come from the broker (one ``ListOffsets`` request per update), every owned
    partition's position is fed to the tracker, ``gauges`` export per partition whether it is
    stalled and the seconds since it last advanced, and each stall episode is logged once at
    WARNING when it begins (naming group, topic and partition) and at INFO when it ends. The
    service adds ``progress.healthy`` as a readiness check."""

    def __init__(
        self,
        gauge: Gauge,
        group: str,
        interval: float = 1.0,
        *,
        progress: ProgressTracker | None = None,
        gauges: ProgressGauges | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gauge = gauge
        self._group = group
        self._interval = interval
        self._next = 0.0
        self._exported: set[tuple[str, int]] = set()
        self.progress = progress
        self._gauges = gauges
        self.clock = clock

    def healthy(self) -> bool:
        """Readiness: no owned partition is stalled (always true without a tracker)."""
        return self.progress is None or self.progress.healthy()

    def update(self, consumer: KafkaConsumer) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self._interval
        if self.progress is None:
            lag = partition_lag(consumer)
        else:
            positions = partition_positions(consumer)
            ends = partition_ends(consumer, positions)
            lag = {p: max(0, ends[p] - positions[p]) for p in positions if p in ends}
            self._observe(positions, ends, now)
        for topic, partition in self._exported - set(lag):
            self._gauge.remove(self._group, topic, str(partition))
        for (topic, partition), messages in lag.items():
            self._gauge.labels(self._group, topic, str(partition)).set(messages)
        self._exported = set(lag)

    def _observe(
        self, positions: dict[tuple[str, int], int], ends: dict[tuple[str, int], int], now: float
    ) -> None:
        assert self.progress is not None
        before = set(self.progress.snapshot())
        observed = self.progress.observe(positions, ends, now)
        snapshot = self.progress.snapshot()
        for topic, partition in observed.began:
            state = snapshot[(topic, partition)]
            log.warning(
                "partition %s-%d stalled: group %s at offset %d of %d, no progress for %.0fs",
                topic,
                partition,
                self._group,
                state.position,
                state.end,
                now - state.advanced_at,
                extra={
                    "fields": {
                        "group": self._group,
                        "topic": topic,
                        "partition": partition,
                        "lag": state.lag,
                    }
                },
            )
        for topic, partition in observed.ended:
            log.info("partition %s-%d progressing again (group %s)", topic, partition, self._group)
        if self._gauges is None:
            return
        for topic, partition in before - set(snapshot):
            for gauge in (self._gauges.stalled, self._gauges.seconds_since_advance):
                gauge.remove(self._group, topic, str(partition))
        for (topic, partition), state in snapshot.items():
            labels = (self._group, topic, str(partition))
            self._gauges.stalled.labels(*labels).set(1 if state.stalled else 0)
            self._gauges.seconds_since_advance.labels(*labels).set(
                0.0 if state.lag == 0 else max(0.0, now - state.advanced_at)
            )


def retry_while_unreachable(
    action: Callable[[], T],
    stopping: Callable[[], bool],
    what: str,
    max_delay: float = 10.0,
) -> T:
    """Run ``action`` until Kafka lets it succeed: a service started during a broker outage
    waits for the broker (readiness stays false) instead of exiting. ``TransportError`` (and any
    ``KafkaError`` that escaped) is retried with back-off; once ``stopping()`` the last error is
    raised. Anything else (a configuration error, a bug) is raised at once."""
    delay = 0.5
    while True:
        try:
            return action()
        except (TransportError, KafkaError) as exc:
            if stopping():
                raise
            log.warning(
                "%s: Kafka unreachable (%s): retrying in %.1fs", what, type(exc).__name__, delay
            )
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
