"""Operator actions through the running mapper loop (real Kafka, real PostgreSQL).

Actions are published to the action topic like the console does (``new_action`` +
``action_key``); the loop applies them in its batch transaction. Checked here: the commands
they emit, the audit row and its result, resolved review items, the history row with the
actor, the ignore skip, idempotency (the same action twice, and a replay from the earliest
offset), and that a bad action never stops the partition.
"""

from __future__ import annotations

from typing import Any

import pytest

from services.core.operator_actions import ActionKind, action_key, new_action

from .support import (
    Harness,
    customer,
    dump_state,
    employee,
    harness,
    po_event,
    reset_group_to_beginning,
    ts,
    wix_contact,
    wix_event,
)

pytestmark = pytest.mark.integration


def send_action(h: Harness, kind: ActionKind, key: str, **targets: Any) -> dict[str, Any]:
    datum = new_action(
        tenant="default",
        actor="ops@example.no",
        role=targets.pop("role", "operator"),
        kind=kind,
        reason="checked with the customer",
        idempotency_key=key,
        at=ts(1000),
        **targets,
    )
    h.send_raw(
        h.layout.operator_actions, action_key(datum), h.codec.encode("OperatorAction", datum)
    )
    return datum


def audit(h: Harness, action_id: str) -> list[tuple[Any, ...]]:
    return h.query(
        "SELECT status, result, actor, command_ids FROM mapper_operator_actions "
        "WHERE action_id = %s",
        (action_id,),
    )


def ambiguous_review(h: Harness) -> str:
    h.send_change(wix_event(wix_contact("c-1", "Kari", "Hansen", email="kari@example.no"), ts(1)))
    h.send_change(wix_event(wix_contact("c-2", "Karianne", "H", email="kari@example.no"), ts(2)))
    h.send_change(po_event("customers", customer(10, at=ts(3)), ts(3)))
    h.drain()
    [(review_id,)] = h.query(
        "SELECT review_id FROM mapper_review_items WHERE reason = 'ambiguous_match'"
    )
    return str(review_id)


@pytest.fixture
def h(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Any:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as instance:
        instance.start()
        yield instance


def test_link_to_candidate_is_applied_once_audited_and_replays_to_nothing(
    h: Harness, kafka_bootstrap: str
) -> None:
    review_id = ambiguous_review(h)
    assert h.commands() == []

    # a contact that is not listed: rejected with a reason, the partition goes on
    bad = send_action(
        h, ActionKind.LINK_TO_CANDIDATE, "req-0", review_id=review_id, contact_id="c-9"
    )
    act = send_action(
        h, ActionKind.LINK_TO_CANDIDATE, "req-1", review_id=review_id, contact_id="c-2"
    )
    h.drain()
    [(status, result, _, _)] = audit(h, bad["action_id"])
    assert status == "rejected" and result.startswith("rejected: c-9 is not a candidate")

    [(status, result, actor, command_ids)] = audit(h, act["action_id"])
    assert (status, result, actor) == ("applied", "applied", "ops@example.no")
    [command] = h.commands()
    assert command["target_id"] == "c-2" and command["caused_by"] == act["action_id"]
    assert command_ids == [command["command_id"]]
    assert command["fields"]["info.name.first"] == "Kari"
    [(resolved, resolution)] = h.query(
        "SELECT resolved_at IS NOT NULL, resolution FROM mapper_review_items WHERE review_id = %s",
        (review_id,),
    )
    assert resolved and resolution == "operator:link_to_candidate"
    [(link_id, decision, actor, kind, fields)] = h.query(
        "SELECT link_id, decision, actor, action_kind, fields FROM mapper_history "
        "WHERE event_id = %s",
        (act["action_id"],),
    )
    assert link_id and (decision, actor, kind) in {
        ("conflict", "ops@example.no", "LINK_TO_CANDIDATE"),
        ("linked", "ops@example.no", "LINK_TO_CANDIDATE"),
    }
    assert fields is not None

    # the same request again (a retried POST): one effect
    send_action(h, ActionKind.LINK_TO_CANDIDATE, "req-1", review_id=review_id, contact_id="c-2")
    h.drain()
    assert len(h.commands()) == 1
    assert h.query("SELECT count(*) FROM mapper_operator_actions") == [(2,)]

    # replaying every topic from the earliest offset changes nothing
    commands = h.commands()
    before = dump_state(h.dsn)
    h.stop()
    reset_group_to_beginning(
        kafka_bootstrap,
        h.settings.group_id,
        [*h.layout.all_changes(), h.layout.outcomes, h.layout.operator_actions],
    )
    mapper = h.start(replay=True)
    h.drain()
    assert mapper.replayed == h.sent
    assert h.commands() == commands
    assert dump_state(h.dsn) == before


def test_ignored_records_are_skipped_until_unignored_then_synced(h: Harness) -> None:
    h.send_change(wix_event(wix_contact("c-1", phone="912 34 567"), ts(1)))
    h.send_change(po_event("employees", employee(1, at=ts(2)), ts(2)))
    h.drain()
    assert h.commands() == []  # linked, already equal
    ignore = send_action(
        h, ActionKind.IGNORE_RECORD, "req-i", record=("poweroffice", "employees", "1")
    )
    h.drain()
    assert audit(h, ignore["action_id"])[0][:2] == ("applied", "applied")
    h.send_change(po_event("employees", employee(1, first="Olav", at=ts(10)), ts(10)))
    h.drain()
    assert h.commands() == []
    [(decision,)] = h.query(
        "SELECT decision FROM mapper_history WHERE source = 'change' ORDER BY id DESC LIMIT 1"
    )
    assert decision == "ignored"

    unignore = send_action(
        h, ActionKind.UNIGNORE_RECORD, "req-u", record=("poweroffice", "employees", "1")
    )
    h.drain()
    assert audit(h, unignore["action_id"])[0][:2] == ("applied", "applied")
    [command] = h.commands()
    assert command["target_id"] == "c-1" and command["fields"]["info.name.first"] == "Olav"
    assert h.query("SELECT count(*) FROM mapper_ignored_records") == [(0,)]


def test_bad_actions_never_stop_the_partition(h: Harness) -> None:
    h.send_raw(h.layout.operator_actions, b"k", b"\x00garbage")
    readonly = send_action(h, ActionKind.UNLINK, "req-r", link_id="nope", role="viewer")
    unknown = send_action(h, ActionKind.UNLINK, "req-x", link_id="nope")
    h.drain()
    assert audit(h, readonly["action_id"])[0][1] == "rejected: role 'viewer' may not act"
    assert audit(h, unknown["action_id"])[0][1] == "rejected: unknown link nope"
    [letter] = h.dead_letters()
    assert letter["source_topic"] == h.layout.operator_actions


def test_history_rows_carry_field_level_before_and_after(h: Harness) -> None:
    h.send_change(wix_event(wix_contact("c-1", phone="912 34 567"), ts(1)))
    h.send_change(po_event("employees", employee(1, at=ts(2)), ts(2)))
    h.drain()
    edit = po_event("employees", employee(1, first="Olav", at=ts(3)), ts(3))
    h.send_change(edit)
    h.drain()
    [(decision, fields)] = h.query(
        "SELECT decision, fields FROM mapper_history WHERE event_id = %s", (edit["event_id"],)
    )
    assert decision == "mapped"
    assert fields == {"first_name": {"before": "Ola", "after": "Olav"}}
