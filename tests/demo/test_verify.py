"""The demo's reconciliation check, on hand-made system states."""

from __future__ import annotations

from services.core.topics import TopicLayout
from services.demo.apicounts import poweroffice_counts, wix_counts
from services.demo.progress import snapshot
from services.demo.verify import LinkView, duplicate_contacts, reconcile


def contact(
    cid: str,
    first: str | None,
    last: str | None,
    email: str | None = None,
    phone: str | None = None,
) -> dict[str, object]:
    info: dict[str, object] = {"name": {"first": first, "last": last}}
    if email:
        info["emails"] = {"items": [{"email": email, "primary": True}]}
    if phone:
        info["phones"] = {"items": [{"phone": phone, "primary": True}]}
    return {"id": cid, "revision": 1, "info": info}


RECORDS = {
    "employees": [{"Id": 1, "FirstName": "Åse", "LastName": "Sæther", "PhoneNumber": "912 34 567"}],
    "customers": [
        {
            "Id": 7,
            "IsPerson": True,
            "FirstName": "Ola",
            "LastName": "Nordmann",
            "EmailAddress": "OLA@example.no",
        },
        {
            "Id": 8,
            "IsPerson": True,
            "FirstName": "Kari",
            "LastName": "Nordmann",
            "EmailAddress": "kari@example.no",
        },
    ],
    "contact_persons": [],
}


def test_a_clean_sync_reconciles() -> None:
    contacts = [
        contact("a", "Åse", "Sæther", phone="+4791234567"),
        contact("b", "Ola", "Nordmann", email="ola@example.no"),
    ]
    links = [
        LinkView("l1", "active", "a", (("employees", "1"),)),
        LinkView("l2", "active", "b", (("customers", "7"),)),
    ]
    summary = reconcile(RECORDS, contacts, {"b"}, links, {("customers", "8")})
    assert summary["linked_records"] == 2
    assert summary["flows"]["customers"] == {"records": 2, "linked": 1, "in_review": 1}
    assert summary["unlinked_records"] == []
    assert summary["contacts_created"] == 1 and summary["contacts_matched"] == 1
    assert summary["duplicate_contacts"] == 0
    assert summary["value_mismatches"] == 0


def test_problems_are_reported() -> None:
    contacts = [
        contact("a", "Åse", "Annet", phone="+4791234567"),
        contact("b", "Ola", "Nordmann", email="ola@example.no"),
        contact("c", "Ola", "N", email=" Ola@Example.no "),
    ]
    links = [
        LinkView("l1", "active", "a", (("employees", "1"),)),
        LinkView("l2", "active", "b", (("customers", "7"),)),
        LinkView("l3", "active", "c", (("customers", "7"),)),
    ]
    summary = reconcile(RECORDS, contacts, set(), links, set())
    assert summary["unlinked_records"] == [{"resource": "customers", "id": "8"}]
    assert summary["linked_more_than_once"] == 1
    assert summary["duplicate_contacts"] == 1
    assert {m["property"] for m in summary["mismatch_examples"]} >= {"last_name"}


def test_duplicates_that_existed_before_the_sync_are_not_the_engines() -> None:
    contacts = [
        contact("x", "A", None, phone="+4791234567"),
        contact("y", "B", None, phone="0047 91234567"),
        contact("z", "C", None, phone="91234567"),
    ]
    assert reconcile(RECORDS, contacts, {"x", "y", "z"}, [], set())["duplicate_contacts"] == 0
    assert reconcile(RECORDS, contacts, {"x", "y"}, [], set())["duplicate_contacts"] == 1
    assert reconcile(RECORDS, contacts, {"x"}, [], set())["duplicate_contacts"] == 2
    assert reconcile(RECORDS, contacts, set(), [], set())["duplicate_contacts"] == 2


def test_duplicates_by_phone_only_without_email() -> None:
    groups = duplicate_contacts(
        [
            contact("x", "A", None, phone="+47 912 34 567"),
            contact("y", "B", None, phone="0047 91234567"),
            contact("z", "C", None, email="c@x.no", phone="91234567"),
        ]
    )
    assert groups == [["x", "y"]]


def test_api_counts_fold_simulator_rows() -> None:
    po = {
        "requests": [
            {"method": "GET", "resource": "employees", "status": 200, "count": 5},
            {"method": "PATCH", "resource": "employees", "status": 200, "count": 2},
            {"method": "POST", "resource": "token", "status": 200, "count": 1},
            {"method": "GET", "resource": "customers", "status": 429, "count": 3},
        ]
    }
    assert poweroffice_counts(po) == {"reads": 5, "writes": 2, "throttled_429": 3}
    wix = {
        "requests": [
            {"method": "POST", "operation": "query", "status": 200, "count": 4},
            {"method": "POST", "operation": "create", "status": 200, "count": 2},
            {"method": "POST", "operation": "create", "status": 409, "count": 1},
        ]
    }
    assert wix_counts(wix) == {"reads": 4, "writes": 2, "throttled_429": 0}


def test_progress_sums_core_metrics_per_stage() -> None:
    layout = TopicLayout(prefix="p")
    produced = "tether_messages_produced_total"
    texts = {
        "extractor": f'{produced}{{topic="{layout.changes("wix", "contacts")}"}} 10\n',
        "mapper": f'{produced}{{topic="{layout.commands("wix", "contacts")}"}} 4\n',
        "loader": (
            f'tether_messages_produced_total{{topic="{layout.outcomes}"}} 3\n'
            'tether_api_requests_total{system="wix",operation="create",status="429"} 2\n'
        ),
    }
    progress = snapshot(layout, lambda name: texts[name])
    assert (progress.extracted, progress.commands, progress.outcomes) == (10, 4, 3)
    assert progress.backlog == 1
    assert progress.api_throttled == {"wix": 2}
