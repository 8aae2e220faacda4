"""The spec's rules through the running mapper service (real Kafka, real PostgreSQL).

Each test sends ChangeEvents / Outcomes to its own topics, runs the real loop in-process until it
consumed them, and reads the Commands back from the command topics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.core.codec import HEADER_LENGTH, MAGIC

from .support import (
    Harness,
    contact_person,
    customer,
    employee,
    harness,
    outcome_event,
    po_delete,
    po_event,
    ts,
    wix_contact,
    wix_event,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def h(kafka_bootstrap: str, topic_prefix: str, pg_dsn: str) -> Any:
    with harness(kafka_bootstrap, topic_prefix, pg_dsn) as instance:
        instance.start()
        yield instance


@pytest.fixture
def started_with(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> Callable[[str], AbstractContextManager[Harness]]:
    """A started harness on the test's own topics with ``policy`` (JSON) as the mapper policy."""

    @contextmanager
    def start(policy: str) -> Iterator[Harness]:
        with harness(kafka_bootstrap, topic_prefix, pg_dsn, mapper_policy=policy) as instance:
            instance.start()
            yield instance

    return start


def new_commands(h: Harness, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {c["command_id"] for c in before}
    return [c for c in h.commands() if c["command_id"] not in seen]


def link_row(h: Harness, system: str, resource: str, record_id: str) -> tuple[Any, ...] | None:
    rows = h.query(
        "SELECT l.link_id, l.status, l.hub_record_id, l.version FROM mapper_link_members m "
        "JOIN mapper_links l USING (link_id) "
        "WHERE m.system = %s AND m.resource = %s AND m.record_id = %s",
        (system, resource, record_id),
    )
    return rows[0] if rows else None


def test_new_record_creates_one_contact_the_outcome_completes_the_link_and_echoes_are_dropped(
    h: Harness,
) -> None:
    # A new PowerOffice employee, no candidate -> one CREATE to Wix.
    h.send_change(po_event("employees", employee(1), ts(1)))
    h.drain()
    [create] = h.commands()
    assert (create["target_system"], create["target_resource"]) == ("wix", "contacts")
    assert create["action"] == "CREATE" and create["target_id"] is None
    assert create["fields"] == {
        "info.name.first": "Ola",
        "info.name.last": "Nordmann",
        "info.phones[primary].phone": "+4791234567",
    }
    assert create["idempotency_key"] == create["link_id"]
    assert create["target_record"] is None and create["expected_revision"] is None
    link_id, status, contact_id, _ = link_row(h, "poweroffice", "employees", "1") or ()
    assert (link_id, status, contact_id) == (create["link_id"], "active", None)

    # The loader created it: CREATED completes the link, no new command.
    created = wix_contact("c-new", phone="+4791234567", revision=1, at=ts(2))
    h.send_outcome(outcome_event(create, "CREATED", target_record=created, target_id="c-new"))
    h.drain()
    assert h.commands() == [create]
    assert link_row(h, "poweroffice", "employees", "1")[2] == "c-new"  # type: ignore[index]
    assert link_row(h, "wix", "contacts", "c-new")[0] == link_id  # type: ignore[index]

    # The change we wrote comes back from Wix (echo), and the PowerOffice record replays: nothing.
    h.send_change(wix_event(created, ts(2)))
    h.send_change(po_event("employees", employee(1), ts(1)))
    h.drain()
    assert h.commands() == [create]
    results = dict(h.query("SELECT decision, count(*) FROM mapper_history GROUP BY decision"))
    assert results["echo"] == 1 and results["noop"] == 1

    # A real edit in Wix flows back to the employee, with only flow A's fields.
    edited = wix_contact("c-new", first="Ole", phone="+4791234567", revision=2, at=ts(3))
    h.send_change(wix_event(edited, ts(3)))
    h.drain()
    [update] = new_commands(h, [create])
    assert (update["target_system"], update["target_resource"], update["target_id"]) == (
        "poweroffice",
        "employees",
        "1",
    )
    assert update["action"] == "UPDATE"
    assert update["fields"] == {"FirstName": "Ole"}
    assert update["expected"] == {"FirstName": "Ola"}
    assert update["idempotency_key"] is None
    record_type, record = update["target_record"]
    assert record_type == "tether.poweroffice.Employee" and record["Id"] == 1


def test_matching_contact_links_without_create_and_a_wix_edit_fans_out_per_flow(
    h: Harness,
) -> None:
    contact = wix_contact(
        "c-1", first="Kari", last="Hansen", email="kari@example.no", phone="+47 912 34 567"
    )
    h.send_change(wix_event(contact, ts(1)))
    # A Wix-only contact that matches nothing: indexed, never created in PowerOffice.
    h.send_change(wix_event(wix_contact("c-9", first="Solo", email="solo@example.no"), ts(1)))
    h.drain()  # topics are not ordered among each other: the index first
    h.send_change(
        po_event(
            "employees",
            employee(5, first="Kari", last="Hansen", email="KARI@example.no ", phone="91234567"),
            ts(2),
        )
    )
    h.send_change(po_event("customers", customer(7, email="kari@example.no"), ts(2)))
    h.send_change(
        po_event(
            "contact_persons", contact_person(70, 40, "Kari", "Hansen", "kari@example.no"), ts(2)
        )
    )
    h.drain()
    assert h.commands() == [], "a matching contact is linked, never created"
    links = {
        link_row(h, "poweroffice", r, i)[0]  # type: ignore[index]
        for r, i in (("employees", "5"), ("customers", "7"), ("contact_persons", "70"))
    }
    assert links == {link_row(h, "wix", "contacts", "c-1")[0]}  # type: ignore[index]
    assert link_row(h, "wix", "contacts", "c-9") is None

    edited = wix_contact(
        "c-1",
        first="Karin",
        last="Hansen",
        email="kari@example.no",
        phone="+47 987 65 432",
        revision=2,
        at=ts(3),
    )
    h.send_change(wix_event(edited, ts(3)))
    h.drain()
    by_target = {(c["target_resource"], c["target_id"]): c for c in h.commands()}
    assert set(by_target) == {("employees", "5"), ("customers", "7"), ("contact_persons", "70")}
    assert by_target[("employees", "5")]["fields"] == {
        "FirstName": "Karin",
        "PhoneNumber": "+4798765432",  # the merged value, in Wix's (E.164) form
    }
    assert by_target[("customers", "7")]["fields"] == {"FirstName": "Karin"}
    assert by_target[("contact_persons", "70")]["fields"] == {"FirstName": "Karin"}
    assert by_target[("contact_persons", "70")]["target_parent_id"] == "40"
    assert all(c["caused_by"] == by_target[("employees", "5")]["caused_by"] for c in h.commands())


def test_two_candidates_go_to_review_with_no_command(h: Harness) -> None:
    h.send_change(wix_event(wix_contact("c-a", first="A", phone="+4798765432"), ts(1)))
    h.send_change(wix_event(wix_contact("c-b", first="B", phone="98765432"), ts(1)))
    h.drain()  # topics are not ordered among each other: the index first
    h.send_change(po_event("employees", employee(9, phone="987 65 432"), ts(2)))
    h.drain()
    assert h.commands() == []
    assert link_row(h, "poweroffice", "employees", "9") is None
    [(reason, candidates, resolved)] = h.query(
        "SELECT reason, candidates, resolved_at FROM mapper_review_items "
        "WHERE system = 'poweroffice' AND record_id = '9'"
    )
    assert (reason, sorted(candidates), resolved) == ("ambiguous_match", ["c-a", "c-b"], None)


def test_conflict_outcome_re_merges_against_the_fresh_contact(h: Harness) -> None:
    contact = wix_contact("c-1", email="ola@example.no", phone="+4791234567", revision=1)
    h.send_change(wix_event(contact, ts(1)))
    h.drain()
    h.send_change(po_event("employees", employee(1, email="ola@example.no"), ts(2)))
    h.drain()
    assert h.commands() == []
    # PowerOffice edits the first name -> an update of the contact at revision 1.
    h.send_change(
        po_event("employees", employee(1, first="Ole", email="ola@example.no", at=ts(3)), ts(3))
    )
    h.drain()
    [update] = h.commands()
    assert update["fields"] == {"info.name.first": "Ole"} and update["expected_revision"] == 1
    assert update["expected"] == {"info.name.first": "Ola"}
    record_type, record = update["target_record"]
    assert record_type == "tether.wix.Contact" and record["revision"] == 1
    # Meanwhile someone changed the last name in Wix: the loader reports a conflict.
    fresh = wix_contact(
        "c-1",
        last="Nordmann-Berg",
        email="ola@example.no",
        phone="+4791234567",
        revision=3,
        at=ts(4),
    )
    h.send_outcome(
        outcome_event(update, "CONFLICT", target_record=fresh, error_code="CONTACT_ALREADY_CHANGED")
    )
    h.drain()
    new = new_commands(h, [update])
    by_system = {c["target_system"]: c for c in new}
    assert set(by_system) == {"wix", "poweroffice"} and len(new) == 2
    assert by_system["wix"]["fields"] == {"info.name.first": "Ole"}
    assert by_system["wix"]["expected_revision"] == 3
    assert by_system["poweroffice"]["fields"] == {"LastName": "Nordmann-Berg"}


def test_a_delete_unlinks_by_default_and_sends_no_delete(h: Harness) -> None:
    contact = wix_contact("c-1", email="ola@example.no", phone="+4791234567")
    h.send_change(wix_event(contact, ts(1)))
    h.drain()
    h.send_change(po_event("employees", employee(1, email="ola@example.no"), ts(2)))
    h.send_change(po_delete("employees", 1, ts(3)))
    h.drain()
    assert h.commands() == []
    _link_id, status, contact_id, _ = link_row(h, "poweroffice", "employees", "1") or ()
    assert (status, contact_id) == ("unlinked", "c-1")
    [(decision,)] = h.query(
        "SELECT decision FROM mapper_history WHERE record_id = '1' ORDER BY id DESC LIMIT 1"
    )
    assert decision == "unlinked"


def test_poison_messages_become_dead_letters_and_the_pipeline_continues(h: Harness) -> None:
    topic = h.layout.changes("poweroffice", "employees")
    h.send_raw(topic, b"junk", os.urandom(64))
    h.send_raw(topic, b"unknown", MAGIC + b"\x01" * (HEADER_LENGTH - 2) + b"\x00\x00")
    not_a_change = po_event("employees", employee(2), ts(1))
    not_a_change["operation"] = "UPSERT"
    not_a_change["record"] = None  # an upsert without a record violates the contract
    h.send_change(not_a_change)
    h.send_change(po_event("employees", employee(3), ts(2)))
    h.drain()
    letters = h.dead_letters()
    assert sorted(d["error_class"] for d in letters) == [
        "ContractError",
        "DecodeError",
        "DecodeError",
    ]
    assert {d["source_topic"] for d in letters} == {topic}
    [create] = h.commands()
    assert create["action"] == "CREATE"
    positions = {
        (t, p): o
        for t, p, o in h.query("SELECT topic, partition, next_offset FROM mapper_positions")
    }
    assert sum(o for (t, _), o in positions.items() if t == topic) == 4
    [(decision, error_code)] = h.query(
        "SELECT decision, error_code FROM mapper_history WHERE record_id = '2'"
    )
    assert (decision, error_code) == ("dead_letter", "ContractError")


def test_an_edit_seen_before_the_created_outcome_is_caught_up(h: Harness) -> None:
    """The contact we created is edited in Wix, and that change event is handled before the
    loader's CREATED outcome (other topic): the edit still reaches PowerOffice."""
    h.send_change(po_event("employees", employee(1), ts(1)))
    h.drain()
    [create] = h.commands()
    created = wix_contact("c-new", phone="+4791234567", revision=1, at=ts(2))
    edited = wix_contact("c-new", first="Ole", phone="+4791234567", revision=2, at=ts(3))
    h.send_change(wix_event(edited, ts(3)))  # not linked yet: only indexed
    h.drain()
    assert h.commands() == [create]
    h.send_outcome(outcome_event(create, "CREATED", target_record=created, target_id="c-new"))
    h.drain()
    [update] = new_commands(h, [create])
    assert (update["target_resource"], update["target_id"]) == ("employees", "1")
    assert update["fields"] == {"FirstName": "Ole"}


def test_a_record_matching_a_contact_we_create_seen_before_its_outcome_joins_that_link(
    h: Harness,
) -> None:
    """The contact we are creating is extracted before the loader's CREATED outcome is handled
    (a loader killed between the create and its outcome, or the outcome topic lagging): a
    second record with the same key joins the link being created — it is not "ambiguous"
    between that link and the contact, which are one and the same."""
    h.send_change(po_event("employees", employee(1), ts(1)))
    h.drain()
    [create] = h.commands()
    # Created after the command was issued (the mapper stamps it with its own clock).
    made = datetime.now(UTC)
    created = wix_contact("c-new", phone="+4791234567", revision=1, at=made)
    h.send_change(wix_event(created, made))  # not linked yet: only indexed
    h.drain()
    h.send_change(po_event("employees", employee(2), ts(3)))
    h.drain()
    assert h.query("SELECT reason, record_id FROM mapper_review_items") == []
    assert [c["action"] for c in h.commands()] == ["CREATE"], "no second contact"
    h.send_outcome(outcome_event(create, "CREATED", target_record=created, target_id="c-new"))
    h.drain()
    [(link_id, contact_id)] = h.query("SELECT link_id, hub_record_id FROM mapper_links")
    members = h.query(
        "SELECT resource, record_id FROM mapper_link_members WHERE system = 'poweroffice' "
        "ORDER BY record_id"
    )
    assert (link_id, contact_id) == (create["link_id"], "c-new")
    assert members == [("employees", "1"), ("employees", "2")]


def test_propagated_deletes_stop_at_the_mass_delete_breaker(
    kafka_bootstrap: str, topic_prefix: str, pg_dsn: str
) -> None:
    """Opt-in delete propagation deletes only contacts the engine created, and no more than
    the hourly allowance: the rest are held for review."""
    with harness(
        kafka_bootstrap,
        topic_prefix,
        pg_dsn,
        mapper_policy='{"propagate_deletes": true}',
        mapper_max_deletes_per_hour=1,
    ) as h:
        h.start()
        for i in (1, 2):
            h.send_change(po_event("employees", employee(i, phone=f"9000000{i}"), ts(1)))
        h.drain()
        for create in h.commands():
            contact_id = f"c-{create['link_id'][:8]}"
            created = wix_contact(contact_id, phone=create["fields"]["info.phones[primary].phone"])
            h.send_outcome(
                outcome_event(create, "CREATED", target_record=created, target_id=contact_id)
            )
        h.drain()
        for i in (1, 2):
            h.send_change(po_delete("employees", i, ts(5)))
        h.drain()
        deletes = [c for c in h.commands() if c["action"] == "DELETE"]
        assert len(deletes) == 1 and deletes[0]["target_system"] == "wix"
        [(reason, resolved)] = h.query(
            "SELECT reason, resolved_at FROM mapper_review_items WHERE reason LIKE 'mass%%'"
        )
        assert (reason, resolved) == ("mass_delete_breaker", None)


def test_commands_carry_the_source_time_of_live_changes_only(h: Harness) -> None:
    # The stream's first event: a record last changed long ago, extracted now (a snapshot).
    now = datetime.now(UTC)
    snapshot = po_event("employees", employee(21, at=ts(1)), ts(1))
    h.send_change({**snapshot, "extracted_at": now})
    h.drain()
    [create] = h.commands()
    assert create["action"] == "CREATE" and create["cause_changed_at"] is None
    # A record changed after Tether started watching: its command says when, for freshness.
    changed = now + timedelta(seconds=1)
    live = po_event("employees", employee(22, first="Kari", at=changed), changed)
    h.send_change({**live, "extracted_at": changed + timedelta(seconds=2)})
    h.drain()
    [live_create] = new_commands(h, [create])
    assert live_create["cause_changed_at"] == changed
    assert h.query("SELECT first_extracted_at FROM mapper_stream_starts") == [(now,)]


def test_supplier_contact_persons_are_synced_unless_the_policy_excludes_them(
    started_with: Callable[[str], AbstractContextManager[Harness]],
) -> None:
    with started_with('{"contact_persons": {"include_suppliers": false}}') as h:
        for person_id, kind in ((31, "customer"), (32, "supplier"), (33, None)):
            event = po_event(
                "contact_persons", contact_person(person_id, 40, email=f"p{person_id}@x.no"), ts(1)
            )
            h.send_change({**event, "parent_kind": kind})
        h.drain()
        created = sorted(c["fields"]["info.emails[primary].email"] for c in h.commands())
        # The supplier's is filtered; one whose kind is unknown is synced (the safe default).
        assert created == ["p31@x.no", "p33@x.no"]
        assert link_row(h, "poweroffice", "contact_persons", "32") is None


def test_a_customer_we_create_seen_before_its_outcome_joins_its_own_link_once(
    started_with: Callable[[str], AbstractContextManager[Harness]],
) -> None:
    with started_with('{"create_members_for_unmatched_hub": true}') as h:
        h.send_change(wix_event(wix_contact("c-9", "Siri", "Dahl", "siri@example.no"), ts(1)))
        h.drain()
        [create] = h.commands()
        assert (create["target_resource"], create["action"]) == ("customers", "CREATE")
        # The loader created it; the poller sees the new customer before the outcome arrives.
        record = customer(
            77,
            "Siri",
            "Dahl",
            "siri@example.no",
            at=ts(2),
            PhoneNumber=None,
            ExternalImportReference=create["idempotency_key"],
        )
        h.send_change(po_event("customers", record, ts(2)))
        h.drain()
        assert new_commands(h, [create]) == [], "neither matched again nor created in Wix"
        h.send_outcome(outcome_event(create, "CREATED", target_record=record, target_id="77"))
        h.drain()
        assert new_commands(h, [create]) == []
        members = h.query(
            "SELECT link_id, record_id FROM mapper_link_members WHERE system = 'poweroffice'"
        )
        assert members == [(create["link_id"], "77")]
        [(state,)] = h.query("SELECT state FROM mapper_links WHERE link_id = %s", (members[0][0],))
        refs = [m["ref"] for m in state["members"] if m["ref"]["system"] == "poweroffice"]
        assert [(r["resource"], r["id"]) for r in refs] == [("customers", "77")], "one member"
