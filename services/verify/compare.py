"""Comparing what both systems hold for every link, by the mapper's own rules (pure, no I/O).

``verify_link(link, records, reviews)`` answers for one link with a :class:`Verdict`:

* the link is left out (``None``) when it is not active or has no Wix contact yet: there is
  nothing to compare;
* ``repairing`` — a write (or create) is in flight to one of its members: the pipeline is at it;
* ``in_flux`` — a record read is *older* than what the mapper already observed (it changed while
  the cycle was reading): the next cycle looks again;
* ``missing`` — a member's record was not found in its system (deletes are the extractor's
  reconciliation's business, with its circuit breaker; verification only makes it visible);
* ``divergent`` — a property mapped on both sides differs between the Wix contact and a
  PowerOffice record (compared as the mapper compares: ``normalize.compare_key`` of the
  property's kind), and neither a value the target refused (``Member.rejected``) nor an open
  review item of the link explains it. ``repairs`` lists the members whose record as read differs
  from what the mapper last observed of them: a change event with their *current* state is the
  repair (the mapper merges it and writes the side that is behind). A divergent link where every
  record still equals the mapper's observation has no repair by re-reading (``stuck``): it is
  visible, and a bug;
* ``in_review`` — the values differ, but only where an operator already has an item to act on;
* ``agree`` — every mapped value is the same on both sides.

Imports: the mapper's pure domain only (never its service shell).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.core.timestamps import parse_api_timestamp
from services.mapper.domain import (
    Link,
    LinkStatus,
    Member,
    read_hub,
    read_member,
)
from services.mapper.domain.mappings import kind_of
from services.mapper.domain.normalize import compare_key

#: Records as read, keyed by ``(system, resource, record_id)``.
Records = Mapping[tuple[str, str, str], Mapping[str, Any]]


class Status(StrEnum):
    AGREE = "agree"
    DIVERGENT = "divergent"
    REPAIRING = "repairing"
    IN_REVIEW = "in_review"
    IN_FLUX = "in_flux"
    MISSING = "missing"


#: Statuses counted by ``tether_links_divergent``: values differ and nothing is repairing them.
DIVERGENT_STATUSES = frozenset({Status.DIVERGENT, Status.MISSING})


@dataclass(frozen=True)
class Repair:
    """A member whose current record must reach the mapper again (a change event)."""

    system: str
    resource: str
    record_id: str
    parent_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    link_id: str
    flow: str
    """The link's flow for metrics: its first active PowerOffice member's (or ``wix``)."""
    status: Status
    properties: tuple[str, ...] = ()
    """Divergent (or unexplained) properties: names only, never values."""
    detail: str = ""
    repairs: tuple[Repair, ...] = field(default_factory=tuple)

    @property
    def divergent(self) -> bool:
        return self.status in DIVERGENT_STATUSES


def _key(prop: str, value: str | None) -> str | None:
    return compare_key(kind_of(prop), value)


def _props(member: Member, record: Mapping[str, Any]) -> dict[str, str | None]:
    if member.is_hub:
        return dict(read_hub(dict(record)))
    return dict(read_member(member.ref.resource, dict(record)))


def _stamp_older(member: Member, record: Mapping[str, Any]) -> bool:
    """Whether the record read is older than the state the mapper already observed."""
    observed = member.observed
    if observed is None:
        return False
    if member.is_hub:
        revision = record.get("revision")
        if isinstance(revision, int) and observed.revision is not None:
            return revision < observed.revision
        stamp = record.get("updatedDate")
    else:
        stamp = record.get("LastChangedDateTimeOffset")
    if not isinstance(stamp, str) or observed.source_ts is None:
        return False
    try:
        read_at: datetime = parse_api_timestamp(stamp)
    except ValueError:
        return False
    return read_at < observed.source_ts


def _differs_from_observed(member: Member, props: Mapping[str, str | None]) -> bool:
    observed = member.observed
    if observed is None:
        return True
    names = set(props) | set(observed.props)
    return any(_key(p, props.get(p)) != _key(p, observed.props.get(p)) for p in names)


def flow_of(link: Link) -> str:
    for member in link.flow_members:
        if member.active:
            return member.flow
    return link.flow_members[0].flow if link.flow_members else "wix"


def verify_link(
    link: Link, records: Records, reviews: Collection[str | None] = ()
) -> Verdict | None:
    """The verdict for one link (see the module docstring); ``reviews`` holds the properties
    named by the link's open review items (``None``: an item about the whole link)."""
    wix = link.hub_member
    if link.status is not LinkStatus.ACTIVE or wix is None or not wix.active or wix.ref.id is None:
        return None
    flow = flow_of(link)
    active = [m for m in link.members if m.active]
    if link.pending_create or any(m.pending is not None for m in active):
        return Verdict(link.link_id, flow, Status.REPAIRING, detail="a write is in flight")

    read: dict[str, dict[str, str | None]] = {}
    missing: list[str] = []
    for member in active:
        if member.ref.id is None:
            continue
        record = records.get((member.ref.system, member.ref.resource, member.ref.id))
        if record is None:
            missing.append(member.key)
            continue
        if _stamp_older(member, record):
            return Verdict(
                link.link_id,
                flow,
                Status.IN_FLUX,
                detail=f"{member.key} was read before the state the mapper already has",
            )
        read[member.key] = _props(member, record)
    if missing:
        return Verdict(
            link.link_id,
            flow,
            Status.MISSING,
            detail="not found in its system: " + ", ".join(sorted(missing)),
        )

    wix_props = read[wix.key]
    differing: set[str] = set()
    explained: set[str] = set()
    whole_link_review = None in reviews
    for member in active:
        if member.is_hub or member.key not in read:
            continue
        for prop, value in read[member.key].items():
            theirs = wix_props.get(prop)
            if _key(prop, value) == _key(prop, theirs):
                continue
            refused = (
                member.rejected.get(prop, "-") == _key(prop, theirs)
                or wix.rejected.get(prop, "-") == _key(prop, value)
                or prop in reviews
                or whole_link_review
            )
            (explained if refused else differing).add(prop)
    if differing:
        repairs = tuple(
            Repair(m.ref.system, m.ref.resource, m.ref.id or "", m.ref.parent_id)
            for m in active
            if m.key in read and _differs_from_observed(m, read[m.key])
        )
        failed = [
            f"{m.key} ({m.last_error.outcome} {m.last_error.code or ''})".replace(" )", ")")
            for m in active
            if m.last_error is not None
        ]
        detail = (
            "values differ; re-sent to the mapper: "
            + ", ".join(f"{r.system}/{r.resource}/{r.record_id}" for r in repairs)
            if repairs
            else "values differ although both records equal the mapper's last observation "
            "(stuck: no re-read can repair it"
            + ("; last write failed: " + ", ".join(failed) if failed else "")
            + ")"
        )
        return Verdict(
            link.link_id, flow, Status.DIVERGENT, tuple(sorted(differing)), detail, repairs
        )
    if explained:
        return Verdict(
            link.link_id,
            flow,
            Status.IN_REVIEW,
            tuple(sorted(explained)),
            "values differ where an operator has an open review item or a refused write",
        )
    return Verdict(link.link_id, flow, Status.AGREE)
