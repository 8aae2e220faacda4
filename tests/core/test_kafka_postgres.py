"""Integration through the real broker and the real database started by scripts/infra.py."""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from services.core.codec import AvroCodec
from services.core.kafka import (
    ConsumerLagExporter,
    commit_offsets,
    make_admin,
    make_consumer,
    make_producer,
    next_offsets,
)
from services.core.metrics import CoreMetrics
from services.core.schema_release import DEFAULT_SCHEMAS_DIR, load_sample, sample_to_datum
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision


def settings_for(bootstrap: str, prefix: str) -> TetherSettings:
    return TetherSettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, topic_partitions=2
    )


def provisioned(bootstrap: str, prefix: str) -> tuple[TetherSettings, TopicLayout]:
    """Settings and layout for the test's own topics, provisioned."""
    settings = settings_for(bootstrap, prefix)
    layout = TopicLayout(prefix=prefix, partitions=2)
    admin = make_admin(settings)
    try:
        provision(admin, layout)
    finally:
        admin.close()
    return settings, layout


def test_provisioning_creates_every_topic_with_its_settings_and_is_idempotent(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    layout = TopicLayout(prefix=topic_prefix, partitions=2)
    admin = make_admin(settings_for(kafka_bootstrap, topic_prefix))
    try:
        created = provision(admin, layout)
        assert sorted(created) == sorted(layout.all_topics())
        assert provision(admin, layout) == []  # second run: nothing to do
        assert _cleanup_policy(admin, layout.cursors) == "compact"
        assert _cleanup_policy(admin, layout.outcomes) == "delete"
        described = admin.describe_topics([layout.changes("wix", "contacts"), layout.cursors])
        partitions = {t["name"]: len(t["partitions"]) for t in described}
        assert partitions == {layout.changes("wix", "contacts"): 2, layout.cursors: 1}
    finally:
        admin.close()


def _cleanup_policy(admin: Any, topic: str) -> str:
    """The topic's cleanup.policy as the broker reports it (configs appear shortly after create)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    deadline = time.monotonic() + 15
    while True:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        configs = described["topic"][topic] if isinstance(described, dict) else {}
        if "cleanup.policy" in configs or time.monotonic() > deadline:
            return str(configs["cleanup.policy"]["value"])
        time.sleep(0.2)


def test_avro_events_round_trip_and_a_restarted_group_resumes_at_its_commit(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings, layout = provisioned(kafka_bootstrap, topic_prefix)
    topic = layout.changes("poweroffice", "employees")
    codec = AvroCodec()
    sample = sample_to_datum(load_sample(DEFAULT_SCHEMAS_DIR / "samples", "ChangeEvent"))
    producer = make_producer(settings, "test")
    for i in range(10):
        event = {**sample, "event_id": str(uuid.uuid4()), "record_id": str(i)}
        producer.send(
            topic,
            key=f"default/poweroffice/employees/{i}".encode(),
            value=codec.encode("ChangeEvent", event),
        )
    producer.flush()
    producer.close()

    group = f"{topic_prefix}-group"
    consumer = make_consumer(settings, group, [topic])
    seen: list[str] = []
    records = []
    while len(seen) < 4:
        for batch in consumer.poll(timeout_ms=1000, max_records=4 - len(seen)).values():
            for record in batch:
                seen.append(codec.decode(record.value, "ChangeEvent")["record_id"])
                records.append(record)
    commit_offsets(consumer, next_offsets(records))
    consumer.close()

    consumer = make_consumer(settings, group, [topic])
    rest: list[str] = []
    while len(seen) + len(rest) < 10:
        for batch in consumer.poll(timeout_ms=1000).values():
            rest.extend(codec.decode(r.value, "ChangeEvent")["record_id"] for r in batch)
    consumer.close()
    assert sorted(seen + rest, key=int) == [str(i) for i in range(10)]
    assert not set(seen) & set(rest), "a restarted group re-read records it had committed"
    committed_partitions = {TopicPartition(r.topic, r.partition) for r in records}
    assert committed_partitions


def test_postgres_round_trip(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO t VALUES (%s, %s)", (1, "Åse Sæther"))
        conn.commit()
        row = conn.execute("SELECT name FROM t WHERE id = %s", (1,)).fetchone()
    assert row == ("Åse Sæther",)


def test_consumer_lag_is_exported_per_group_and_owned_partition(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings, layout = provisioned(kafka_bootstrap, topic_prefix)
    topic = layout.outcomes
    producer = make_producer(settings, "test")
    for _ in range(10):
        producer.send(topic, key=None, value=b"x", partition=0)
    producer.flush()
    producer.close()

    registry = CollectorRegistry()
    gauge = CoreMetrics(registry, "test").consumer_lag
    group = f"{topic_prefix}-lag"
    exporter = ConsumerLagExporter(gauge, group, interval=0)
    consumer = make_consumer(settings, group)
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])

    def lag(partition: int) -> float | None:
        return registry.get_sample_value(
            "tether_consumer_lag_messages",
            {"group": group, "topic": topic, "partition": str(partition)},
        )

    try:
        read = 0
        while read < 4:
            for batch in consumer.poll(timeout_ms=1000, max_records=4 - read).values():
                read += len(batch)
        exporter.update(consumer)
        assert lag(0) == 6
        # Partition 1 is empty: lag 0 once fetched (or not exported before its first fetch).
        assert lag(1) in (0, None)
        while read < 10:
            for batch in consumer.poll(timeout_ms=1000).values():
                read += len(batch)
        exporter.update(consumer)
        assert lag(0) == 0
        # A partition the consumer no longer owns disappears (another replica reports it).
        consumer.assign([TopicPartition(topic, 1)])
        exporter.update(consumer)
        assert lag(0) is None
    finally:
        consumer.close()
