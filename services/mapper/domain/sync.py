"""The shared machinery of the decision functions (internal to the domain package).

``sync`` is the heart of every decision: merge the link (``merge.plan``), emit the writes that can
go now (at most one in flight per member; creates for members without a record), hold the others,
record conflicts and refusals, and move the base. ``observe`` classifies a new observation of a
member as edit / echo / no-op; an observation whose stamp equals the last one (found by
verification: changed behind our back) is an edit too, except where the value replaced was our own
write — then the write did not stick and is re-sent (``Member.reverted``). The rest builds
commands, snapshots, review items and decisions, each with ids derived from the input so that the
same input yields the same decision.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from services.core.errors import ContractError
from services.mapper.domain.identity import (
    CUSTOMERS,
    RecordRef,
    derive_id,
)
from services.mapper.domain.mappings import (
    CONTACT_DATA_PROPERTIES,
    PROPERTIES,
    JsonScalar,
    Props,
    Reading,
    flow_for,
    hub_match_keys,
    hub_write_values,
    is_hub,
    member_field_values,
    observe_hub,
    observe_member,
)
from services.mapper.domain.merge import (
    Contender,
    cmp,
    holds_our_write,
    needs,
    pending_props,
    plan,
    refresh_base,
)
from services.mapper.domain.messages import (
    Change,
    Command,
    Conflict,
    ConflictSide,
    ContactIndexEntry,
    Decision,
    DecisionKind,
    EventRef,
    ReviewItem,
    ReviewReason,
)
from services.mapper.domain.policy import Policy
from services.mapper.domain.state import (
    CommandAction,
    Link,
    Member,
    Origin,
    PendingWrite,
    Snapshot,
)

_T = TypeVar("_T")

# ------------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------------


@dataclass
class Effects:
    """Outputs accumulated while deciding."""

    commands: list[Command] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    reviews: list[ReviewItem] = field(default_factory=list)
    held: bool = False
    refused: bool = False

    def add_review(self, item: ReviewItem) -> None:
        if all(r.review_id != item.review_id for r in self.reviews):
            self.reviews.append(item)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


def record_of(change: Change) -> dict[str, object]:
    require(change.record is not None, f"upsert change {change.event_id} carries no record")
    assert change.record is not None
    return change.record


def touch(link: Link, now: datetime) -> Link:
    return link.model_copy(update={"version": link.version + 1, "updated_at": now})


def is_stale(observed: Snapshot | None, revision: int | None, source_ts: datetime | None) -> bool:
    """Whether a state (revision/timestamp) is older than the last observed one."""
    if observed is None:
        return False
    if revision is not None and observed.revision is not None:
        return revision < observed.revision
    if source_ts is not None and observed.source_ts is not None:
        return source_ts < observed.source_ts
    return False


def review_item(
    tenant: str,
    reason: ReviewReason,
    detail: str,
    now: datetime,
    *,
    record: RecordRef | None = None,
    link_id: str | None = None,
    prop: str | None = None,
    candidates: Sequence[str] = (),
    subject: object = None,
) -> ReviewItem:
    review_id = derive_id(
        "review",
        tenant,
        reason.value,
        record.identity if record is not None else None,
        link_id,
        prop,
        list(candidates),
        subject,
    )
    return ReviewItem(
        review_id=review_id,
        tenant=tenant,
        reason=reason,
        detail=detail,
        record=record,
        link_id=link_id,
        property=prop,
        candidates=tuple(candidates),
        at=now,
    )


def issue_reviews(
    tenant: str, ref: RecordRef, reading: Reading, link_id: str | None, now: datetime
) -> list[ReviewItem]:
    return [
        review_item(
            tenant,
            ReviewReason.INVALID_VALUE,
            f"{issue.code.value}: {issue.property} of {ref.key} is synced as typed",
            now,
            record=ref,
            link_id=link_id,
            prop=issue.property,
            subject=issue.code.value,
        )
        for issue in reading.issues
    ]


def new_snapshot(
    reading: Reading,
    *,
    source_ts: datetime | None,
    revision: int | None,
    origin: Origin,
    event_id: str | None,
    previous: Snapshot | None = None,
    changed: Sequence[str] | None = None,
) -> Snapshot:
    """A new observation; ``changed_at`` moves for ``changed`` props (default: all)."""
    changed_at: dict[str, datetime] = {}
    for prop in reading.props:
        moved = changed is None or prop in changed or previous is None
        old = previous.changed_at.get(prop) if previous is not None else None
        if moved or old is None:
            if source_ts is not None:
                changed_at[prop] = source_ts
            elif old is not None:
                changed_at[prop] = old
        else:
            changed_at[prop] = old
    return Snapshot(
        props=dict(reading.props),
        raw=dict(reading.raw),
        source_ts=_first(source_ts, previous.source_ts if previous else None),
        revision=_first(revision, previous.revision if previous else None),
        changed_at=changed_at,
        origin=origin,
        event_id=event_id,
        has_other_items=reading.has_other_items,
    )


def _first(value: _T | None, fallback: _T | None) -> _T | None:
    return value if value is not None else fallback


def read_target(target: RecordRef, record: dict[str, object]) -> Reading:
    if is_hub(target.system, target.resource):
        return observe_hub(record)
    return observe_member(target.resource, record)


def index_entry(
    tenant: str,
    record_id: str,
    record: dict[str, object],
    revision: int | None,
    source_ts: datetime | None,
) -> ContactIndexEntry:
    """The match index row of a hub record's state."""
    reading = observe_hub(record)
    return ContactIndexEntry(
        tenant=tenant,
        contact_id=record_id,
        keys=tuple(hub_match_keys(record)),
        props=reading.props,
        revision=revision,
        source_ts=source_ts,
        has_other_items=reading.has_other_items,
    )


