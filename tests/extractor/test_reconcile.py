"""Reconciliation against the simulators: hard deletes, missed changes, the circuit breaker."""

from __future__ import annotations

from datetime import timedelta

from services.connectors.poweroffice.cursor import format_po
from services.connectors.simkit import FaultRule
from services.core.stream_positions import parse_ns
from tests.extractor.support import Harness, record_of


def test_finds_hard_deletes_and_changes_the_pollers_missed(harness: Harness) -> None:
    customers = harness.po.seed("customers", [{"Name": f"Firma {i} AS"} for i in range(6)])
    old = {"createdDate": "2024-03-01T10:00:00.000Z", "updatedDate": "2024-03-01T10:00:00.000Z"}
    contacts = harness.wix_admin.seed(
        [{**old, "info": {"name": {"first": f"Gammel{i}"}}} for i in range(3)]
        + [{"info": {"name": {"first": "Ny"}}}]
    )
    extractor = harness.extractor(poll_overlap_seconds=0)
    extractor.poll_all()
    snapshot = len(harness.events())

    # PowerOffice: a change committed with a stamp behind the cursor (skew beyond the overlap),
    # and a hard delete. Neither is visible to the incremental poll.
    drifted = harness.po.store.get("customers", customers[0]["Id"])
    late = format_po(parse_ns(drifted["LastChangedDateTimeOffset"]) + 1000)
    harness.po_admin.seed(
        "customers",
        [{**drifted, "Name": "Endret Bak Ryggen AS", "LastChangedDateTimeOffset": late}],
        validate=False,
    )
    harness.po_admin.delete("customers", customers[4]["Id"])
    # Wix: a revision bump with an old updatedDate, and a delete nobody told us about (no
    # webhook URL is configured).
    with harness.wix.store.lock:
        stored = harness.wix.store.contacts[contacts[1]["id"]]
        stored["info"]["name"]["first"] = "Endret"
        stored["revision"] += 1
    harness.wix_admin.delete(contacts[2]["id"])

    extractor.poll_all()
    assert len(harness.events()) == snapshot  # the pollers cannot see any of it

    extractor.reconcile_all()
    found = harness.events()[snapshot:]
    summary = sorted((e["record_id"], e["operation"], e["origin"]) for e in found)
    assert summary == sorted(
        [
            (str(customers[0]["Id"]), "UPSERT", "RECONCILE"),
            (str(customers[4]["Id"]), "DELETE", "RECONCILE"),
            (contacts[1]["id"], "UPSERT", "RECONCILE"),
            (contacts[2]["id"], "DELETE", "RECONCILE"),
        ]
    )
    upsert = next(e for e in found if e["record_id"] == str(customers[0]["Id"]))
    assert upsert["source_version"] == late
    assert record_of(upsert)["Name"] == "Endret Bak Ryggen AS"  # type: ignore[index]
    drift = {
        kind: harness.metric(
            extractor,
            "tether_extractor_reconcile_drift_total",
            {"system": "poweroffice", "resource": "customers", "kind": kind},
        )
        for kind in ("changed", "deleted")
    }
    assert drift == {"changed": 1.0, "deleted": 1.0}

    extractor.reconcile_all()  # converged: a second run finds nothing
    extractor.poll_all()
    assert len(harness.events()) == snapshot + 4


def test_breaker_refuses_deletes_from_an_empty_listing(harness: Harness) -> None:
    harness.po.seed("customers", [{"Name": f"Firma {i} AS"} for i in range(5)])
    extractor = harness.extractor()
    extractor.poll_all()
    snapshot = len(harness.events())
    labels = {"system": "poweroffice", "resource": "customers"}

    # The list endpoint answers 204 (empty) for every call: the scan lists nothing.
    harness.po.add_fault(
        FaultRule(kind="status", status=204, path=r"/v2/Customers$", method="GET", body=b"")
    )
    extractor.reconcile_all()
    assert len(harness.events()) == snapshot  # no deletes emitted
    assert harness.metric(extractor, "tether_extractor_breaker_open", labels) == 1
    assert harness.metric(extractor, "tether_extractor_reconcile_delete_candidates", labels) == 5
    assert (
        harness.metric(
            extractor, "tether_extractor_breaker_trips_total", {**labels, "reason": "empty_listing"}
        )
        == 1
    )

    harness.po.clear_faults()
    extractor.reconcile_all()
    assert harness.metric(extractor, "tether_extractor_breaker_open", labels) == 0
    assert len(harness.events()) == snapshot


def test_breaker_refuses_more_deletes_than_allowed(harness: Harness) -> None:
    customers = harness.po.seed("customers", [{"Name": f"Firma {i} AS"} for i in range(10)])
    extractor = harness.extractor(reconcile_breaker_max_deletes=2)
    extractor.poll_all()
    snapshot = len(harness.events())
    for row in customers[:3]:
        harness.po_admin.delete("customers", row["Id"])

    extractor.reconcile_all()
    assert len(harness.events()) == snapshot
    labels = {"system": "poweroffice", "resource": "customers", "reason": "max_deletes"}
    assert harness.metric(extractor, "tether_extractor_breaker_trips_total", labels) == 1
    harness.stop(extractor)

    # An operator raises the limit: the deletes go through (verified one by one).
    raised = harness.extractor(reconcile_breaker_max_deletes=3)
    raised.reconcile_all()
    deletes = [e for e in harness.events()[snapshot:] if e["operation"] == "DELETE"]
    assert sorted(e["record_id"] for e in deletes) == sorted(str(r["Id"]) for r in customers[:3])
    assert all(e["source_version"] for e in deletes)  # the version last known
    assert timedelta(0) <= deletes[0]["extracted_at"] - deletes[0]["source_timestamp"]
