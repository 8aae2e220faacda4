"""Names with NUL and other control characters, emoji and right-to-left text through the running
mapper (real Kafka, real PostgreSQL): the NUL rule of docs/mapping-rules.md.

PostgreSQL's text and jsonb cannot hold U+0000, and neither can sensible targets: the mapper
removes NUL at its boundary (the incoming record), so comparison, storage and the command all
see the same value and echo suppression still works. Every other character is synced as is.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.core.topics import record_key
from services.replay.deadletters import plan_redrive, redrive
from services.replay.kafka_ops import KafkaOps

from .support import (
    Harness,
    employee,
    harness,
    outcome_event,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

pytestmark = pytest.mark.integration

FIRST = "O\x00la\x07\u200f"  # NUL, BEL, RIGHT-TO-LEFT MARK
LAST = "נורדמן 😀\x1b"  # Hebrew, emoji, ESC
SYNCED_FIRST = "Ola\x07\u200f"


@pytest.fixture
def h(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Any:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as instance:
        instance.start()
        yield instance


def test_a_name_with_nul_and_control_chars_syncs_and_replays_as_a_noop(h: Harness) -> None:
    record = employee(1, first=FIRST, last=LAST)
    h.send_change(po_event("employees", record, ts(1)))
    h.drain()
    assert h.dead_letters() == []
    [create] = h.commands()
    assert create["action"] == "CREATE"
    assert create["fields"]["info.name.first"] == SYNCED_FIRST  # NUL removed, the rest kept
    assert create["fields"]["info.name.last"] == LAST

    # The loader created the contact with those values; the echo and a replay change nothing.
    created = wix_contact("c-1", first=SYNCED_FIRST, last=LAST, phone="+4791234567", at=ts(2))
    h.send_outcome(outcome_event(create, "CREATED", target_record=created, target_id="c-1"))
    h.drain()
    h.send_change(wix_event(created, ts(2)))
    h.send_change(po_event("employees", record, ts(1)))
    h.drain()
    assert h.commands() == [create]
    assert h.dead_letters() == []
    stored = h.query("SELECT record->>'FirstName' FROM mapper_records WHERE system = 'poweroffice'")
    assert stored == [(SYNCED_FIRST,)]

    # A Wix-side name holding NUL: the same rule the other way (no write back, no loop).
    edited = wix_contact(
        "c-1", first="Kari\x00", last=LAST, phone="+4791234567", revision=2, at=ts(3)
    )
    h.send_change(wix_event(edited, ts(3)))
    h.drain()
    [update] = [c for c in h.commands() if c["command_id"] != create["command_id"]]
    assert (update["target_system"], update["fields"]) == ("poweroffice", {"FirstName": "Kari"})
    assert h.dead_letters() == []


def test_an_old_dead_letter_with_nul_is_redriven_successfully(h: Harness) -> None:
    # What a mapper without the NUL rule parked: the change's bytes and the PostgreSQL error.
    datum = po_event("employees", employee(7, first="Per\x00"), ts(1))
    topic = h.layout.changes("poweroffice", "employees")
    key = record_key("default", "poweroffice", "employees", "7")
    parked = {
        "dead_letter_id": "dl-nul-1",
        "tenant": "default",
        "stage": "mapper",
        "source_topic": topic,
        "source_partition": 0,
        "source_offset": 0,
        "key": key,
        "payload": h.codec.encode("ChangeEvent", datum),
        "error_class": "DataError",
        "error_message": "unsupported Unicode escape sequence DETAIL: \\u0000 cannot be "
        "converted to text.",
        "first_seen": ts(1),
        "last_seen": ts(1),
        "attempts": 1,
    }
    h.send_raw(h.layout.deadletters("mapper"), key, h.codec.encode("DeadLetter", parked))
    ops = KafkaOps(h.settings)
    try:
        plan = plan_redrive(ops, h.codec, h.layout, "mapper")
        assert [d.dead_letter_id for d in plan.redrivable] == ["dl-nul-1"]
        assert redrive(h.settings, ops, plan) == 1
        h.drain()
        # re-driven again (--all): harmless
        assert (
            redrive(
                h.settings, ops, plan_redrive(ops, h.codec, h.layout, "mapper", from_earliest=True)
            )
            == 1
        )
        h.drain()
    finally:
        ops.close()
    assert [d["dead_letter_id"] for d in h.dead_letters()] == ["dl-nul-1"]  # no new one
    [create] = h.commands()
    assert create["fields"]["info.name.first"] == "Per"