# ------------------------------------------------------------------------------------------------
# Commands and the sync step
# ------------------------------------------------------------------------------------------------


def command_for(
    link: Link,
    member: Member,
    action: CommandAction,
    props: Props,
    cause: EventRef,
) -> Command:
    target = member.ref
    fields: dict[str, JsonScalar] = {}
    expected: dict[str, JsonScalar] = {}
    revision: int | None = None
    observed = member.observed
    if member.is_hub:
        written = hub_write_values(props)
        for prop, value in written.items():
            fields[PROPERTIES[prop].hub_field] = value
            if action is CommandAction.UPDATE and observed is not None:
                expected[PROPERTIES[prop].hub_field] = observed.props.get(prop)
        if action is CommandAction.UPDATE and observed is not None:
            revision = observed.revision
    else:
        written = dict(props)
        patch = member_field_values(target.resource, props)
        if action is CommandAction.CREATE:
            fields.update(flow_for(target.resource).create_fields)
        fields.update(patch)
        if action is CommandAction.UPDATE and observed is not None:
            expected = {f: observed.raw.get(f) for f in patch}
    command_id = derive_id(
        "command",
        link.link_id,
        list(target.identity),
        action.value,
        fields,
        cause.kind,
        cause.id,
    )
    return Command(
        command_id=command_id,
        tenant=link.tenant,
        link_id=link.link_id,
        target=target,
        action=action,
        props=written,
        fields=fields,
        expected=expected,
        expected_revision=revision,
        cause=cause,
    )


def issue_write(
    link: Link, member: Member, action: CommandAction, props: Props, cause: EventRef, now: datetime
) -> tuple[Link, Command]:
    command = command_for(link, member, action, props, cause)
    pending = PendingWrite(
        command_id=command.command_id,
        action=action,
        props=dict(command.props),
        against_revision=command.expected_revision,
        issued_at=now,
    )
    rejected = {p: v for p, v in member.rejected.items() if p not in props}
    updated = member.model_copy(update={"pending": pending, "rejected": rejected})
    return link.replace_member(member.key, updated), command


def _conflict_side(contender: Contender) -> ConflictSide:
    return ConflictSide(
        member=contender.member, value=contender.value, changed_at=contender.changed_at
    )


CUSTOMER_NEEDS = "a private-person customer needs a first and a last name"
HUB_RECORD_NEEDS = "a hub record needs a name, an e-mail or a phone"


def insufficient(
    tenant: str, ref: RecordRef, why: str, now: datetime, link_id: str | None = None
) -> ReviewItem:
    return review_item(
        tenant,
        ReviewReason.INSUFFICIENT_CONTACT_DATA,
        f"not created: {why}",
        now,
        record=ref,
        link_id=link_id,
    )


