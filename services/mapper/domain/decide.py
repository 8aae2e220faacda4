"""Decisions: pure functions of (link state, input, policy, now) -> ``Decision``.

Entry points for the service loop (it decodes, loads, calls one of these, persists, emits):

* ``on_member_change(link, change, candidates, policy, now)`` — an upsert (or delete) of a record
  of a member flow; ``link`` is the link holding that record, or ``None`` (then ``candidates``
  from the match index are used: link / create / review);
* ``on_hub_change(link, change, policy, now, candidates=())`` — an upsert (or delete) of a hub
  record; ``link`` is the link holding it, or ``None`` (index only, unless the policy creates
  member records for unmatched hub records; ``candidates`` then are links matching its keys);
* ``on_delete(link, change, policy, now)`` — a record deleted in its system (or merged away);
* ``on_outcome(link, outcome, policy, now, contact_link=None)`` — the loader's report on one of
  our commands (``contact_link``: the link already holding the contact a ``linked_existing``
  outcome names, if any);
* ``on_change(...)`` dispatches a change by role: the hub's system/resource (the installed
  dataflow's ``hub``), else a member flow.

Rules (``docs/mapping-rules.md`` has the full list): an event for a record with a link never
yields a create; older changes than the last observed one are ``stale``; a change equal to what we
wrote or are writing is an ``echo`` and a change equal to what we observed a ``noop`` — neither
emits a command; edits are merged per property (``merge``); a command is emitted only when the
desired value differs from what the target holds or is being written; at most one write is in
flight per member — later differences are ``held`` and emitted when its outcome arrives (a
pending create absorbs every later change the same way).

Every id in a decision is derived from its inputs, so the same input yields the same decision.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.core.errors import ContractError
from services.mapper.domain.identity import (
    CONTACT_PERSONS,
    CUSTOMERS,
    RecordRef,
    link_id_for,
)
from services.mapper.domain.mappings import (
    FLOWS,
    PROPERTIES,
    FlowSpec,
    MatchKey,
    Reading,
    flow_for,
    hub,
    hub_revision,
    is_hub,
    match_keys,
    observe_hub,
    observe_member,
)
from services.mapper.domain.matching import MatchKind, match
from services.mapper.domain.messages import (
    Candidate,
    Change,
    CommandAction,
    ContactIndexEntry,
    Decision,
    DecisionKind,
    EventRef,
    Operation,
    ReviewReason,
)
from services.mapper.domain.outcomes import on_outcome
from services.mapper.domain.policy import Policy
from services.mapper.domain.state import (
    HUB_RECORD_DELETED,
    HUB_RECORD_MERGED,
    NO_MEMBER_LEFT,
    Link,
    LinkStatus,
    Member,
    MemberStatus,
    Origin,
    Snapshot,
)
from services.mapper.domain.sync import (
    CUSTOMER_NEEDS,
    HUB_RECORD_NEEDS,
    Effects,
    delete_command,
    index_entry,
    insufficient,
    is_stale,
    issue_reviews,
    make_decision,
    member_change,
    new_snapshot,
    record_of,
    require,
    review_item,
    sync,
    touch,
)

__all__ = ["on_change", "on_delete", "on_hub_change", "on_member_change", "on_outcome"]

# ------------------------------------------------------------------------------------------------


def _member_ref(change: Change, flow: FlowSpec, record: dict[str, object]) -> RecordRef:
    parent = change.parent_id
    if parent is None and flow.parent_field is not None:
        value = record.get(flow.parent_field)
        parent = str(value) if value is not None else None
    return RecordRef(
        tenant=change.tenant,
        system=flow.system,
        resource=change.resource,
        id=change.record_id,
        parent_id=parent,
    )


def _hub_ref(tenant: str, record_id: str | None = None) -> RecordRef:
    the_hub = hub()
    return RecordRef(tenant=tenant, system=the_hub.system, resource=the_hub.resource, id=record_id)


def _hub_member(ref: RecordRef, now: datetime, observed: Snapshot | None = None) -> Member:
    """A link's hub member (its ``flow`` is the hub's system, as stored links have it)."""
    return Member(ref=ref, flow=ref.system, observed=observed, joined_at=now)


def _filtered(policy: Policy, change: Change, ref: RecordRef) -> bool:
    if change.resource != CONTACT_PERSONS:
        return False
    rules = policy.contact_persons
    if change.parent_kind == "supplier" and not rules.include_suppliers:
        return True
    return ref.parent_id is not None and ref.parent_id in rules.exclude_parent_ids


def on_member_change(
    link: Link | None,
    change: Change,
    candidates: Sequence[Candidate],
    policy: Policy,
    now: datetime,
) -> Decision:
    """Decide on an upsert of a member flow's record (deletes are handed to ``on_delete``)."""
    flow = flow_for(change.resource)
    require(
        change.system == flow.system,
        f"on_member_change needs a change of a member flow, not {change.system}/{change.resource}",
    )
    if change.operation is Operation.DELETE:
        return on_delete(link, change, policy, now)
    record = record_of(change)
    ref = _member_ref(change, flow, record)
    reading = observe_member(change.resource, record)
    excluded = _filtered(policy, change, ref)
    inactive = flow.is_inactive(record)
    if link is None:
        if excluded:
            return make_decision(DecisionKind.SKIPPED, Effects(), reason="filtered")
        if inactive:
            return make_decision(DecisionKind.SKIPPED, Effects(), reason="inactive")
        return _new_member_record(change, flow, record, ref, reading, candidates, policy, now)

    require(link.tenant == change.tenant, "link and change belong to different tenants")
    member = link.member_for(ref)
    require(member is not None, f"link {link.link_id} does not hold {ref.key}")
    assert member is not None
    if is_stale(member.observed, None, change.source_ts):
        return make_decision(DecisionKind.STALE, Effects(), reason="older_than_observed")
    hub_member = link.hub_member
    if hub_member is None or not hub_member.active or link.status is LinkStatus.MERGED:
        return make_decision(
            DecisionKind.UNLINKED, Effects(), reason=link.status_reason or "unlinked"
        )
    if excluded or inactive:
        if not member.active:
            return make_decision(DecisionKind.NOOP, Effects(), reason="already_unlinked")
        return _unlink_member(
            link, member, "filtered" if excluded else "archived", change, policy, now, False
        )
    keys = tuple(match_keys(flow, record))
    if member.match_keys != keys:
        member = member.model_copy(update={"match_keys": keys})
        link = link.replace_member(member.key, member)
    if not member.active:
        return _rejoin(link, member, reading, change, policy, now)
    return member_change(link, member, reading, change, None, policy, now)


