"""Decisions on the loader's outcomes: completing creates, confirming writes, re-merging
conflicts, recording failures.

``on_outcome(link, outcome, policy, now, contact_link=None)``:

* ``created`` / ``linked_existing`` complete the member (id, observed state) and release the writes
  held meanwhile; a ``linked_existing`` hub record already owned by another link
  (``contact_link``, looked up by the shell by the hub record's id) merges this link's flow
  members into that link;
* ``applied`` / ``noop`` confirm the write (``written``; ``base`` moves once every member agrees)
  and release held writes;
* ``conflict`` re-merges with the fresh target state carried by the outcome (possibly a new command
  against the fresh revision);
* ``rejected`` / ``failed`` record the reason on the member; a rejected value is not re-sent until
  the desired value changes; a failed create marks the link ``error`` (the next change retries).

An outcome for a command that is no longer in flight only contributes its state if it is newer.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from datetime import datetime

from services.mapper.domain.mappings import (
    Props,
    Reading,
    hub_revision,
)
from services.mapper.domain.merge import (
    cmp,
    refresh_base,
)
from services.mapper.domain.messages import (
    ContactIndexEntry,
    Decision,
    DecisionKind,
    EventRef,
    Outcome,
    OutcomeKind,
    ReviewReason,
)
from services.mapper.domain.policy import Policy
from services.mapper.domain.state import (
    NO_MEMBER_LEFT,
    CommandAction,
    ErrorInfo,
    Link,
    LinkStatus,
    Member,
    MemberStatus,
    Origin,
    Snapshot,
    Written,
)
from services.mapper.domain.sync import (
    Effects,
    delete_command,
    edit_kind,
    index_entry,
    is_stale,
    make_decision,
    new_snapshot,
    observe,
    read_target,
    require,
    review_item,
    sync,
    touch,
)

# ------------------------------------------------------------------------------------------------


def _pending_member(link: Link, command_id: str) -> Member | None:
    for member in link.members:
        if member.pending is not None and member.pending.command_id == command_id:
            return member
    return None


def on_outcome(
    link: Link | None,
    outcome: Outcome,
    policy: Policy,
    now: datetime,
    contact_link: Link | None = None,
) -> Decision:
    """Apply the loader's report on one of our commands.

    * ``created`` / ``linked_existing`` complete the member (id, observed state); the writes held
      meanwhile are computed and emitted. A ``linked_existing`` hub record already owned by
      another link (``contact_link``) merges this link's flow members into that link.
    * ``applied`` / ``noop`` confirm the write (``written``, ``base``) and release held writes.
    * ``conflict`` re-merges with the fresh target state the outcome carries.
    * ``rejected`` / ``failed`` record the reason on the member (a failed create marks the link
      ``error``; the next change retries it)."""
    fx = Effects()
    if link is None:
        return make_decision(DecisionKind.STALE, fx, reason="unknown_link")
    require(link.link_id == outcome.link_id, "outcome is for another link")
    cause = EventRef(kind="outcome", id=outcome.outcome_id)
    member = _pending_member(link, outcome.command_id)
    if member is None:
        return _superseded_outcome(link, outcome, policy, now, cause)
    pending = member.pending
    assert pending is not None

    if outcome.kind in (OutcomeKind.CREATED, OutcomeKind.LINKED_EXISTING):
        return _completed_create(link, member, outcome, policy, now, cause, contact_link)

    if outcome.kind in (OutcomeKind.APPLIED, OutcomeKind.NOOP):
        observed = member.observed
        if outcome.record is not None:
            reading = read_target(member.ref, outcome.record)
            revision = _outcome_revision(member, outcome)
            if not is_stale(observed, revision, outcome.source_ts):
                observed = new_snapshot(
                    reading,
                    source_ts=outcome.source_ts,
                    revision=revision,
                    origin=Origin.WRITE,
                    event_id=None,
                    previous=observed,
                    changed=_differing(observed, reading.props),
                )
        elif observed is not None:
            props = {**observed.props, **pending.props}
            observed = observed.model_copy(
                update={
                    "props": props,
                    "origin": Origin.WRITE,
                    "revision": outcome.revision
                    if outcome.revision is not None
                    else observed.revision,
                }
            )
        updated = member.model_copy(
            update={
                "observed": observed,
                "pending": None,
                "written": Written(command_id=pending.command_id, props=pending.props, at=now),
                "reverted": tuple(p for p in member.reverted if p not in pending.props),
                "last_error": None,
            }
        )
        link = link.replace_member(member.key, updated)
        link = sync(link, policy, cause, now, fx)
        return make_decision(
            DecisionKind.COMPLETED, fx, reason=outcome.kind.value, links=(touch(link, now),)
        )

    if outcome.kind is OutcomeKind.CONFLICT:
        observed = member.observed
        if outcome.record is None:
            # Without the fresh state a re-merge would resend the same write: wait for the
            # change event of whatever edit caused the conflict.
            updated = member.model_copy(
                update={"pending": None, "last_error": _error(outcome, now)}
            )
            return make_decision(
                DecisionKind.RECORDED,
                fx,
                reason="conflict_without_state",
                links=(touch(link.replace_member(member.key, updated), now),),
            )
        reading = read_target(member.ref, outcome.record)
        revision = _outcome_revision(member, outcome)
        if not is_stale(observed, revision, outcome.source_ts):
            observed = new_snapshot(
                reading,
                source_ts=outcome.source_ts,
                revision=revision,
                origin=Origin.EVENT,
                event_id=None,
                previous=observed,
                changed=_differing(observed, reading.props),
            )
        updated = member.model_copy(update={"observed": observed, "pending": None})
        link = link.replace_member(member.key, updated)
        link = sync(link, policy, cause, now, fx)
        return make_decision(edit_kind(fx), fx, reason="remerged", links=(touch(link, now),))

    # rejected / failed
    updated = member.model_copy(update={"pending": None, "last_error": _error(outcome, now)})
    if pending.action is CommandAction.UPDATE and outcome.kind is OutcomeKind.REJECTED:
        rejected = dict(member.rejected)
        for prop, value in pending.props.items():
            rejected[prop] = cmp(prop, value)
        updated = updated.model_copy(update={"rejected": rejected})
    link = link.replace_member(member.key, updated)
    if pending.action is CommandAction.CREATE:
        link = link.model_copy(
            update={"status": LinkStatus.ERROR, "status_reason": f"create_{outcome.kind.value}"}
        )
    if outcome.kind is OutcomeKind.REJECTED:
        fx.add_review(
            review_item(
                link.tenant,
                ReviewReason.WRITE_REJECTED,
                f"{pending.action.value} of {member.key} rejected"
                + (f" ({outcome.error_code})" if outcome.error_code else ""),
                now,
                record=member.ref,
                link_id=link.link_id,
                subject=outcome.command_id,
            )
        )
    return make_decision(
        DecisionKind.RECORDED, fx, reason=outcome.kind.value, links=(touch(link, now),)
    )


def _error(outcome: Outcome, now: datetime) -> ErrorInfo:
    return ErrorInfo(
        outcome=outcome.kind.value,
        command_id=outcome.command_id,
        code=outcome.error_code,
        message=outcome.error_message,
        at=now,
    )


def _outcome_revision(member: Member, outcome: Outcome) -> int | None:
    if not member.is_hub:
        return None
    if outcome.record is not None:
        return hub_revision(outcome.revision, outcome.record)
    return outcome.revision


def _differing(previous: Snapshot | None, props: Props) -> list[str]:
    if previous is None:
        return list(props)
    return [
        p
        for p, v in props.items()
        if p not in previous.props or cmp(p, v) != cmp(p, previous.props[p])
    ]


def _superseded_outcome(
    link: Link, outcome: Outcome, policy: Policy, now: datetime, cause: EventRef
) -> Decision:
    """An outcome for a command that is no longer in flight (a delete, or replaced by an echo):
    take its state if it is newer, and merge again."""
    fx = Effects()
    member = link.member_for(outcome.target) if outcome.target.id is not None else None
    if member is None or not member.active or outcome.record is None:
        return make_decision(DecisionKind.RECORDED, fx, reason=f"untracked_{outcome.kind.value}")
    if outcome.kind not in (OutcomeKind.APPLIED, OutcomeKind.NOOP, OutcomeKind.CONFLICT):
        return make_decision(DecisionKind.RECORDED, fx, reason=f"untracked_{outcome.kind.value}")
    reading = read_target(member.ref, outcome.record)
    revision = _outcome_revision(member, outcome)
    if outcome.source_ts is None and revision is None:
        return make_decision(DecisionKind.STALE, fx, reason="superseded_without_version")
    if is_stale(member.observed, revision, outcome.source_ts):
        return make_decision(DecisionKind.STALE, fx, reason="superseded")
    previous = member.observed
    if previous is not None and all(
        cmp(p, v) == cmp(p, previous.props.get(p)) for p, v in reading.props.items()
    ):
        return make_decision(DecisionKind.NOOP, fx, reason="superseded")
    observation = observe(
        member,
        reading,
        source_ts=outcome.source_ts or (previous.source_ts if previous else None) or now,
        revision=revision,
        event_id=outcome.outcome_id,
        now=now,
    )
    link = link.replace_member(member.key, observation.member)
    if observation.kind is not DecisionKind.MAPPED:
        return make_decision(observation.kind, fx, links=(touch(refresh_base(link), now),))
    link = sync(link, policy, cause, now, fx)
    return make_decision(edit_kind(fx), fx, reason="superseded", links=(touch(link, now),))


def _completed_create(
    link: Link,
    member: Member,
    outcome: Outcome,
    policy: Policy,
    now: datetime,
    cause: EventRef,
    contact_link: Link | None,
) -> Decision:
    fx = Effects()
    pending = member.pending
    assert pending is not None
    require(outcome.target.id is not None, f"{outcome.kind.value} outcome without a record id")
    created = outcome.kind is OutcomeKind.CREATED
    ref = member.ref.model_copy(update={"id": outcome.target.id})
    if outcome.target.parent_id is not None:
        ref = ref.model_copy(update={"parent_id": outcome.target.parent_id})
    index: list[ContactIndexEntry] = []
    if outcome.record is not None:
        reading = read_target(ref, outcome.record)
        revision = _outcome_revision(member, outcome)
        if member.is_hub and ref.id is not None:
            index.append(
                index_entry(link.tenant, ref.id, outcome.record, revision, outcome.source_ts)
            )
    else:
        props = {p: pending.props.get(p) for p in member.mapped}
        reading = Reading(props=props, raw={})
        revision = outcome.revision
    observed = new_snapshot(
        reading,
        source_ts=outcome.source_ts,
        revision=revision,
        origin=Origin.WRITE if created else Origin.EVENT,
        event_id=None,
    )
    if member.observed is not None and is_stale(member.observed, revision, outcome.source_ts):
        # The created record's own change event came first (``adopt_own_create``) and is
        # newer than the state the outcome carries (edited meanwhile): keep it.
        observed = member.observed
    completed = member.model_copy(
        update={
            "ref": ref,
            "observed": observed,
            "pending": None,
            "written": (
                Written(command_id=pending.command_id, props=pending.props, at=now)
                if created
                else None
            ),
            "created_by_engine": created,
            "last_error": None,
            "synced": (),
        }
    )
    link = link.replace_member(member.key, completed)
    if link.status is LinkStatus.ERROR:
        link = link.model_copy(update={"status": LinkStatus.ACTIVE, "status_reason": None})

    if (
        not created
        and contact_link is not None
        and contact_link.link_id != link.link_id
        and member.is_hub
    ):
        return _merge_into(link, contact_link, policy, now, cause, index)

    if not [m for m in link.flow_members if m.active]:
        # Every flow member went away while the create was in flight.
        link = link.model_copy(
            update={"status": LinkStatus.UNLINKED, "status_reason": NO_MEMBER_LEFT}
        )
        if policy.propagate_deletes and created and member.is_hub:
            fx.commands.append(delete_command(link, completed, cause))
        return make_decision(
            DecisionKind.UNLINKED,
            fx,
            reason=NO_MEMBER_LEFT,
            links=(touch(link, now),),
            index_upserts=index,
        )
    link = sync(link, policy, cause, now, fx)
    return make_decision(
        DecisionKind.COMPLETED,
        fx,
        reason=outcome.kind.value,
        links=(touch(link, now),),
        index_upserts=index,
    )


def _merge_into(
    link: Link,
    target: Link,
    policy: Policy,
    now: datetime,
    cause: EventRef,
    index: list[ContactIndexEntry],
) -> Decision:
    """The loader found our new hub record already linked elsewhere: move our flow members into
    that link (they join it as new members) and retire this link."""
    fx = Effects()
    require(target.tenant == link.tenant, "contact link belongs to another tenant")
    moved = [
        m.model_copy(update={"synced": (), "pending": None, "joined_at": now})
        for m in link.flow_members
        if m.active and m.ref.id is not None
    ]
    merged = target
    for member in moved:
        existing = merged.member(member.key)
        merged = (
            merged.replace_member(member.key, member)
            if existing is not None
            else merged.add_member(member)
        )
    if merged.status is not LinkStatus.ACTIVE:
        merged = merged.model_copy(update={"status": LinkStatus.ACTIVE, "status_reason": None})
    merged = sync(merged, policy, cause, now, fx)
    retired = link.model_copy(
        update={
            "status": LinkStatus.MERGED,
            "status_reason": "contact_already_linked",
            "merged_into": target.link_id,
            "members": tuple(
                m.model_copy(update={"status": MemberStatus.UNLINKED, "status_reason": "merged"})
                for m in link.members
            ),
        }
    )
    return make_decision(
        DecisionKind.COMPLETED,
        fx,
        reason="merged_into_existing_link",
        links=(touch(merged, now), touch(retired, now)),
        index_upserts=index,
    )
