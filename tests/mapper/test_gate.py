"""Wix first (``services.mapper.gate``): the pure rules, the gate on a real consumer, the loop.

The race it closes: Kafka orders nothing between topics, so a poll can hand the mapper an employee
before the Wix contact (produced earlier) it matches by phone — and Wix has no duplicate rule for
phones. The loop test sends a few hundred contacts and then that employee, with small polls, and
checks it is linked, never created.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from services.core.topics import TopicLayout, record_key
from services.mapper.gate import (
    HubFirstGate,
    behind,
    handled_offsets,
    required_offsets,
    rewind_points,
)

from .support import (
    DEADLINE_SECONDS,
    Harness,
    employee,
    harness,
    make_context,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

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


def test_handled_is_never_below_the_log_start() -> None:
    """Retention deleted messages nobody handled: waiting for them would hold for ever."""
    handled = handled_offsets([(W, 0)], tracked={(W, 0): 2}, log_start={(W, 0): 10}, batch=[])
    assert handled == {(W, 0): 10}


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
    holds: list[tuple[int, bool]] = []
    gate = HubFirstGate(
        consumer, [wix_topic], [employees], lambda: tracked, on_hold=lambda *a: holds.append(a)
    )
    lookups: list[int] = []
    offsets_for_times = consumer.offsets_for_times

    def counted(timestamps: Any, timeout_ms: Any = None) -> Any:
        lookups.append(len(timestamps))
        return offsets_for_times(timestamps, timeout_ms)

    consumer.offsets_for_times = counted
    try:
        [employee_record] = _poll(consumer, 1)
        # No Wix change handled yet: the employee is held, its partition rewound, never paused.
        assert gate.admit([employee_record]) == []
        assert holds == [(1, True)] and gate.holding
        assert consumer.paused() == set()
        assert consumer.position(tp) == employee_record.offset
        gate.release_if_caught_up()
        assert gate.holding, "nothing was handled: still held"
        # Polled again while the hold lasts: held again, the hold's mark reused (no lookup).
        [again] = _poll(consumer, 1)
        assert again.offset == employee_record.offset
        assert gate.admit([again]) == [] and len(lookups) == 1
        assert holds == [(1, True), (1, False)], "the same hold, read again"
        # The mapper handled the contact (its tracking row moved past it): released.
        wix_partition = next(p for p in (0, 1) if _end(gated, TopicPartition(wix_topic, p)))
        tracked[(wix_topic, wix_partition)] = 1
        gate.release_if_caught_up()
        assert not gate.holding and consumer.paused() == set()
        [again] = _poll(consumer, 1)
        assert again.offset == employee_record.offset
        assert gate.admit([again]) == [again]
        # A Wix change stamped after the employee is not waited for; nor looked up again: the
        # employee's stamp is known cleared. Nothing gated: no lookup either.
        gated.send_change(wix_event(wix_contact("c-2", phone="+47 400 00 000"), ts(3)))
        assert gate.admit([again]) == [again]
        assert gate.admit([rec(wix_topic, wix_partition, 1)]) == [rec(wix_topic, wix_partition, 1)]
        assert len(lookups) == 1
        # And a batch carrying the older contact itself is enough (handled first, same batch).
        fresh = HubFirstGate(consumer, [wix_topic], [employees], dict)
        contact = rec(wix_topic, wix_partition, 0)
        assert fresh.admit([contact, again]) == [contact, again]
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
            "SELECT l.hub_record_id FROM mapper_link_members m JOIN mapper_links l "
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


# ------------------------------------------------------------------------------------------------
# No hold strands a partition (issue #11, item 1)
# ------------------------------------------------------------------------------------------------


def _partition_of(h: Harness, topic: str) -> int:
    """The partition of ``topic`` holding the most messages."""
    ends = {p: _end(h, TopicPartition(topic, p)) for p in (0, 1)}
    return max(ends, key=lambda p: ends[p])


@pytest.mark.integration
def test_a_held_partition_is_read_again_after_a_reassignment(gated: Harness) -> None:
    """The hold starts while the consumer owns only the employees partition (records of it
    still buffered in the fetcher), then the consumer is re-assigned that partition plus the
    Wix partitions. Every employee must come through once the contacts before them are
    handled, and no partition may stay paused. (Before the fix the partition was paused, and
    kafka-python parks a paused partition's buffered records where a resume never finds them:
    the partition was never fetched again.)"""
    layout: TopicLayout = gated.layout
    wix_topic = layout.changes("wix", "contacts")
    employees = layout.changes("poweroffice", "employees")
    for n in range(60):
        gated.send_change(wix_event(wix_contact(f"w-{n}", phone=f"+47 4{n:07d}"), ts(1)))
    for n in range(40):
        gated.send_change(po_event("employees", employee(n + 1), ts(2)))
    tp = TopicPartition(employees, _partition_of(gated, employees))
    end = _end(gated, tp)
    wix_tps = [TopicPartition(wix_topic, p) for p in (0, 1)]
    consumer = KafkaConsumer(
        bootstrap_servers=gated.settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=5,
    )
    handled: dict[tuple[str, int], int] = {}  # what the "mapper" handled: its tracking rows
    gate = HubFirstGate(consumer, [wix_topic], [employees], lambda: dict(handled))
    admitted: list[int] = []
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        first = _poll(consumer, 1)
        assert first and gate.admit(first) == [], "no contact handled yet: held"
        assert gate.holding
        consumer.assign([tp, *wix_tps])  # the re-assignment, while the hold is on
        consumer.seek_to_beginning(*wix_tps)
        for _ in range(400):
            gate.release_if_caught_up()
            records = [r for batch in consumer.poll(timeout_ms=100).values() for r in batch]
            for record in gate.admit(records):
                handled[(record.topic, record.partition)] = record.offset + 1
                if record.topic == employees:
                    admitted.append(record.offset)
            if len(admitted) >= end:
                break
        assert sorted(admitted) == list(range(end)), "every held employee is handled once"
        assert consumer.paused() == set()
    finally:
        consumer.close()


@pytest.mark.integration
def test_a_hold_across_a_rebalance_strands_nothing(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    """Two replicas split the partitions; the one owning the Wix partition stops polling (still
    a member), so the other holds its employees; then the idle one leaves the group: the
    rebalance hands the Wix partition over, the contacts are handled, and the held employees
    are linked to them (never created), with nothing left paused."""
    from services.mapper.loop import Mapper

    with harness(kafka_bootstrap, topic_prefix, pg_dsn, max_poll_records=5) as h:
        a = h.start(replay=True)
        b = Mapper(make_context(h.settings), h.settings)
        b.start()
        idle = threading.Event()
        errors: list[BaseException] = []

        def run_b() -> None:
            try:
                while not idle.is_set():
                    b.run_once()
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=run_b)
        thread.start()
        try:
            total = 2 * (len(h.layout.all_changes()) + 2)  # + outcomes, operator actions
            deadline = time.monotonic() + DEADLINE_SECONDS
            while not (
                a.consumer
                and b.consumer
                and a.consumer.assignment()
                and b.consumer.assignment()
                and len(a.consumer.assignment()) + len(b.consumer.assignment()) == total
            ):
                assert time.monotonic() < deadline and not errors, "the replicas did not join"
                a.run_once()
        finally:
            idle.set()
            thread.join(timeout=30)
        assert errors == []
        assert a.consumer is not None and b.consumer is not None
        wix_topic = h.layout.changes("wix", "contacts")
        employees = h.layout.changes("poweroffice", "employees")
        [wix_b] = [tp.partition for tp in b.consumer.assignment() if tp.topic == wix_topic]
        [emp_a] = [tp.partition for tp in a.consumer.assignment() if tp.topic == employees]
        people = 20
        for n in range(people):
            contact = wix_contact(f"c-{n}", first=f"P{n}", phone=f"+47 9{n:07d}")
            _send_to(h, wix_topic, wix_b, wix_event(contact, ts(1)), "ChangeEvent")
        for n in range(people):
            record = employee(n + 1, first=f"P{n}", phone=f"9{n:07d}")
            _send_to(h, employees, emp_a, po_event("employees", record, ts(2)), "ChangeEvent")
        for _ in range(200):
            a.run_once()
            if a.gate is not None and a.gate.holding:
                break
        assert a.gate is not None and a.gate.holding, "A holds: the contacts are B's, unhandled"
        # Traffic on A's own Wix partition meanwhile (newer: not waited for).
        for n in range(30):
            contact = wix_contact(f"x-{n}", first=f"X{n}", phone=f"+47 4{n:07d}")
            _send_to(h, wix_topic, 1 - wix_b, wix_event(contact, ts(3)), "ChangeEvent")
        while _tracked_total(h) < 30:
            a.run_once()
        b.close()  # B leaves: the rebalance hands its partitions to A
        deadline = time.monotonic() + DEADLINE_SECONDS
        while _tracked_total(h) < h.sent:
            assert time.monotonic() < deadline, "a held partition was never handled"
            a.run_once()
        assert a.consumer.paused() == set()
        assert h.commands() == [], "every employee matches a contact: linked, never created"
        [(linked,)] = h.query(
            "SELECT count(*) FROM mapper_link_members WHERE system = 'poweroffice'"
        )
        assert linked == people


def _send_to(h: Harness, topic: str, partition: int, datum: dict[str, Any], schema: str) -> None:
    key = record_key(datum["tenant"], datum["system"], datum["resource"], datum["record_id"])
    value = h.codec.encode(schema, datum)
    h.producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)
    h.sent += 1


def _tracked_total(h: Harness) -> int:
    [(total,)] = h.query("SELECT coalesce(sum(next_offset), 0) FROM mapper_positions")
    return int(total)
