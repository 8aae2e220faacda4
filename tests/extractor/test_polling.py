"""Polling against the simulators over HTTP, events read back from the real Kafka."""

from __future__ import annotations

import collections
import json
from dataclasses import replace
from typing import Any

from services.connectors.seed import generate
from services.connectors.simkit import FaultRule
from services.core.stream_positions import parse_ns, to_datetime
from services.extractor.cursors import Cursor
from tests.extractor.support import Harness, record_of


def seed_all(h: Harness, records: int = 40, seed: int = 3) -> dict[str, list[dict[str, Any]]]:
    data = generate(records, seed)
    employees = h.po.seed("employees", data.employees)
    customers = h.po.seed("customers", data.customers)
    persons = h.po.seed(
        "contactpersons",
        [dict(person, ContactId=customers[index]["Id"]) for index, person in data.contact_persons],
    )
    contacts = h.wix_admin.seed([{"info": info} for info in data.wix_contacts] or [])
    return {
        "employees": employees,
        "customers": customers,
        "contact_persons": persons,
        "contacts": contacts,
    }


def identities(events: list[dict[str, Any]]) -> collections.Counter[tuple[str, str, str]]:
    return collections.Counter(
        (e["resource"], e["record_id"], e["source_version"] or "") for e in events
    )


def test_snapshot_then_each_edit_is_exactly_one_event(harness: Harness) -> None:
    seeded = seed_all(harness)
    extractor = harness.extractor()

    extractor.poll_all()  # first run: full snapshot (pages of 7)
    events = harness.events()
    by_resource = collections.Counter(e["resource"] for e in events)
    assert by_resource == {name: len(rows) for name, rows in seeded.items()}
    assert all(e["operation"] == "UPSERT" and e["origin"] == "POLL" for e in events)
    person = next(e for e in events if e["resource"] == "contact_persons")
    assert person["parent_id"] == str(record_of(person)["ContactId"])  # type: ignore[index]

    # Rounds of edits, each followed by two cycles: every edit is one event, nothing repeats.
    edits: list[tuple[str, str]] = []
    for round_number in range(3):
        for row in seeded["customers"][round_number : round_number + 4]:
            edited = harness.po.edit("customers", row["Id"], {"Name": f"Edit {round_number} AS"})
            edits.append(("customers", str(edited["Id"])))
        for row in seeded["employees"][:2]:
            harness.po_admin.edit("employees", row["Id"], {"JobTitle": f"Title {round_number}"})
            edits.append(("employees", str(row["Id"])))
        contact = seeded["contacts"][round_number]
        harness.wix_admin.edit(contact["id"], {"name": {"first": f"Round{round_number}"}})
        edits.append(("contacts", contact["id"]))
        extractor.poll_all()
        extractor.poll_all()

    events = harness.events()
    counts = identities(events)
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    per_record = collections.Counter((e["resource"], e["record_id"]) for e in events)
    for resource, record_id in set(edits):
        assert per_record[(resource, record_id)] == 1 + edits.count((resource, record_id))
    # The newest event of an edited customer carries the edit, verbatim.
    last = [e for e in events if e["record_id"] == str(seeded["customers"][2]["Id"])][-1]
    assert record_of(last)["Name"] == "Edit 2 AS"  # type: ignore[index]
    assert (
        last["source_version"]
        == harness.po.store.get("customers", int(last["record_id"]))["LastChangedDateTimeOffset"]
    )
    before = len(events)
    extractor.poll_all()
    assert len(harness.events()) == before


def test_restart_rebuilds_the_known_set_and_resumes_from_the_cursors(harness: Harness) -> None:
    seeded = seed_all(harness, records=20)
    first = harness.extractor()
    first.poll_all()
    snapshot = len(harness.events())
    harness.stop(first)

    # While it is down: an edit (the cursor catches it) and a delete (only reconciliation can).
    customer, gone = seeded["customers"][0], seeded["customers"][1]
    harness.po.edit("customers", customer["Id"], {"Name": "While Down AS"})
    harness.po_admin.delete("customers", gone["Id"])

    second = harness.extractor()
    assert len(second.known[("poweroffice", "customers")]) == len(seeded["customers"])
    second.poll_all()
    second.reconcile_all()
    new = harness.events()[snapshot:]
    assert sorted((e["record_id"], e["operation"], e["origin"]) for e in new) == sorted(
        [(str(customer["Id"]), "UPSERT", "POLL"), (str(gone["Id"]), "DELETE", "RECONCILE")]
        + [
            (str(p["Id"]), "DELETE", "RECONCILE")
            for p in seeded["contact_persons"]
            if p["ContactId"] == gone["Id"]
        ]
    )


