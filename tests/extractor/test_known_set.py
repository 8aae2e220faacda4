"""The known set's compact storage: what it stores reads back exactly (pure)."""

from __future__ import annotations

from itertools import count

from services.extractor.changes import Operation
from services.extractor.known import KnownRecord, KnownSet


def ticking() -> KnownSet:
    ticks = count(1)
    return KnownSet("poweroffice", "customers", clock=lambda: float(next(ticks)))


def test_an_entry_reads_back_as_stored_then_as_updated_in_place() -> None:
    known = ticking()
    known.record("1", Operation.UPSERT, "v1", 10, parent_id="p")
    known.record("2", Operation.UPSERT, None, None)
    assert known.get("1") == KnownRecord("v1", 10, "p", False, 1.0)
    assert known.get("2") == KnownRecord(None, None, None, False, 2.0)
    known.record("1", Operation.UPSERT, "v2", 20)
    known.record("2", Operation.DELETE, "gone", 5)
    assert known.get("1") == KnownRecord("v2", 20, "p", False, 3.0)
    assert known.get("2") == KnownRecord("gone", 5, None, True, 4.0)
    assert known.get("3") is None
    assert len(known) == 2


def test_keys_beyond_64_bits_and_negative_keys_keep_their_value_and_order() -> None:
    known = ticking()
    wide = 2**64 + 7
    known.record("w", Operation.UPSERT, "wide", wide)
    known.record("n", Operation.UPSERT, "negative", -(2**63))
    assert known.get("w").key == wide  # type: ignore[union-attr]
    assert known.get("n").key == -(2**63)  # type: ignore[union-attr]
    known.record("w", Operation.UPSERT, "older", wide - 1)  # older: kept
    assert known.get("w").key == wide  # type: ignore[union-attr]
    known.record("w", Operation.UPSERT, "wider", 2**70)
    known.record("n", Operation.UPSERT, "narrow", 3)
    assert known.get("w") == KnownRecord("wider", 2**70, None, False, 4.0)
    assert known.get("n").key == 3  # type: ignore[union-attr]


def test_a_wide_key_replaced_by_a_narrow_one_is_forgotten() -> None:
    known = ticking()
    known.record("w", Operation.DELETE, "wide", 2**64)
    known.record("w", Operation.DELETE, "narrow", -5)  # a delete takes the key it carries
    assert known.get("w").key == -5  # type: ignore[union-attr]


def test_the_live_count_follows_deletes_merges_and_adoptions() -> None:
    known = ticking()
    for record_id in "abcd":
        known.record(record_id, Operation.UPSERT, "1", 1)
    known.record("a", Operation.DELETE, None, None)
    known.record("a", Operation.DELETE, None, None)  # deleted twice: counted once
    known.record("a", Operation.UPSERT, "9", 9)  # a late upsert of a deleted record
    known.record("t", Operation.MERGE, "2", 2, merged_ids=("b", "never-seen"))
    known.adopt("e", "1", 1, None)
    known.adopt("c", "5", 5, None)  # known already: not adopted
    live = sorted(record_id for record_id, entry in known.snapshot().items() if not entry.deleted)
    assert live == ["c", "d", "e", "t"]
    assert known.live_count() == 4
    assert len(known) == 7


def test_a_snapshot_is_a_copy_that_later_changes_do_not_reach() -> None:
    known = ticking()
    known.record("1", Operation.UPSERT, "1", 1)
    snapshot = known.snapshot()
    known.record("1", Operation.UPSERT, "2", 2)
    known.record("2", Operation.UPSERT, "1", 1)
    assert dict(snapshot) == {"1": KnownRecord("1", 1, None, False, 1.0)}
    assert "2" not in snapshot and snapshot.get("2") is None and len(snapshot) == 1
