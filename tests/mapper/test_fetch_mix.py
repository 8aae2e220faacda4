"""The mapper's polled batches span partitions (issue 12: the stages of an initial sync overlap).

kafka-python returns a poll's records partition by partition, each partition up to what one fetch
took from it (``max_partition_fetch_bytes``, Kafka's default 1 MiB: ~1,300 change events). With
that default a 500-record batch held one partition: the mapper handled hundreds of PowerOffice
changes (the loader busy), then hundreds of outcomes or Wix echoes (no command: the loader, the
webhooks and the extractor idle), in turns. ``TETHER_MAPPER_MAX_PARTITION_FETCH_BYTES`` caps one
partition's share of a batch, so every batch mixes the topics that have something to read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.core.topics import record_key
from tests.mapper.support import (
    Harness,
    employee,
    harness,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

PER_TOPIC = 1000
MAX_RECORDS = 500


@pytest.fixture
def loaded(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Iterator[Harness]:
    """A Wix change topic and an employee change topic holding ``PER_TOPIC`` events each."""
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h:
        events = [wix_event(wix_contact(f"w{i}", f"W{i}", "Dahl"), ts(1)) for i in range(PER_TOPIC)]
        events += [
            po_event("employees", employee(1000 + i, f"E{i}", "Dahl"), ts(2))
            for i in range(PER_TOPIC)
        ]
        for datum in events:
            topic = h.layout.changes(datum["system"], datum["resource"])
            key = record_key(
                datum["tenant"], datum["system"], datum["resource"], datum["record_id"]
            )
            h.producer.send(topic, key=key, value=h.codec.encode("ChangeEvent", datum))
        h.producer.flush(timeout=30)
        h.sent += len(events)
        yield h


def _polls(h: Harness, **overrides: Any) -> list[dict[Any, list[Any]]]:
    """Start a mapper (everything sent is unread) and poll its consumer until all arrived."""
    mapper = h.start(replay=True, **overrides)
    assert mapper.consumer is not None
    polls: list[dict[Any, list[Any]]] = []
    received = 0
    for _ in range(200):
        polled = mapper.consumer.poll(timeout_ms=200, max_records=MAX_RECORDS)
        if polled:
            polls.append(polled)
            received += sum(len(records) for records in polled.values())
        if received >= 2 * PER_TOPIC:
            break
    assert received == 2 * PER_TOPIC
    return polls


def _largest_share(polls: list[dict[Any, list[Any]]]) -> int:
    """The most records one partition contributed to one poll."""
    return max(len(records) for polled in polls for records in polled.values())


@pytest.mark.integration
def test_a_poll_takes_at_most_one_fetch_size_from_a_partition(loaded: Harness) -> None:
    polls = _polls(loaded)
    smallest = min(len(r.value) for polled in polls for rs in polled.values() for r in rs)
    fetch_bytes = loaded.settings.mapper_max_partition_fetch_bytes
    assert _largest_share(polls) <= fetch_bytes // smallest < MAX_RECORDS
    assert any(len({tp.topic for tp in polled}) > 1 for polled in polls)


@pytest.mark.integration
def test_with_kafkas_default_fetch_size_a_poll_is_one_partition(loaded: Harness) -> None:
    """The contrast: at 1 MiB a partition fills the whole batch."""
    polls = _polls(loaded, mapper_max_partition_fetch_bytes=1024 * 1024)
    assert _largest_share(polls) == MAX_RECORDS