def test_malformed_records_become_dead_letters_and_the_page_goes_on(harness: Harness) -> None:
    good = harness.po.seed(
        "employees", [{"FirstName": f"Ok{i}", "LastName": "X"} for i in range(9)]
    )
    stamp = good[3]["LastChangedDateTimeOffset"]
    harness.po_admin.seed(
        "employees",
        [
            {
                "Id": 990001,
                "FirstName": 123,
                "LastName": "Typo",
                "LastChangedDateTimeOffset": stamp,
            },
            {"Id": 990002, "FirstName": "No", "LastName": "Stamp"},
        ],
        validate=False,
    )
    contacts = harness.wix_admin.seed([{"info": {"name": {"first": f"W{i}"}}} for i in range(5)])
    with harness.wix.store.lock:
        harness.wix.store.contacts[contacts[2]["id"]]["info"]["name"]["first"] = 42

    extractor = harness.extractor(poweroffice_page_size=20)
    extractor.poll_all()
    extractor.poll_all()

    employees = {e["record_id"] for e in harness.events("poweroffice", "employees")}
    assert employees == {str(r["Id"]) for r in good}
    wix = {e["record_id"] for e in harness.events("wix", "contacts")}
    assert wix == {c["id"] for i, c in enumerate(contacts) if i != 2}
    dead = harness.dead_letters()
    assert sorted(d["error_class"] for d in dead) == ["ContractError"] * 3
    payloads = [d["payload"] for d in dead]
    assert any(b'"Id":990001' in p and b'"FirstName":123' in p for p in payloads)
    assert any(b'"Id":990002' in p for p in payloads)
    assert any(contacts[2]["id"].encode() in p for p in payloads)


def test_poweroffice_waits_until_one_wix_snapshot_is_complete(harness: Harness) -> None:
    seeded = seed_all(harness, records=20)
    extractor = harness.extractor()
    waiting = "tether_extractor_waiting_for_wix_snapshot"
    # Wix is down: its cycle fails, and no PowerOffice record goes ahead of the contacts.
    harness.wix.faults.add(FaultRule(kind="status", status=503, path=r"/contacts/v4/"))
    extractor.poll_all(raise_errors=False)
    extractor.reconcile_all(raise_errors=False)
    assert harness.events() == []
    assert harness.metric(extractor, waiting, {}) == 1

    harness.wix.faults.clear()
    extractor.poll_all()
    events = harness.events()
    assert collections.Counter(e["resource"] for e in events) == {
        name: len(rows) for name, rows in seeded.items()
    }
    first_po = min(e["extracted_at"] for e in events if e["system"] == "poweroffice")
    assert max(e["extracted_at"] for e in events if e["system"] == "wix") <= first_po
    assert harness.metric(extractor, waiting, {}) == 0


def test_contact_persons_say_whether_they_are_a_customers_or_a_suppliers(
    harness: Harness,
) -> None:
    [company] = harness.po.seed("customers", [{"Name": "Fjordkraft AS"}])
    persons = harness.po.seed(
        "contactpersons",
        [
            {"ContactId": company["Id"], "FirstName": "Kari", "LastName": "Kunde"},
            # an established supplier's contact person: a 404 for its parent is believed only
            # once the contact person is older than any read lag (parent_settle_seconds)
            {
                "ContactId": 990001,
                "FirstName": "Per",
                "LastName": "Leverandør",
                "CreatedDateTimeOffset": "2024-01-01T00:00:00.0000000Z",
            },
        ],
    )
    extractor = harness.extractor()
    extractor.poll_all()
    kinds = {e["record_id"]: e["parent_kind"] for e in harness.events("poweroffice")}
    assert kinds == {
        str(company["Id"]): None,
        str(persons[0]["Id"]): "customer",
        str(persons[1]["Id"]): "supplier",  # 990001 has no customer role
    }


