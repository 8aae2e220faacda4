"""Wix first (``services.mapper.gate``): the pure rules, the gate on a real consumer, the loop.

The race it closes: Kafka orders nothing between topics, so a poll can hand the mapper an employee
before the Wix contact (produced earlier) it matches by phone — and Wix has no duplicate rule for
phones. The loop test sends a few hundred contacts and then that employee, with small polls, and
checks it is linked, never created.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from services.core.topics import TopicLayout
from services.mapper.gate import (
    WixFirstGate,
    behind,
    handled_offsets,
    required_offsets,
    rewind_points,
)

from .support import Harness, employee, harness, po_event, ts, wix_contact, wix_event

W = "t.changes.wix.contacts"


def rec(topic: str, partition: int, offset: int, timestamp: int = 0) -> Any:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, timestamp=timestamp)


# ------------------------------------------------------------------------------------------------
# Pure rules
# ------------------------------------------------------------------------------------------------


def test_required_is_the_first_newer_message_or_the_end_when_none_is_newer() -> None:
    required = required_offsets({(W, 0): 7, (W, 1): None}, {(W, 1): 12})
    assert required == {(W, 0): 7, (W, 1): 12}


def test_handled_takes_the_tracking_row_else_the_log_start_raised_by_the_batch() -> None:
    handled = handled_offsets(
        [(W, 0), (W, 1), (W, 2)],
        tracked={(W, 0): 5},
        log_start={(W, 1): 3, (W, 2): 0},
        batch=[rec(W, 0, 5), rec(W, 0, 6), rec(W, 2, 0), rec("other", 1, 99)],
    )
    assert handled == {(W, 0): 7, (W, 1): 3, (W, 2): 1}


def test_behind_lists_only_partitions_short_of_the_mark() -> None:
    assert behind({(W, 0): 7, (W, 1): 3}, {(W, 0): 7, (W, 1): 1}) == {(W, 1): 2}
    assert behind({(W, 0): 7}, {(W, 0): 9}) == {}
    assert behind({(W, 0): 1}, {}) == {(W, 0): 1}


def test_rewind_points_are_the_first_held_offset_per_partition() -> None:
    held = [rec("e", 0, 9), rec("e", 0, 4), rec("c", 1, 2)]
    assert rewind_points(held) == {("e", 0): 4, ("c", 1): 2}


# ------------------------------------------------------------------------------------------------
# The gate on a real consumer
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def gated(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Iterator[Harness]:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as h:
        yield h


def _consumer(bootstrap: str, tp: TopicPartition) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    return consumer


def _poll(consumer: KafkaConsumer, want: int) -> list[Any]:
    records: list[Any] = []
    for _ in range(50):
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
        if len(records) >= want:
            break
    return records


@pytest.mark.integration
def test_a_change_waits_for_older_wix_changes_and_not_for_newer_ones(gated: Harness) -> None:
    layout: TopicLayout = gated.layout
    wix_topic = layout.changes("wix", "contacts")
    employees = layout.changes("poweroffice", "employees")
    gated.send_change(wix_event(wix_contact("c-1", phone="+47 912 34 567"), ts(1)))
    gated.send_change(po_event("employees", employee(1), ts(2)))
    partition = next(
        p for p in (0, 1) if _end(gated, TopicPartition(employees, p))
    )  # the partition the record key hashed to
    tp = TopicPartition(employees, partition)
    consumer = _consumer(gated.settings.kafka_bootstrap_servers, tp)
    tracked: dict[tuple[str, int], int] = {}
    holds: list[int] = []
    gate = WixFirstGate(consumer, [wix_topic], [employees], lambda: tracked, on_hold=holds.append)
    try:
        [employee_record] = _poll(consumer, 1)
        # No Wix change handled yet: the employee is held, its partition rewound and paused.
        assert gate.admit([employee_record]) == []
        assert holds == [1] and gate.holding
        assert consumer.paused() == {tp}
        assert consumer.position(tp) == employee_record.offset
        gate.release_if_caught_up()
        assert gate.holding, "nothing was handled: still held"
        # The mapper handled the contact (its tracking row moved past it): released.
        wix_partition = next(p for p in (0, 1) if _end(gated, TopicPartition(wix_topic, p)))
        tracked[(wix_topic, wix_partition)] = 1
        gate.release_if_caught_up()
        assert not gate.holding and consumer.paused() == set()
        [again] = _poll(consumer, 1)
        assert again.offset == employee_record.offset
        assert gate.admit([again]) == [again]
        # A Wix change stamped after the employee is not waited for.
        gated.send_change(wix_event(wix_contact("c-2", phone="+47 400 00 000"), ts(3)))
        assert gate.admit([again]) == [again]
        # And a batch carrying the older contact itself is enough (handled first, same batch).
        tracked.clear()
        contact = rec(wix_topic, wix_partition, 0)
        assert gate.admit([contact, again]) == [contact, again]
    finally:
        consumer.close()


def _end(h: Harness, tp: TopicPartition) -> int:
    consumer = KafkaConsumer(bootstrap_servers=h.settings.kafka_bootstrap_servers)
    try:
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


# ------------------------------------------------------------------------------------------------
# Through the loop
# ------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_an_employee_polled_before_its_contact_is_linked_not_created(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn, max_poll_records=5) as h:
        for n in range(300):  # Wix-only contacts, then the one the employee matches
            h.send_change(wix_event(wix_contact(f"w-{n}", phone=f"+47 4{n:07d}"), ts(1)))
        h.send_change(wix_event(wix_contact("c-7", phone="+47 912 34 567"), ts(1)))
        h.send_change(po_event("employees", employee(7, phone="91234567"), ts(2)))
        h.start(replay=True)
        h.drain()
        assert h.commands() == [], "the employee matches c-7: linked, never created"
        [(contact_id,)] = h.query(
            "SELECT l.wix_contact_id FROM mapper_link_members m JOIN mapper_links l "
            "USING (link_id) WHERE m.system = 'poweroffice' AND m.record_id = '7'"
        )
        assert contact_id == "c-7"


@pytest.mark.integration
def test_the_gate_can_be_switched_off(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> None:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn, mapper_wix_first=False) as h:
        h.send_change(po_event("employees", employee(8), ts(2)))
        mapper = h.start(replay=True)
        assert mapper.gate is None
        h.drain()
        assert [c["action"] for c in h.commands()] == ["CREATE"]