def adopt_own_create(link: Link, change: Change) -> Link | None:
    """``link`` with its pending member create given the record of ``change``.

    The shell calls this for a member record it has no link for whose idempotency reference
    names ``link``: the record the engine is creating, seen before the create's outcome (the
    opt-in creation of member records for unmatched hub records). Matching it instead would add
    it to the link a second time, or create a second hub record for it. The pending member
    takes its id now; the change is then an ordinary change of that member
    (``on_member_change``), and the outcome completes it later. None when ``link`` creates no
    such record (then the change is matched as usual)."""
    for member in link.members:
        pending = member.pending
        if (
            member.ref.system == change.system
            and member.ref.resource == change.resource
            and member.ref.id is None
            and pending is not None
            and pending.action is CommandAction.CREATE
        ):
            ref = _member_ref(change, flow_for(change.resource), record_of(change))
            return link.replace_member(member.key, member.model_copy(update={"ref": ref}))
    return None


def _flow_member(
    ref: RecordRef,
    flow: FlowSpec,
    reading: Reading,
    change: Change,
    now: datetime,
    keys: Sequence[MatchKey] = (),
) -> Member:
    return Member(
        ref=ref,
        flow=flow.name,
        match_keys=tuple(keys),
        observed=new_snapshot(
            reading,
            source_ts=change.source_ts,
            revision=None,
            origin=Origin.EVENT,
            event_id=change.event_id,
        ),
        joined_at=now,
    )


