"""The chaos suite's view of Kafka, read the way an operator's tools would.

- ``group_positions``: per consumer group, every partition of the topics it consumes with its
  committed offset and end offset — a partition whose commit stays behind its end after the
  pipeline went quiet is **stranded**;
- ``produce_poison``: garbage bytes onto a topic (acknowledged), returning where each landed;
- ``dead_letters``: every dead letter of the deployment with where its input came from, so the
  suite can check that each poison message became exactly that.

Imports: kafka-python and the core codec/topics modules only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import TopicPartition

from services.core.codec import AvroCodec
from services.core.errors import DecodeError
from services.core.kafka import make_admin, make_consumer, make_producer
from services.core.settings import TetherSettings
from services.core.topics import STAGES, TopicLayout


def _settings(bootstrap: str) -> TetherSettings:
    """The environment's Kafka settings (security included) for this broker: every client is
    built by the project's factories, so the tools connect as the services do."""
    settings: TetherSettings = TetherSettings.load(kafka_bootstrap_servers=bootstrap)
    return settings


@dataclass(frozen=True)
class Position:
    group: str
    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def behind(self) -> int:
        return self.end - (self.committed or 0)


@dataclass(frozen=True)
class Landed:
    topic: str
    partition: int
    offset: int


def consumed_topics(layout: TopicLayout, prefix: str) -> dict[str, list[str]]:
    """The consumer groups of one deployment and the topics each consumes (mapper, loader)."""
    return {
        f"{prefix}-mapper": [*layout.all_changes(), layout.outcomes, layout.operator_actions],
        f"{prefix}-loader": layout.all_commands(),
    }


def group_positions(bootstrap: str, groups: dict[str, list[str]]) -> list[Position]:
    admin = make_admin(_settings(bootstrap))
    consumer = make_consumer(_settings(bootstrap), None)
    try:
        positions: list[Position] = []
        offsets = admin.list_group_offsets(dict.fromkeys(groups))
        for group, topics in groups.items():
            committed = {
                (tp.topic, tp.partition): meta.offset for tp, meta in offsets.get(group, {}).items()
            }
            tps = [
                TopicPartition(topic, partition)
                for topic in topics
                for partition in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            ends = consumer.end_offsets(tps)
            for tp in tps:
                positions.append(
                    Position(
                        group,
                        tp.topic,
                        tp.partition,
                        committed.get((tp.topic, tp.partition)),
                        int(ends[tp]),
                    )
                )
        return positions
    finally:
        consumer.close()
        admin.close()


def stranded(positions: Iterable[Position]) -> list[dict[str, Any]]:
    """Partitions whose group has not committed up to the end (something is left unconsumed)."""
    return [
        {
            "group": p.group,
            "topic": p.topic,
            "partition": p.partition,
            "committed": p.committed,
            "end": p.end,
        }
        for p in positions
        if p.end > 0 and (p.committed is None or p.committed < p.end)
    ]


def produce_poison(bootstrap: str, topic: str, payloads: list[bytes]) -> list[Landed]:
    """Produce each payload (key ``chaos-poison``) round-robin over the topic's partitions."""
    producer = make_producer(_settings(bootstrap), "chaos-poison")
    try:
        partitions = sorted(producer.partitions_for(topic))
        futures = [
            producer.send(
                topic, value=payload, key=b"chaos-poison", partition=partitions[i % len(partitions)]
            )
            for i, payload in enumerate(payloads)
        ]
        producer.flush(timeout=30)
        landed = []
        for future in futures:
            meta = future.get(timeout=30)
            landed.append(Landed(meta.topic, meta.partition, meta.offset))
        return landed
    finally:
        producer.close(timeout=10)


def dead_letters(bootstrap: str, layout: TopicLayout, codec: AvroCodec) -> list[dict[str, Any]]:
    """Every dead letter on the deployment's dead-letter topics (stage, source, error class)."""
    consumer = make_consumer(_settings(bootstrap), None)
    found: list[dict[str, Any]] = []
    try:
        tps = [
            TopicPartition(layout.deadletters(stage), partition)
            for stage in STAGES
            for partition in sorted(consumer.partitions_for_topic(layout.deadletters(stage)) or ())
        ]
        if not tps:
            return found
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise TimeoutError("reading the dead-letter topics took longer than 60 s")
            for batch in consumer.poll(timeout_ms=500).values():
                for message in batch:
                    try:
                        letter = codec.decode(message.value, "DeadLetter")
                    except DecodeError:
                        found.append({"stage": "?", "undecodable": True})
                        continue
                    found.append(
                        {
                            "stage": letter["stage"],
                            "source_topic": letter.get("source_topic"),
                            "source_partition": letter.get("source_partition"),
                            "source_offset": letter.get("source_offset"),
                            "error_class": letter.get("error_class"),
                        }
                    )
        return found
    finally:
        consumer.close()
