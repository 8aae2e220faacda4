"""Stall detection on a real consumer (``services.core.kafka.ConsumerLagExporter`` with a
``services.core.progress`` tracker, as the mapper and the loader wire it): a partition forced to
stay paused is reported — gauges, readiness, one WARNING — and recovers when resumed."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from services.core.kafka import make_admin, make_consumer, make_producer, progress_exporter
from services.core.metrics import CoreMetrics
from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision


def provisioned(bootstrap: str, prefix: str) -> tuple[TetherSettings, TopicLayout]:
    settings = TetherSettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, topic_partitions=2
    )
    layout = TopicLayout(prefix=prefix, partitions=2)
    admin = make_admin(settings)
    try:
        provision(admin, layout)
    finally:
        admin.close()
    return settings, layout


def test_a_partition_kept_paused_is_reported_stalled_after_the_configured_time(
    kafka_bootstrap: str, topic_prefix: str, caplog: Any
) -> None:
    """The exporter with stall detection on a real consumer (the clock is the test's): the
    paused partition's end offset comes from the broker (it is not fetched, so no high
    watermark), it stalls after ``stall_after_seconds``, once; the flowing one never does."""
    settings, layout = provisioned(kafka_bootstrap, topic_prefix)
    topic = layout.outcomes
    registry = CollectorRegistry()
    group = f"{topic_prefix}-stall"
    exporter = progress_exporter(CoreMetrics(registry, "test"), group, stall_after_seconds=120)
    now = [1000.0]
    exporter.clock = lambda: now[0]
    consumer = make_consumer(settings, group)
    paused, flowing = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer.assign([paused, flowing])
    consumer.seek_to_beginning(paused, flowing)
    consumer.pause(paused)
    producer = make_producer(settings, "test")

    def sample(name: str, partition: int) -> float | None:
        labels = {"group": group, "topic": topic, "partition": str(partition)}
        return registry.get_sample_value(name, labels)

    def step(seconds: float) -> None:
        for partition in (0, 1):
            producer.send(topic, key=None, value=b"x", partition=partition)
        producer.flush()
        deadline = time.monotonic() + 30
        before = consumer.position(flowing)
        while consumer.position(flowing) == before:  # the flowing partition advances
            assert time.monotonic() < deadline
            consumer.poll(timeout_ms=200)
        now[0] += seconds
        exporter.update(consumer)

    caplog.set_level(logging.INFO, logger="tether.kafka")
    try:
        step(0)
        step(60)
        assert sample("tether_consumer_partition_stalled", 0) == 0 and exporter.healthy()
        assert sample("tether_consumer_lag_messages", 0) == 2
        step(61)  # 121 s without an advance, with lag
        assert sample("tether_consumer_partition_stalled", 0) == 1
        assert sample("tether_consumer_partition_stalled", 1) == 0
        assert sample("tether_consumer_partition_seconds_since_advance", 0) == 121
        assert not exporter.healthy()
        step(30)
        stalls = [r for r in caplog.records if f"{topic}-0 stalled" in r.getMessage()]
        assert [r.levelno for r in stalls] == [logging.WARNING], "logged once per episode"
        consumer.resume(paused)
        deadline = time.monotonic() + 30
        while consumer.position(paused) < 4:
            assert time.monotonic() < deadline
            consumer.poll(timeout_ms=200)
        now[0] += 1
        exporter.update(consumer)
        assert sample("tether_consumer_partition_stalled", 0) == 0 and exporter.healthy()
    finally:
        producer.close()
        consumer.close()
