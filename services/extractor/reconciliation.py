"""Reconciliation decisions: compare a full id scan with the known set; the delete circuit breaker.

Pure: imports no I/O library (standard library and ``known`` only). ``reconciler.py`` lists, calls
:func:`plan`, then verifies and emits what the plan says.

For each resource a scan lists every live record with a cheap projection (id + version + the
version's timestamp). :func:`plan` sorts the scan against the known set:

- **missing** — known, not deleted, not listed: a *candidate* delete. The shell emits a DELETE only
  after a verifying lookup says 404 (offset paging can hide a record; a merged-away id is
  ``MergedInto`` its target -> MERGE). Records the known set learned after the scan started are
  skipped (they may have been created after the listing passed them).
- **changed** — listed with a newer version than known, at or before the poll cursor (so the poller
  should have seen it: drift). The shell fetches the record and emits it (origin RECONCILE).
  A newer version after the cursor is the poller's to emit, not drift.
- **unseen** — listed, never emitted, changed within the changes topics' retention and at or before
  the poll cursor: a missed create (drift). Older ones are **adopted** silently: their events
  expired from the topics the known set was rebuilt from.

**Circuit breaker**: a partial or empty listing must never read as mass deletion. The plan refuses
every delete (``breaker_open``) when the scan listed nothing while records are known, when the
candidates outnumber ``max_deletes``, or when more than one candidate is more than ``max_share``
of the known live records. Drift is still emitted: it is read back record by record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.extractor.known import KnownRecord


@dataclass(frozen=True, slots=True)
class Listed:
    """One record of a scan: id, version (as sent), comparable key, timestamp, parent id.

    Slotted: a scan holds one per record of the resource until it is planned."""

    record_id: str
    version: str | None
    key: int | None
    at_ns: int | None
    parent_id: str | None = None


@dataclass(frozen=True)
class BreakerLimits:
    max_deletes: int
    max_share: float


@dataclass(frozen=True)
class Plan:
    missing: list[tuple[str, KnownRecord]] = field(default_factory=list)
    changed: list[Listed] = field(default_factory=list)
    unseen: list[Listed] = field(default_factory=list)
    adopted: list[Listed] = field(default_factory=list)
    listed: int = 0
    known_live: int = 0
    breaker_open: bool = False
    breaker_reason: str | None = None

    @property
    def deletes_allowed(self) -> list[tuple[str, KnownRecord]]:
        return [] if self.breaker_open else self.missing


def breaker(
    candidates: int, known_live: int, listed: int, limits: BreakerLimits
) -> tuple[bool, str | None]:
    """``(open, reason)``: whether one scan's delete candidates look like a broken listing."""
    if candidates == 0:
        return False, None
    if listed == 0 and known_live > 0:
        return True, "empty_listing"
    if candidates > limits.max_deletes:
        return True, "max_deletes"
    if candidates > 1 and known_live > 0 and candidates / known_live > limits.max_share:
        return True, "max_share"
    return False, None


def plan(
    known: Mapping[str, KnownRecord],
    listing: Iterable[Listed],
    *,
    scan_started: float,
    covered_until_ns: int | None,
    horizon_ns: int,
    limits: BreakerLimits,
) -> Plan:
    """Sort a complete scan against the known set (see the module docstring)."""
    listed_ids: set[str] = set()
    changed: list[Listed] = []
    unseen: list[Listed] = []
    adopted: list[Listed] = []
    for item in listing:
        if item.record_id in listed_ids:
            continue
        listed_ids.add(item.record_id)
        entry = known.get(item.record_id)
        polled = covered_until_ns is not None and (
            item.at_ns is None or item.at_ns <= covered_until_ns
        )
        if entry is None:
            if item.at_ns is not None and item.at_ns < horizon_ns:
                adopted.append(item)
            elif polled:
                unseen.append(item)
            continue
        if entry.deleted or not polled:
            continue
        if item.key is not None and (entry.key is None or item.key > entry.key):
            changed.append(item)
    missing = sorted(
        (
            (record_id, entry)
            for record_id, entry in known.items()
            if not entry.deleted and record_id not in listed_ids and entry.touched < scan_started
        ),
        key=lambda pair: pair[0],
    )
    live = sum(1 for entry in known.values() if not entry.deleted)
    is_open, reason = breaker(len(missing), live, len(listed_ids), limits)
    return Plan(
        missing=missing,
        changed=changed,
        unseen=unseen,
        adopted=adopted,
        listed=len(listed_ids),
        known_live=live,
        breaker_open=is_open,
        breaker_reason=reason,
    )