def test_a_server_that_clamps_the_page_size_loses_nothing(harness: Harness) -> None:
    # PowerOffice returns at most 3 records per page although the extractor asks for 7: a short
    # page is not the last one. Before, the poll took 3 records per cycle and the reconciliation
    # scan saw only the first 3 ids (the others looked deleted).
    harness.po.store.page_size_clamp = 3
    seeded = harness.po.seed(
        "employees", [{"FirstName": f"E{i}", "LastName": "X"} for i in range(20)]
    )
    extractor = harness.extractor()
    extractor.poll_all()
    emitted = {e["record_id"] for e in harness.events("poweroffice", "employees")}
    assert emitted == {str(r["Id"]) for r in seeded}
    extractor.reconcile_all()
    events = harness.events("poweroffice", "employees")
    assert [e for e in events if e["operation"] == "DELETE"] == []
    assert len(events) == 20


def test_a_wix_server_that_clamps_the_page_size_loses_nothing(harness: Harness) -> None:
    # Wix returns at most 3 contacts per page although the extractor asks for 7: a short page is
    # not the last one. Before, the poll cycle ended after 3 contacts (and moved its cursor past
    # the rest) and the reconciliation scan listed 3 ids.
    harness.wix.max_page_size = 3
    seeded = harness.wix_admin.seed(
        [{"info": {"name": {"first": f"W{i}", "last": "X"}}} for i in range(20)]
    )
    extractor = harness.extractor()
    extractor.poll_all()
    emitted = {e["record_id"] for e in harness.events("wix", "contacts")}
    assert emitted == {str(c["id"]) for c in seeded}
    extractor.reconcile_all()
    events = harness.events("wix", "contacts")
    assert [e for e in events if e["operation"] == "DELETE"] == []
    assert len(events) == 20


def first_version_cursor(cursor: Cursor) -> Cursor:
    """The cursor as the extractor's first version stored it: the stream's state spread over
    ``position`` (PowerOffice: the stamp; Wix: the JSON without ``seen``), ``seen`` and
    (PowerOffice) the start of the read in ``updated_at``."""
    state = json.loads(cursor.position)
    seen = tuple(state.pop("seen"))
    if cursor.system == "poweroffice":
        read = to_datetime(parse_ns(state["read"]))
        return replace(cursor, position=state["position"], seen=seen, updated_at=read)
    return replace(cursor, position=json.dumps(state, separators=(",", ":")), seen=seen)


def test_cursors_stored_by_the_first_version_resume_where_they_stopped(harness: Harness) -> None:
    # No overlap: a resumed read re-reads only the position itself (one page per resource),
    # a read that started over would page through every record again.
    seeded = seed_all(harness, records=20)
    first = harness.extractor(poll_overlap_seconds=0.0)
    first.poll_all()
    snapshot = len(harness.events())
    streams = [(p.system, p.resource) for p in first.pollers]
    for system, resource in streams:  # an upgrade finds the first version's cursors stored
        stored = first.cursors.get("default", system, resource, "poll")
        assert stored is not None and not stored.seen
        first.cursors.save(first_version_cursor(stored))
    covered = {(p.system, p.resource): p.covered_until_ns() for p in first.pollers}
    harness.stop(first)

    customer, contact = seeded["customers"][0], seeded["contacts"][0]
    harness.po.edit("customers", customer["Id"], {"Name": "After Upgrade AS"})
    harness.wix_admin.edit(contact["id"], {"name": {"first": "Oppgradert"}})

    second = harness.extractor(poll_overlap_seconds=0.0)
    for poller in second.pollers:
        stored = second.cursors.get("default", poller.system, poller.resource, "poll")
        assert stored is not None and stored.seen  # the first version's form
        assert poller.covered_until_ns() == covered[(poller.system, poller.resource)]
    second.poll_all()
    new = harness.events()[snapshot:]
    assert sorted((e["resource"], e["record_id"]) for e in new) == sorted(
        [("customers", str(customer["Id"])), ("contacts", contact["id"])]
    )
    for system, resource in streams:
        pages = harness.metric(
            second, "tether_extractor_poll_pages_total", {"system": system, "resource": resource}
        )
        assert pages == 1, (system, resource, pages)