def _new_member_record(
    change: Change,
    flow: FlowSpec,
    record: dict[str, object],
    ref: RecordRef,
    reading: Reading,
    candidates: Sequence[Candidate],
    policy: Policy,
    now: datetime,
) -> Decision:
    cause = EventRef(kind="change", id=change.event_id)
    fx = Effects()
    keys = match_keys(flow, record)
    result = match(keys, candidates, change.tenant)
    if result.kind is MatchKind.AMBIGUOUS:
        fx.add_review(
            review_item(
                change.tenant,
                ReviewReason.AMBIGUOUS_MATCH,
                f"{ref.key} matches {len(result.candidate_ids)} hub records: not linked, "
                "not created",
                now,
                record=ref,
                candidates=result.candidate_ids,
            )
        )
        for item in issue_reviews(change.tenant, ref, reading, None, now):
            fx.add_review(item)
        return make_decision(DecisionKind.REVIEW, fx, reason=ReviewReason.AMBIGUOUS_MATCH.value)

    member = _flow_member(ref, flow, reading, change, now, keys)
    if result.kind is MatchKind.CREATE:
        link = Link(
            link_id=link_id_for(ref),
            tenant=change.tenant,
            members=(member, _hub_member(_hub_ref(change.tenant), now)),
            created_at=now,
            updated_at=now,
        )
        kind = DecisionKind.CREATE
    else:
        candidate = result.candidate
        assert candidate is not None
        if candidate.link is not None:
            link = candidate.link.add_member(member)
            if link.status is not LinkStatus.ACTIVE:
                link = link.model_copy(update={"status": LinkStatus.ACTIVE, "status_reason": None})
        else:
            contact = candidate.contact
            assert contact is not None
            hub_member = _hub_member(
                _hub_ref(change.tenant, contact.contact_id),
                now,
                observed=Snapshot(
                    props=dict(contact.props),
                    raw={PROPERTIES[p].hub_field: v for p, v in contact.props.items()},
                    source_ts=contact.source_ts,
                    revision=contact.revision,
                    changed_at=(
                        dict.fromkeys(contact.props, contact.source_ts)
                        if contact.source_ts is not None
                        else {}
                    ),
                    has_other_items=contact.has_other_items,
                ),
            )
            link = Link(
                link_id=link_id_for(ref),
                tenant=change.tenant,
                members=(member, hub_member),
                created_at=now,
                updated_at=now,
            )
        kind = DecisionKind.LINKED
    for item in issue_reviews(change.tenant, ref, reading, link.link_id, now):
        fx.add_review(item)
    link = sync(link, policy, cause, now, fx)
    if kind is DecisionKind.CREATE and not fx.commands:
        # Nothing to create the hub record from: no link is kept, the next change tries again.
        fx.add_review(insufficient(change.tenant, ref, HUB_RECORD_NEEDS, now))
        return make_decision(
            DecisionKind.REVIEW, fx, reason=ReviewReason.INSUFFICIENT_CONTACT_DATA.value
        )
    if fx.conflicts:
        kind = DecisionKind.CONFLICT if kind is DecisionKind.LINKED else kind
    return make_decision(kind, fx, links=(touch(link, now),))


def _rejoin(
    link: Link, member: Member, reading: Reading, change: Change, policy: Policy, now: datetime
) -> Decision:
    """A record unlinked earlier (archived/filtered) is active again: it joins anew."""
    cause = EventRef(kind="change", id=change.event_id)
    fx = Effects()
    snapshot = new_snapshot(
        reading,
        source_ts=change.source_ts,
        revision=None,
        origin=Origin.EVENT,
        event_id=change.event_id,
    )
    revived = member.model_copy(
        update={
            "status": MemberStatus.ACTIVE,
            "status_reason": None,
            "observed": snapshot,
            "pending": None,
            "synced": (),
            "joined_at": now,
        }
    )
    link = link.replace_member(member.key, revived)
    if link.status is LinkStatus.UNLINKED:
        link = link.model_copy(update={"status": LinkStatus.ACTIVE, "status_reason": None})
    for item in issue_reviews(link.tenant, member.ref, reading, link.link_id, now):
        fx.add_review(item)
    link = sync(link, policy, cause, now, fx)
    kind = DecisionKind.CONFLICT if fx.conflicts else DecisionKind.LINKED
    return make_decision(kind, fx, reason="rejoined", links=(touch(link, now),))


# ------------------------------------------------------------------------------------------------
# Hub changes
# ------------------------------------------------------------------------------------------------