def _create_allowed(member: Member, props: Props) -> str | None:
    """Why a create with ``props`` cannot be sent (``None`` when it can)."""
    present = [p for p, v in props.items() if v is not None]
    if member.is_hub:
        if not any(p in CONTACT_DATA_PROPERTIES for p in present):
            return HUB_RECORD_NEEDS
        return None
    if member.ref.resource == CUSTOMERS and not {"first_name", "last_name"} <= set(present):
        return CUSTOMER_NEEDS
    return None


def sync(link: Link, policy: Policy, cause: EventRef, now: datetime, fx: Effects) -> Link:
    """Merge the link, emit the writes that can go now, hold the others, move the base."""
    the_plan = plan(link, policy)
    for conflict in the_plan.conflicts:
        sides = sorted(
            [conflict.winner, *conflict.losers],
            key=lambda c: (c.member, cmp(conflict.property, c.value) or ""),
        )
        conflict_id = derive_id(
            "conflict",
            link.link_id,
            conflict.property,
            [[c.member, cmp(conflict.property, c.value), c.changed_at] for c in sides],
        )
        if all(c.conflict_id != conflict_id for c in fx.conflicts):
            fx.conflicts.append(
                Conflict(
                    conflict_id=conflict_id,
                    tenant=link.tenant,
                    link_id=link.link_id,
                    property=conflict.property,
                    kind=conflict.kind,
                    rule=conflict.rule.label,
                    winner=_conflict_side(conflict.winner),
                    losers=tuple(_conflict_side(c) for c in conflict.losers),
                    cause=cause,
                    at=now,
                )
            )
    if the_plan.refused:
        fx.refused = True
        fx.add_review(
            review_item(
                link.tenant,
                ReviewReason.WOULD_EMPTY_HUB_RECORD,
                "clearing refused: the hub record would be left without any name, e-mail or "
                f"phone (properties: {', '.join(the_plan.refused)})",
                now,
                record=link.hub_member.ref if link.hub_member is not None else None,
                link_id=link.link_id,
                subject=list(the_plan.refused),
            )
        )
    for key, props in sorted(needs(link, the_plan).items()):
        member = link.member(key)
        assert member is not None
        if member.pending is not None:
            fx.held = True
            continue
        if member.ref.id is None:
            create_props = {
                p: the_plan.desired[p]
                for p in member.mapped
                if p in the_plan.desired and the_plan.desired[p] is not None
            }
            refusal = _create_allowed(member, create_props)
            if refusal is not None:
                fx.add_review(insufficient(link.tenant, member.ref, refusal, now, link.link_id))
                continue
            link, command = issue_write(
                link, member, CommandAction.CREATE, create_props, cause, now
            )
        else:
            link, command = issue_write(link, member, CommandAction.UPDATE, props, cause, now)
        fx.commands.append(command)
    return refresh_base(link)


def edit_kind(fx: Effects) -> DecisionKind:
    if fx.conflicts:
        return DecisionKind.CONFLICT
    if fx.commands:
        return DecisionKind.MAPPED
    if fx.held:
        return DecisionKind.HELD
    if fx.refused:
        return DecisionKind.REVIEW
    return DecisionKind.MAPPED


def make_decision(
    kind: DecisionKind,
    fx: Effects,
    *,
    reason: str | None = None,
    links: Sequence[Link] = (),
    index_upserts: Sequence[ContactIndexEntry] = (),
    index_deletes: Sequence[str] = (),
) -> Decision:
    return Decision(
        kind=kind,
        reason=reason,
        links=tuple(links),
        commands=tuple(fx.commands),
        conflicts=tuple(fx.conflicts),
        review_items=tuple(fx.reviews),
        index_upserts=tuple(index_upserts),
        index_deletes=tuple(index_deletes),
    )


# ------------------------------------------------------------------------------------------------
# Observing a member
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    member: Member
    kind: DecisionKind
    """MAPPED (an edit), ECHO or NOOP."""
    unchanged: bool
    """Exactly the state already observed (a replay)."""


