"""Fixtures for the replay tests: the CLI's environment and small Kafka helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from services.core.settings import TetherSettings
from services.core.topics import TopicLayout, provision
from services.replay.main import main

PARTITIONS = 2


@pytest.fixture
def layout(kafka_bootstrap: str, topic_prefix: str) -> TopicLayout:
    """The test's own topics, provisioned."""
    the_layout = TopicLayout(prefix=topic_prefix, partitions=PARTITIONS)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        provision(admin, the_layout)
    finally:
        admin.close()
    return the_layout


@pytest.fixture
def replay_env(
    monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> dict[str, str]:
    """What `tether replay` reads: TETHER_* variables (as in a Kubernetes Job)."""
    env = {
        "TETHER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TETHER_TOPIC_PREFIX": topic_prefix,
        "TETHER_TOPIC_PARTITIONS": str(PARTITIONS),
        "TETHER_SECRETS_DIR": str(tmp_path / "no-secrets"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    TetherSettings.load()  # fails early when the environment is unusable
    return env


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    the_producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    yield the_producer
    the_producer.close()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run `tether replay ARGV --json`; the exit code and the parsed JSON (or stderr)."""
    code = main([*argv, "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out) if out.out.strip() else out.err


def committed(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}
    finally:
        admin.close()


def group_state(bootstrap: str, group: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return str(admin.describe_groups([group])[group]["group_state"])
    finally:
        admin.close()


def wait_group_empty(bootstrap: str, group: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while group_state(bootstrap, group) not in ("Empty", "Dead"):
        assert time.monotonic() < deadline, f"group {group} did not become empty"
        time.sleep(0.2)


def consume_all(bootstrap: str, group: str, topics: list[str], expected: int) -> KafkaConsumer:
    """A member of ``group`` that consumed and committed ``expected`` messages (left open)."""
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen = 0
    deadline = time.monotonic() + 60
    while seen < expected:
        assert time.monotonic() < deadline, f"consumed only {seen} of {expected}"
        seen += sum(len(batch) for batch in consumer.poll(timeout_ms=500).values())
    consumer.commit()
    return consumer


def read_partition(bootstrap: str, topic: str, partition: int) -> list[tuple[bytes | None, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + 30
        while consumer.position(tp) < end:
            assert time.monotonic() < deadline
            for record in consumer.poll(timeout_ms=200).get(tp, []):
                out.append((record.key, record.value))
        return out
    finally:
        consumer.close()
