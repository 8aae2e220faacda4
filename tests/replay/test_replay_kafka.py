"""`tether replay` against the real Kafka: dry run, execute, refusal, dead-letter re-drive.

The loader stage is used for the offset tests (its input, the command topics, needs no decoding
to plan); the dead letters are parked with the core's own ``DeadLetterWriter``.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from services.core.codec import AvroCodec
from services.core.deadletters import DeadLetterWriter
from services.core.errors import DecodeError
from services.core.metrics import CoreMetrics
from services.core.topics import TopicLayout, link_key, record_key
from services.replay.stages import default_group

from .conftest import (
    committed,
    consume_all,
    read_partition,
    run_cli,
    wait_group_empty,
)

pytestmark = pytest.mark.integration

MESSAGES_PER_PARTITION = 5


def fill_commands(producer: KafkaProducer, layout: TopicLayout) -> list[str]:
    """Five opaque messages on each partition of two command topics; the topics used."""
    topics = layout.all_commands()[:2]
    for topic in topics:
        for partition in range(layout.partitions):
            for i in range(MESSAGES_PER_PARTITION):
                producer.send(topic, key=link_key(f"l{i}"), value=b"cmd", partition=partition)
    producer.flush()
    return topics


def test_dry_run_lists_the_plan_and_changes_nothing_then_execute_moves_the_offsets(
    kafka_bootstrap: str,
    layout: TopicLayout,
    replay_env: dict[str, str],
    producer: KafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = default_group("loader", layout.prefix)
    topics = fill_commands(producer, layout)
    consume_all(
        kafka_bootstrap, group, topics, 2 * layout.partitions * MESSAGES_PER_PARTITION
    ).close()  # the stage stopped
    wait_group_empty(kafka_bootstrap, group)
    before = committed(kafka_bootstrap, group)
    assert set(before.values()) == {MESSAGES_PER_PARTITION}

    # Dry run: per topic/partition from, to (end), count — and nothing moves.
    code, planned = run_cli(capsys, "stage", "loader", "--from-offset", "2", "--topic", topics[0])
    assert code == 0
    rows = [p for p in planned["partitions"] if p["selected"]]
    assert {(p["topic"], p["partition"]) for p in rows} == {
        (topics[0], p) for p in range(layout.partitions)
    }
    assert all((p["start"], p["end"], p["count"]) == (2, 5, 3) for p in rows)
    assert all(p["committed"] == MESSAGES_PER_PARTITION for p in rows)
    assert planned["messages"] == 3 * layout.partitions
    assert committed(kafka_bootstrap, group) == before

    # Execute one partition by explicit offset: only that partition moves.
    code, done = run_cli(capsys, "stage", "loader", "--offset", f"{topics[0]}:1=1", "--execute")
    assert code == 0, done
    after = committed(kafka_bootstrap, group)
    assert after[(topics[0], 1)] == 1
    assert {tp: o for tp, o in after.items() if tp != (topics[0], 1)} == {
        tp: o for tp, o in before.items() if tp != (topics[0], 1)
    }

    # Execute from a time before everything: every partition of every input back to 0.
    code, done = run_cli(capsys, "stage", "loader", "--from-time", "1d", "--execute")
    assert code == 0, done
    after = committed(kafka_bootstrap, group)
    assert {after[(t, p)] for t in topics for p in range(layout.partitions)} == {0}
    assert done["messages"] == 2 * layout.partitions * MESSAGES_PER_PARTITION


def test_execute_refuses_while_the_group_has_members(
    kafka_bootstrap: str,
    layout: TopicLayout,
    replay_env: dict[str, str],
    producer: KafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = default_group("loader", layout.prefix)
    topics = fill_commands(producer, layout)
    member = consume_all(
        kafka_bootstrap, group, topics, 2 * layout.partitions * MESSAGES_PER_PARTITION
    )
    try:
        before = committed(kafka_bootstrap, group)
        code, err = run_cli(capsys, "stage", "loader", "--earliest", "--execute")
        assert code == 1
        assert "active" in err and group in err
        assert committed(kafka_bootstrap, group) == before
    finally:
        member.close()


def test_unknown_topic_or_extractor_stage_is_a_usage_error(
    layout: TopicLayout, replay_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(capsys, "stage", "loader", "--earliest", "--topic", layout.outcomes)
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        run_cli(capsys, "stage", "extractor", "--earliest")
    assert "nothing to replay" in capsys.readouterr().err


def park(layout: TopicLayout, producer: KafkaProducer, **where: Any) -> None:
    codec = AvroCodec()
    writer = DeadLetterWriter(
        producer, codec, layout, "mapper", CoreMetrics(CollectorRegistry(), "mapper"), "default"
    )
    writer.park(where.pop("payload"), DecodeError("unknown fingerprint"), **where)
    producer.flush()


def test_dead_letters_are_listed_then_re_driven_byte_for_byte_once(
    kafka_bootstrap: str,
    layout: TopicLayout,
    replay_env: dict[str, str],
    producer: KafkaProducer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = layout.changes("wix", "contacts")
    key = record_key("default", "wix", "contacts", "c-1")
    payload = b"\xc3\x01payload-the-fixed-mapper-can-read"
    park(layout, producer, payload=payload, source_topic=source, partition=1, offset=7, key=key)
    # A dead letter from a topic the mapper does not consume is listed, never re-driven.
    foreign = layout.commands("wix", "contacts")
    park(layout, producer, payload=b"x", source_topic=foreign, partition=0, offset=1, key=None)
    before = {p: read_partition(kafka_bootstrap, source, p) for p in range(layout.partitions)}

    code, listed = run_cli(capsys, "deadletters", "mapper")
    assert code == 0
    assert (listed["dead_letters"], listed["redrivable"]) == (2, 1)
    redrivable = [d for d in listed["letters"] if d["redrivable"]]
    assert redrivable[0]["source_topic"] == source
    assert redrivable[0]["source_offset"] == 7
    assert redrivable[0]["error_class"] == "DecodeError"
    after_dry_run = {
        p: read_partition(kafka_bootstrap, source, p) for p in range(layout.partitions)
    }
    assert after_dry_run == before

    code, done = run_cli(capsys, "deadletters", "mapper", "--execute")
    assert code == 0 and done["redrivable"] == 1
    after = [
        m for p in range(layout.partitions) for m in read_partition(kafka_bootstrap, source, p)
    ]
    assert (key, payload) in after
    assert not [m for m in after if m[1] == b"x"]
    assert sum(len(v) for v in before.values()) + 1 == len(after)

    # The position is remembered: a second run offers nothing; --all lists both again.
    code, again = run_cli(capsys, "deadletters", "mapper")
    assert (code, again["dead_letters"]) == (0, 0)
    code, everything = run_cli(capsys, "deadletters", "mapper", "--all")
    assert everything["dead_letters"] == 2


def test_the_console_re_drives_exactly_the_dead_letters_it_names(
    kafka_bootstrap: str,
    layout: TopicLayout,
    replay_env: dict[str, str],
    producer: KafkaProducer,
) -> None:
    from services.core.settings import TetherSettings
    from services.replay.deadletters import plan_redrive, redrive_selected
    from services.replay.kafka_ops import KafkaOps

    source = layout.changes("wix", "contacts")
    for n in range(3):
        key = record_key("default", "wix", "contacts", f"c-{n}")
        park(
            layout,
            producer,
            payload=f"p{n}".encode(),
            source_topic=source,
            partition=0,
            offset=n,
            key=key,
        )
    settings = TetherSettings.load()
    codec = AvroCodec()
    ops = KafkaOps(settings)
    try:
        ids = [d.dead_letter_id for d in plan_redrive(ops, codec, layout, "mapper").letters]
        assert len(ids) == 3
        done = redrive_selected(settings, ops, codec, layout, "mapper", [ids[1], "nope"])
        assert done.redriven == (ids[1],) and done.missing == ("nope",)
        payloads = [
            m[1]
            for p in range(layout.partitions)
            for m in read_partition(kafka_bootstrap, source, p)
        ]
        assert payloads.count(b"p1") == 1 and b"p0" not in payloads and b"p2" not in payloads
        # naming ids leaves the position alone: the CLI still offers all three
        assert len(plan_redrive(ops, codec, layout, "mapper").letters) == 3
        rest = redrive_selected(settings, ops, codec, layout, "mapper")
        assert rest.redriven == tuple(ids)
        assert plan_redrive(ops, codec, layout, "mapper").letters == ()
    finally:
        ops.close()