def observe(
    member: Member,
    reading: Reading,
    *,
    source_ts: datetime,
    revision: int | None,
    event_id: str,
    now: datetime,
) -> Observation:
    prev = member.observed
    in_flight = pending_props(member)
    unstamped = _same_stamp(prev, revision, source_ts)
    edited: list[str] = []
    landed: list[str] = []
    reverted: list[str] = []
    for prop, value in reading.props.items():
        if (
            prev is not None
            and prop in prev.props
            and cmp(prop, value) == cmp(prop, prev.props[prop])
        ):
            continue
        if prop in in_flight and cmp(prop, value) == cmp(prop, in_flight[prop]):
            landed.append(prop)
        elif unstamped and prev is not None and holds_our_write(member, prop, prev.props.get(prop)):
            # Our write is gone but the record's stamp never moved: nobody edited it (every
            # edit moves the stamp), the write did not stick — write it again, not an edit.
            reverted.append(prop)
        else:
            edited.append(prop)
    reshaped = prev is not None and set(prev.props) != set(reading.props)
    snapshot = new_snapshot(
        reading,
        source_ts=source_ts,
        revision=revision,
        origin=Origin.EVENT,
        event_id=event_id,
        previous=prev,
        changed=[*edited, *landed],
    )
    pending = member.pending
    written = member.written
    if written is not None and any(p in written.props for p in edited):
        kept = {p: v for p, v in written.props.items() if p not in edited}
        written = written.model_copy(update={"props": kept}) if kept else None
    if pending is not None and pending.action is CommandAction.UPDATE and edited:
        # The user changed a property we are writing: our value no longer stands for it. The
        # pending write itself stays until its outcome, which releases any held writes.
        remaining = {p: v for p, v in pending.props.items() if p not in edited}
        if remaining != pending.props:
            pending = pending.model_copy(update={"props": remaining})
    still_reverted = sorted((set(member.reverted) - set(edited) - set(landed)) | set(reverted))
    updated = member.model_copy(
        update={
            "observed": snapshot,
            "pending": pending,
            "written": written,
            "reverted": tuple(still_reverted),
        }
    )
    if edited or reshaped or reverted:
        kind = DecisionKind.MAPPED
    elif landed or (prev is not None and prev.origin is Origin.WRITE):
        kind = DecisionKind.ECHO
    else:
        kind = DecisionKind.NOOP
    unchanged = (
        prev is not None
        and prev.props == snapshot.props
        and prev.source_ts == snapshot.source_ts
        and prev.revision == snapshot.revision
        and prev.origin is Origin.EVENT
        and not landed
    )
    return Observation(updated, kind, unchanged)


def _same_stamp(prev: Snapshot | None, revision: int | None, source_ts: datetime) -> bool:
    """Whether a new observation carries exactly the stamp of ``prev`` (the revision when
    both have one; else the source timestamp): the record was not edited in between."""
    if prev is None:
        return False
    if revision is not None and prev.revision is not None:
        return revision == prev.revision
    return prev.source_ts is not None and source_ts == prev.source_ts


def member_change(
    link: Link,
    member: Member,
    reading: Reading,
    change: Change,
    revision: int | None,
    policy: Policy,
    now: datetime,
    index_upserts: Sequence[ContactIndexEntry] = (),
) -> Decision:
    cause = EventRef(kind="change", id=change.event_id)
    fx = Effects()
    observation = observe(
        member,
        reading,
        source_ts=change.source_ts,
        revision=revision,
        event_id=change.event_id,
        now=now,
    )
    link = link.replace_member(member.key, observation.member)
    if observation.kind is not DecisionKind.MAPPED:
        if observation.unchanged:
            return make_decision(observation.kind, fx, reason="replay", index_upserts=index_upserts)
        return make_decision(
            observation.kind,
            fx,
            links=(touch(refresh_base(link), now),),
            index_upserts=index_upserts,
        )
    for item in issue_reviews(link.tenant, member.ref, reading, link.link_id, now):
        fx.add_review(item)
    link = sync(link, policy, cause, now, fx)
    return make_decision(edit_kind(fx), fx, links=(touch(link, now),), index_upserts=index_upserts)


def delete_command(link: Link, member: Member, cause: EventRef) -> Command:
    return command_for(link, member, CommandAction.DELETE, {}, cause)
