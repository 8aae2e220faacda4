"""The known set and the reconciliation plan with its circuit breaker (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from services.connectors.wix.stream import WixContacts
from services.extractor.changes import ChangeMaker, Operation, Origin
from services.extractor.known import KnownSet
from services.extractor.reconciliation import BreakerLimits, Listed, breaker, plan

CONTACTS = ChangeMaker("wix", "contacts", WixContacts())

NOW = datetime(2025, 11, 27, tzinfo=UTC)
LIMITS = BreakerLimits(max_deletes=10, max_share=0.2)


def contact(record_id: str, revision: int) -> dict[str, object]:
    return {"id": record_id, "revision": revision, "updatedDate": "2025-11-27T08:00:00.000Z"}


def upsert(record_id: str, revision: int) -> object:
    raw = contact(record_id, revision)
    return CONTACTS.upsert(raw, CONTACTS.reader.observe(raw), Origin.POLL)


def test_known_set_covers_what_was_emitted_and_never_goes_back() -> None:
    known = KnownSet("wix", "contacts")
    known.apply(upsert("a", 2))  # type: ignore[arg-type]
    assert known.covers(upsert("a", 2))  # type: ignore[arg-type]
    assert known.covers(upsert("a", 1))  # type: ignore[arg-type] # an older, late delivery
    assert not known.covers(upsert("a", 3))  # type: ignore[arg-type]
    assert not known.covers(upsert("b", 1))  # type: ignore[arg-type]
    known.record("a", Operation.UPSERT, "1", 1)  # older: ignored
    assert known.get("a").key == 2  # type: ignore[union-attr]

    gone = CONTACTS.delete("a", Origin.WEBHOOK, NOW, None)
    assert not known.covers(gone)
    known.apply(gone)
    assert known.covers(gone) and known.covers(upsert("a", 9))  # type: ignore[arg-type]
    assert known.live_count() == 0

    merge = CONTACTS.merge(contact("t", 5), "t", ["s1", "s2"], Origin.WEBHOOK, NOW)
    assert not known.covers(merge)
    known.apply(merge)
    assert known.covers(merge)
    assert known.get("s1").deleted and known.get("t").key == 5  # type: ignore[union-attr]


def test_plan_sorts_a_scan_into_deletes_drift_and_adoptions() -> None:
    known = KnownSet("poweroffice", "customers", clock=lambda: 1.0)
    for record_id, version in (("1", 100), ("2", 200), ("3", 300), ("4", 400)):
        known.record(record_id, Operation.UPSERT, str(version), version)
    known.record("5", Operation.DELETE, "500", 500)
    listing = [
        Listed("1", "100", 100, 100),  # unchanged
        Listed("2", "250", 250, 250),  # changed at or before the cursor: drift
        Listed("3", "900", 900, 900),  # changed after the cursor: the poller's
        Listed("6", "450", 450, 450),  # never emitted, recent: a missed create
        Listed("7", "10", 10, 10),  # never emitted, older than retention: adopted
        # "4" is missing: a delete candidate; "5" is deleted already
    ]
    result = plan(
        known.snapshot(),
        listing,
        scan_started=2.0,
        covered_until_ns=500,
        horizon_ns=50,
        limits=BreakerLimits(max_deletes=10, max_share=0.5),
    )
    assert [i.record_id for i in result.changed] == ["2"]
    assert [i.record_id for i in result.unseen] == ["6"]
    assert [i.record_id for i in result.adopted] == ["7"]
    assert [record_id for record_id, _ in result.deletes_allowed] == ["4"]
    assert not result.breaker_open

    # A record learned after the scan started may be missing from it: not a candidate.
    fresh = plan(
        known.snapshot(),
        listing,
        scan_started=0.5,
        covered_until_ns=500,
        horizon_ns=50,
        limits=LIMITS,
    )
    assert fresh.missing == []


def test_breaker_refuses_what_looks_like_a_broken_listing() -> None:
    assert breaker(0, 100, 0, LIMITS) == (False, None)
    assert breaker(1, 1, 0, LIMITS) == (True, "empty_listing")
    assert breaker(11, 1000, 989, LIMITS) == (True, "max_deletes")
    assert breaker(3, 10, 7, LIMITS) == (True, "max_share")
    assert breaker(1, 2, 1, LIMITS) == (False, None)  # one delete is never "mass"
    assert breaker(2, 10, 8, LIMITS) == (False, None)

    known = KnownSet("wix", "contacts", clock=lambda: 0.0)
    for i in range(5):
        known.record(str(i), Operation.UPSERT, "1", 1)
    empty = plan(
        known.snapshot(), [], scan_started=1.0, covered_until_ns=0, horizon_ns=0, limits=LIMITS
    )
    assert empty.breaker_open and empty.breaker_reason == "empty_listing"
    assert len(empty.missing) == 5 and empty.deletes_allowed == []