def on_hub_change(
    link: Link | None,
    change: Change,
    policy: Policy,
    now: datetime,
    candidates: Sequence[Candidate] = (),
) -> Decision:
    """Decide on a hub record upsert (deletes are handed to ``on_delete``)."""
    require(is_hub(change.system, change.resource), "on_hub_change needs a change of the hub")
    if change.operation is Operation.DELETE:
        return on_delete(link, change, policy, now)
    record = record_of(change)
    revision = hub_revision(change.revision, record)
    entry = index_entry(change.tenant, change.record_id, record, revision, change.source_ts)
    reading = observe_hub(record)
    ref = _hub_ref(change.tenant, change.record_id)
    if link is None:
        return _unlinked_hub_record(change, ref, reading, entry, candidates, policy, now)

    require(link.tenant == change.tenant, "link and change belong to different tenants")
    member = link.member_for(ref)
    require(member is not None, f"link {link.link_id} does not hold {ref.key}")
    assert member is not None
    if is_stale(member.observed, revision, change.source_ts):
        return make_decision(DecisionKind.STALE, Effects(), reason="older_than_observed")
    if not member.active or link.status is LinkStatus.MERGED:
        return make_decision(
            DecisionKind.UNLINKED, Effects(), reason=link.status_reason or "unlinked"
        )
    return member_change(link, member, reading, change, revision, policy, now, (entry,))


def _unlinked_hub_record(
    change: Change,
    ref: RecordRef,
    reading: Reading,
    entry: ContactIndexEntry,
    candidates: Sequence[Candidate],
    policy: Policy,
    now: datetime,
) -> Decision:
    fx = Effects()
    if not policy.create_members_for_unmatched_hub:
        return make_decision(DecisionKind.INDEXED, fx, index_upserts=(entry,))
    result = match(list(entry.keys), candidates, change.tenant)
    if result.kind is not MatchKind.CREATE:
        # A member record is (being) linked to a hub record with these keys: never duplicate it.
        return make_decision(
            DecisionKind.INDEXED, fx, reason="matches_existing_link", index_upserts=(entry,)
        )
    cause = EventRef(kind="change", id=change.event_id)
    hub_member = _hub_member(
        ref,
        now,
        observed=new_snapshot(
            reading,
            source_ts=change.source_ts,
            revision=entry.revision,
            origin=Origin.EVENT,
            event_id=change.event_id,
        ),
    )
    customers = flow_for(CUSTOMERS)
    customer = Member(
        ref=RecordRef(tenant=change.tenant, system=customers.system, resource=CUSTOMERS),
        flow=CUSTOMERS,
        joined_at=now,
    )
    link = Link(
        link_id=link_id_for(ref),
        tenant=change.tenant,
        members=(hub_member, customer),
        created_at=now,
        updated_at=now,
    )
    for item in issue_reviews(change.tenant, ref, reading, link.link_id, now):
        fx.add_review(item)
    link = sync(link, policy, cause, now, fx)
    if not fx.commands:
        fx.add_review(insufficient(change.tenant, customer.ref, CUSTOMER_NEEDS, now, link.link_id))
        return make_decision(
            DecisionKind.REVIEW,
            fx,
            reason=ReviewReason.INSUFFICIENT_CONTACT_DATA.value,
            index_upserts=(entry,),
        )
    return make_decision(DecisionKind.CREATE, fx, links=(touch(link, now),), index_upserts=(entry,))


def on_change(
    link: Link | None,
    change: Change,
    candidates: Sequence[Candidate],
    policy: Policy,
    now: datetime,
) -> Decision:
    """Dispatch a change to the decision function of its role (hub or member flow)."""
    if is_hub(change.system, change.resource):
        return on_hub_change(link, change, policy, now, candidates)
    flow = FLOWS.get(change.resource)
    if flow is not None and flow.system == change.system:
        return on_member_change(link, change, candidates, policy, now)
    raise ContractError(f"no flow for {change.system}/{change.resource}")


# ------------------------------------------------------------------------------------------------
# Deletes
# ------------------------------------------------------------------------------------------------


def _unlink_member(
    link: Link,
    member: Member,
    reason: str,
    change: Change,
    policy: Policy,
    now: datetime,
    deleted: bool,
) -> Decision:
    """Unlink one flow member (deleted, archived or filtered out)."""
    cause = EventRef(kind="change", id=change.event_id)
    fx = Effects()
    observed = member.observed
    if observed is not None and (
        observed.source_ts is None or change.source_ts > observed.source_ts
    ):
        observed = observed.model_copy(update={"source_ts": change.source_ts})
    link = link.replace_member(
        member.key,
        member.model_copy(
            update={
                "status": MemberStatus.UNLINKED,
                "status_reason": reason,
                "observed": observed,
                "pending": None,
                "synced": (),
            }
        ),
    )
    remaining = [m for m in link.flow_members if m.active]
    if not remaining:
        link = link.model_copy(
            update={"status": LinkStatus.UNLINKED, "status_reason": NO_MEMBER_LEFT}
        )
        hub_member = link.hub_member
        if (
            deleted
            and policy.propagate_deletes
            and hub_member is not None
            and hub_member.active
            and hub_member.created_by_engine
            and hub_member.ref.id is not None
        ):
            fx.commands.append(delete_command(link, hub_member, cause))
    return make_decision(DecisionKind.UNLINKED, fx, reason=reason, links=(touch(link, now),))


def on_delete(link: Link | None, change: Change, policy: Policy, now: datetime) -> Decision:
    """A record was deleted in its system (a member: found missing; the hub: a webhook or a
    merge).

    Default: unlink and record. With ``policy.propagate_deletes``, the linked record in the
    other system is deleted too — only if the engine created it (and, for the hub record, no
    other flow member remains on the link). The shell's mass-delete breaker inspects
    ``Decision.delete_commands`` before emitting them."""
    cause = EventRef(kind="change", id=change.event_id)
    fx = Effects()
    if not is_hub(change.system, change.resource):
        if link is None:
            return make_decision(DecisionKind.SKIPPED, fx, reason="not_linked")
        ref = RecordRef(
            tenant=change.tenant,
            system=change.system,
            resource=change.resource,
            id=change.record_id,
        )
        member = link.member_for(ref)
        require(member is not None, f"link {link.link_id} does not hold {ref.key}")
        assert member is not None
        if not member.active:
            return make_decision(DecisionKind.NOOP, fx, reason="already_unlinked")
        if is_stale(member.observed, None, change.source_ts):
            return make_decision(DecisionKind.STALE, fx, reason="older_than_observed")
        return _unlink_member(link, member, "deleted", change, policy, now, True)

    if link is None:
        return make_decision(DecisionKind.INDEXED, fx, index_deletes=(change.record_id,))
    ref = _hub_ref(change.tenant, change.record_id)
    hub_member = link.member_for(ref)
    require(hub_member is not None, f"link {link.link_id} does not hold {ref.key}")
    assert hub_member is not None
    if not hub_member.active:
        return make_decision(
            DecisionKind.NOOP, fx, reason="already_unlinked", index_deletes=(change.record_id,)
        )
    reason = HUB_RECORD_MERGED if change.merged_into else HUB_RECORD_DELETED
    members = []
    for m in link.members:
        if not m.active:
            members.append(m)
            continue
        if (
            change.merged_into is None
            and policy.propagate_deletes
            and not m.is_hub
            and m.created_by_engine
            and m.ref.id is not None
        ):
            fx.commands.append(delete_command(link, m, cause))
        members.append(
            m.model_copy(
                update={"status": MemberStatus.UNLINKED, "status_reason": reason, "pending": None}
            )
        )
    link = link.model_copy(
        update={"members": tuple(members), "status": LinkStatus.UNLINKED, "status_reason": reason}
    )
    if change.merged_into is not None:
        fx.add_review(
            review_item(
                link.tenant,
                ReviewReason.HUB_RECORD_MERGED,
                f"hub record {change.record_id} was merged into {change.merged_into}; "
                "its link was unlinked",
                now,
                record=ref,
                link_id=link.link_id,
                candidates=(change.merged_into,),
            )
        )
    return make_decision(
        DecisionKind.UNLINKED,
        fx,
        reason=reason,
        links=(touch(link, now),),
        index_deletes=(change.record_id,),
    )


# ------------------------------------------------------------------------------------------------
# Outcomes
