"""Operator actions: pure decisions of (action, link state, review item, candidates, now).

An operator resolves what the engine could not decide alone (``docs/mapper.md``, "Operator
actions"). The service shell loads what an action names — the review item, the record's link
and last known state, the chosen candidate, the held deletes — and calls ``decide_action``; the
``ActionResult`` it gets back holds an ordinary ``Decision`` (links to save, commands for the
outbox, review items) plus what only actions do (review items to resolve, the record to ignore
or stop ignoring). An action that cannot apply is *rejected* with a reason, never raised: the
shell records it in the audit table and moves on.

* ``LINK_TO_CANDIDATE`` — link the member record of an open review item to one of the
  candidates that review lists (only a listed one, and only while it still shares a match key);
  the ordinary merge follows, so the hub record is updated.
* ``CREATE_NEW_CONTACT`` — create a hub record for a record in review anyway.
* ``IGNORE_RECORD`` — never sync this record (its changes are skipped as ``ignored``); a linked
  member record leaves its link first (member ``unlinked``, reason ``ignored``; nothing is
  deleted). A linked hub record is not ignored: unlink its link first.
* ``UNIGNORE_RECORD`` — stop ignoring; the shell feeds the record's last known state through
  the ordinary change path (it rejoins its link, is matched, or goes to review again).
* ``UNLINK`` — dissolve a link: it and its members become ``unlinked`` (``operator_unlink``);
  the records stay, nothing is deleted; later changes of its records are recorded, not synced.
* ``RESYNC`` — push the current (observed) values of one side (``side``: a system name, the
  hub's or a member flow's) to every other member now: every
  property they map is written, unguarded, against the target's fresh state (the loader reads
  it: a change made behind the engine's back, which no event showed, is overwritten too).
* ``RETRY_COMMAND`` — a member's last write failed or was rejected: forget that error and the
  rejected values, and merge again (the write is emitted anew; its id derives from the action).
* ``RESET_DELETE_BREAKER`` — emit the deletes the mass-delete breaker held, after review.
* ``REDRIVE_DEAD_LETTERS`` — only recorded here; the console re-drives
  (``services.replay.deadletters.redrive_selected``).

Every id derives from the action id (the commands' cause is ``EventRef("action", action_id)``),
so applying an action twice yields the same decision; the shell applies each action id once.

Pure module: it imports no I/O library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from services.core.operator_actions import ACTING_ROLES, ActionKind
from services.mapper.domain.decide import on_member_change
from services.mapper.domain.identity import RecordRef
from services.mapper.domain.mappings import (
    CONTACT_DATA_PROPERTIES,
    FLOWS,
    flow_for,
    hub,
    is_hub,
    match_keys,
)
from services.mapper.domain.matching import MatchKind, match
from services.mapper.domain.merge import refresh_base
from services.mapper.domain.messages import (
    Candidate,
    Change,
    Command,
    Decision,
    DecisionKind,
    EventRef,
    ReviewItem,
    ReviewReason,
)
from services.mapper.domain.policy import Policy
from services.mapper.domain.state import (
    NO_MEMBER_LEFT,
    CommandAction,
    Link,
    LinkStatus,
    Member,
    MemberStatus,
)
from services.mapper.domain.sync import (
    Effects,
    delete_command,
    issue_write,
    make_decision,
    review_item,
    sync,
    touch,
)

__all__ = [
    "OPERATOR_UNLINK",
    "ActionInputs",
    "ActionKind",
    "ActionResult",
    "ActionStatus",
    "HeldDelete",
    "OperatorAction",
    "decide_action",
    "known_state_change",
    "subject_of",
]

IGNORED = "ignored"
OPERATOR_UNLINK = "operator_unlink"
#: Decisions after which the record of a LINK_TO_CANDIDATE / CREATE_NEW_CONTACT is linked.
_LINKED = frozenset({DecisionKind.LINKED, DecisionKind.CONFLICT, DecisionKind.CREATE})


class OperatorAction(BaseModel):
    """One decoded ``OperatorAction`` event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action_id: str
    tenant: str
    actor: str
    role: str
    at: datetime
    reason: str
    kind: ActionKind
    review_id: str | None = None
    link_id: str | None = None
    record: RecordRef | None = None
    contact_id: str | None = None
    side: str | None = None
    command_id: str | None = None
    deadletter_stage: str | None = None
    deadletter_ids: tuple[str, ...] = ()

    @property
    def cause(self) -> EventRef:
        return EventRef(kind="action", id=self.action_id)


class HeldDelete(BaseModel):
    """A delete the mass-delete breaker held (its open review row) and the link it was for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    review_id: str
    target: RecordRef
    link: Link | None = None


@dataclass(frozen=True)
class ActionInputs:
    """What the shell loaded for an action (each under its lock)."""

    review: ReviewItem | None = None
    """The review item ``action.review_id`` names (None: unknown)."""
    review_resolution: str | None = None
    """How that review item was resolved (None: it is open)."""
    link: Link | None = None
    """The link ``action.link_id`` names."""
    record_link: Link | None = None
    """The link holding the action's record (by member identity), if any."""
    change: Change | None = None
    """The record's last known state as a change (``known_state_change``), if known."""
    candidate: Candidate | None = None
    """LINK_TO_CANDIDATE: the chosen contact (index entry and owning link) or link."""
    ignored: bool = False
    """Whether the action's record is ignored now."""
    held: tuple[HeldDelete, ...] = ()
    """RESET_DELETE_BREAKER: the open held-delete review rows (those named, or all)."""


class ActionStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"


@dataclass(frozen=True)
class ActionResult:
    """What the shell persists for one action (besides the audit row)."""

    status: ActionStatus
    detail: str
    """What it did, or why it was rejected (no personal data)."""
    decision: Decision
    record: RecordRef | None = None
    """The record the action is about (the history row's subject), if any."""
    resolve_reviews: tuple[str, ...] = ()
    """Review ids the action resolves (``resolution = 'operator:<kind>'``)."""
    resolve_record_reviews: bool = False
    """Resolve every open review item of ``record`` (IGNORE_RECORD)."""
    ignore: bool = False
    """Start ignoring ``record``."""
    unignore: bool = False
    """Stop ignoring ``record`` and feed its last known state through the change path."""
    bypass_breaker: bool = False
    """The commands were reviewed by an operator: the mass-delete breaker does not hold them."""
    read_fresh: bool = False
    """Send the commands without the last known target record (the loader reads it fresh)."""

    @property
    def result(self) -> str:
        """``applied`` or ``rejected: <why>`` (the audit row's ``result``)."""
        if self.status is ActionStatus.APPLIED:
            return ActionStatus.APPLIED.value
        return f"{ActionStatus.REJECTED.value}: {self.detail}"


def _rejected(why: str, record: RecordRef | None = None) -> ActionResult:
    return ActionResult(
        status=ActionStatus.REJECTED,
        detail=why,
        decision=make_decision(DecisionKind.SKIPPED, Effects(), reason=f"rejected: {why}"),
        record=record,
    )


def _applied(
    detail: str,
    decision: Decision,
    *,
    record: RecordRef | None = None,
    resolve_reviews: tuple[str, ...] = (),
    resolve_record_reviews: bool = False,
    ignore: bool = False,
    unignore: bool = False,
    bypass_breaker: bool = False,
    read_fresh: bool = False,
) -> ActionResult:
    return ActionResult(
        status=ActionStatus.APPLIED,
        detail=detail,
        decision=decision,
        record=record,
        resolve_reviews=resolve_reviews,
        resolve_record_reviews=resolve_record_reviews,
        ignore=ignore,
        unignore=unignore,
        bypass_breaker=bypass_breaker,
        read_fresh=read_fresh,
    )


def known_state_change(
    action_id: str,
    ref: RecordRef,
    record: dict[str, object],
    source_ts: datetime,
    revision: int | None = None,
) -> Change:
    """The record's last known state as a change caused by an action (its id derives from the
    action, so the commands it leads to do too)."""
    assert ref.id is not None
    return Change(
        event_id=f"action:{action_id}",
        tenant=ref.tenant,
        system=ref.system,
        resource=ref.resource,
        record_id=ref.id,
        source_ts=source_ts,
        revision=revision,
        record=dict(record),
        parent_id=ref.parent_id,
    )


# ------------------------------------------------------------------------------------------------


def decide_action(
    action: OperatorAction, inputs: ActionInputs, policy: Policy, now: datetime
) -> ActionResult:
    """Decide what ``action`` does to the state in ``inputs`` (rejected with a reason when it
    cannot apply)."""
    if action.role not in ACTING_ROLES:
        return _rejected(f"role {action.role!r} may not act")
    for loaded in (inputs.review, inputs.link, inputs.record_link):
        if loaded is not None and loaded.tenant != action.tenant:
            return _rejected("the action names state of another tenant")
    kind = action.kind
    if (
        action.review_id is not None
        and inputs.review is None
        and kind is not ActionKind.RESET_DELETE_BREAKER  # its reviews are the shell's own rows
    ):
        return _rejected(f"unknown review item {action.review_id}")
    if kind is ActionKind.LINK_TO_CANDIDATE:
        return _link_to_candidate(action, inputs, policy, now)
    if kind is ActionKind.CREATE_NEW_CONTACT:
        return _create_new_contact(action, inputs, policy, now)
    if kind is ActionKind.IGNORE_RECORD:
        return _ignore(action, inputs, now)
    if kind is ActionKind.UNIGNORE_RECORD:
        return _unignore(action, inputs)
    if kind is ActionKind.UNLINK:
        return _unlink(action, inputs, now)
    if kind is ActionKind.RESYNC:
        return _resync(action, inputs, now)
    if kind is ActionKind.RETRY_COMMAND:
        return _retry(action, inputs, policy, now)
    if kind is ActionKind.RESET_DELETE_BREAKER:
        return _release_deletes(action, inputs)
    # REDRIVE_DEAD_LETTERS: the console re-drives; the mapper keeps the audit trail.
    ids = len(action.deadletter_ids)
    return _applied(
        f"recorded: re-drive of {action.deadletter_stage} dead letters "
        f"({ids if ids else 'all not yet re-driven'})",
        make_decision(DecisionKind.SKIPPED, Effects(), reason="recorded"),
    )


def subject_of(action: OperatorAction, review: ReviewItem | None) -> RecordRef | None:
    """The record an action is about: the one it names, else its review item's."""
    if action.record is not None:
        return action.record
    return review.record if review is not None else None


def _open_review(action: OperatorAction, inputs: ActionInputs) -> str | None:
    """Why the action's review item cannot be acted on (None: it can, or none is named)."""
    if action.review_id is None:
        return None
    if inputs.review_resolution is not None:
        return f"review item {action.review_id} is already resolved ({inputs.review_resolution})"
    return None


def _unlinked_member_record(
    action: OperatorAction, inputs: ActionInputs
) -> tuple[RecordRef | None, str | None]:
    """The action's member record, or why it cannot be linked or created."""
    ref = subject_of(action, inputs.review)
    if ref is None or ref.id is None:
        return None, "no record named (neither a record nor a review item with one)"
    flow = FLOWS.get(ref.resource)
    if flow is None or flow.system != ref.system:
        return ref, f"{ref.key} is not a record of a member flow"
    why = _open_review(action, inputs)
    if why is not None:
        return ref, why
    if inputs.ignored:
        return ref, f"{ref.key} is ignored: unignore it first"
    if inputs.record_link is not None:
        return ref, f"{ref.key} already belongs to link {inputs.record_link.link_id}"
    if inputs.change is None:
        return ref, f"the last known state of {ref.key} is missing"
    return ref, None


def _link_to_candidate(
    action: OperatorAction, inputs: ActionInputs, policy: Policy, now: datetime
) -> ActionResult:
    ref, why = _unlinked_member_record(action, inputs)
    if why is not None:
        return _rejected(why, ref)
    review = inputs.review
    assert review is not None and ref is not None and inputs.change is not None
    if action.contact_id not in review.candidates:
        return _rejected(
            f"{action.contact_id} is not a candidate of review item {review.review_id}", ref
        )
    candidate = inputs.candidate
    if candidate is None:
        return _rejected(f"candidate {action.contact_id} is gone (deleted or merged)", ref)
    record = inputs.change.record or {}
    keys = match_keys(flow_for(ref.resource), record)
    if match(keys, [candidate], action.tenant).kind is not MatchKind.LINK:
        return _rejected(
            f"candidate {action.contact_id} no longer matches {ref.key} (no shared key, "
            "or its link is not live)",
            ref,
        )
    decision = on_member_change(None, inputs.change, [candidate], policy, now)
    if decision.kind not in _LINKED:
        return _rejected(f"not linked: {decision.kind.value} ({decision.reason})", ref)
    return _applied(
        f"linked {ref.key} to {action.contact_id} ({len(decision.commands)} commands)",
        decision,
        record=ref,
        resolve_reviews=(review.review_id,),
    )


def _create_new_contact(
    action: OperatorAction, inputs: ActionInputs, policy: Policy, now: datetime
) -> ActionResult:
    ref, why = _unlinked_member_record(action, inputs)
    if why is not None:
        return _rejected(why, ref)
    assert ref is not None and inputs.change is not None
    decision = on_member_change(None, inputs.change, [], policy, now)
    if decision.kind is not DecisionKind.CREATE:
        return _rejected(f"not created: {decision.kind.value} ({decision.reason})", ref)
    # A new hub record although others carry its e-mail/phone: the hub must not refuse it as a
    # duplicate (the loader would link the existing one instead).
    commands = tuple(
        c.model_copy(update={"allow_duplicates": True})
        if c.action is CommandAction.CREATE and is_hub(c.target.system, c.target.resource)
        else c
        for c in decision.commands
    )
    decision = decision.model_copy(update={"commands": commands})
    reviews = (inputs.review.review_id,) if inputs.review is not None else ()
    return _applied(
        f"creating a hub record for {ref.key}", decision, record=ref, resolve_reviews=reviews
    )


def _ignore(action: OperatorAction, inputs: ActionInputs, now: datetime) -> ActionResult:
    ref = subject_of(action, inputs.review)
    if ref is None or ref.id is None:
        return _rejected("no record named (neither a record nor a review item with one)")
    if inputs.ignored:
        return _rejected(f"{ref.key} is already ignored", ref)
    link = inputs.record_link
    member = link.member_for(ref) if link is not None else None
    links: tuple[Link, ...] = ()
    if link is not None and member is not None and member.active:
        if member.is_hub:
            return _rejected(
                f"{ref.key} is the hub record of link {link.link_id}: unlink the link first", ref
            )
        link = link.replace_member(
            member.key,
            member.model_copy(
                update={
                    "status": MemberStatus.UNLINKED,
                    "status_reason": IGNORED,
                    "pending": None,
                    "synced": (),
                }
            ),
        )
        if not [m for m in link.flow_members if m.active]:
            link = link.model_copy(
                update={"status": LinkStatus.UNLINKED, "status_reason": NO_MEMBER_LEFT}
            )
        links = (touch(link, now),)
    kind = DecisionKind.UNLINKED if links else DecisionKind.SKIPPED
    return _applied(
        f"ignoring {ref.key}" + (f" (left link {links[0].link_id})" if links else ""),
        make_decision(kind, Effects(), reason=IGNORED, links=links),
        record=ref,
        resolve_record_reviews=True,
        ignore=True,
    )


def _unignore(action: OperatorAction, inputs: ActionInputs) -> ActionResult:
    ref = subject_of(action, inputs.review)
    if ref is None or ref.id is None:
        return _rejected("no record named (neither a record nor a review item with one)")
    if not inputs.ignored:
        return _rejected(f"{ref.key} is not ignored", ref)
    return _applied(
        f"no longer ignoring {ref.key}",
        make_decision(DecisionKind.SKIPPED, Effects(), reason="unignored"),
        record=ref,
        unignore=True,
    )


def _live_link(action: OperatorAction, link: Link | None) -> str | None:
    if link is None:
        return f"unknown link {action.link_id}"
    if link.status is LinkStatus.MERGED:
        return f"link {link.link_id} was merged into {link.merged_into}"
    return None


def _unlink(action: OperatorAction, inputs: ActionInputs, now: datetime) -> ActionResult:
    link = inputs.link
    why = _live_link(action, link)
    if why is not None:
        return _rejected(why)
    assert link is not None
    if not any(m.active for m in link.members):
        return _rejected(f"link {link.link_id} is already unlinked")
    members = tuple(
        m.model_copy(update={"status": MemberStatus.UNLINKED, "status_reason": OPERATOR_UNLINK})
        if m.active
        else m
        for m in link.members
    )
    unlinked = link.model_copy(
        update={
            "members": tuple(m.model_copy(update={"pending": None}) for m in members),
            "status": LinkStatus.UNLINKED,
            "status_reason": OPERATOR_UNLINK,
        }
    )
    return _applied(
        f"unlinked link {link.link_id} ({len(link.members)} records kept)",
        make_decision(
            DecisionKind.UNLINKED, Effects(), reason=OPERATOR_UNLINK, links=(touch(unlinked, now),)
        ),
        record=link.hub_member.ref if link.hub_member is not None else None,
    )


def _resync_source(action: OperatorAction, link: Link) -> Member | str:
    """The member whose state a RESYNC pushes, or why there is none."""
    hub_system = hub().system
    if action.side == hub_system:
        hub_member = link.hub_member
        if (
            hub_member is None
            or not hub_member.active
            or hub_member.ref.id is None
            or hub_member.observed is None
        ):
            return f"link {link.link_id} has no live hub record with a known state"
        return hub_member
    member_systems = sorted({flow.system for flow in FLOWS.values()})
    if action.side not in member_systems:
        return f"unknown side {action.side!r} ({' or '.join([hub_system, *member_systems])})"
    if action.record is not None:
        member = link.member_for(action.record)
        if member is None or member.is_hub or member.ref.system != action.side:
            return f"{action.record.key} is not a {action.side} record of link {link.link_id}"
        candidates = [member]
    else:
        candidates = [m for m in link.flow_members if m.ref.system == action.side]
    live = [m for m in candidates if m.active and m.ref.id is not None and m.observed is not None]
    if len(live) != 1:
        return (
            f"link {link.link_id} has {len(live)} live {action.side} records with a known "
            "state: name the record to push"
        )
    return live[0]


def _resync(action: OperatorAction, inputs: ActionInputs, now: datetime) -> ActionResult:
    link = inputs.link
    why = _live_link(action, link)
    if why is not None:
        return _rejected(why)
    assert link is not None
    if link.status is not LinkStatus.ACTIVE:
        return _rejected(f"link {link.link_id} is {link.status.value}")
    source = _resync_source(action, link)
    if isinstance(source, str):
        return _rejected(source)
    assert source.observed is not None
    desired = dict(source.observed.props)
    targets = [
        m
        for m in link.members
        if m.key != source.key and m.active and m.ref.id is not None and m.observed is not None
    ]
    busy = [m.key for m in targets if m.pending is not None]
    if busy:
        return _rejected(f"a write to {', '.join(busy)} is in flight: retry when it completes")
    fx = Effects()
    for target in targets:
        assert target.observed is not None
        held = target.observed.props
        # Every property, equal or not: what the engine observed may not be what is there.
        props = {p: desired[p] for p in target.mapped if p in desired}
        if not props:
            continue
        if target.is_hub:
            after = {**held, **props}
            if not any(after.get(p) is not None for p in CONTACT_DATA_PROPERTIES) and not (
                target.observed.has_other_items
            ):
                return _rejected("the hub record would be left without any name, e-mail or phone")
        current = link.member(target.key)
        assert current is not None
        link, command = issue_write(link, current, CommandAction.UPDATE, props, action.cause, now)
        # Unguarded (no expected values or revision): the loader writes over the fresh state.
        command = command.model_copy(update={"expected": {}, "expected_revision": None})
        written = link.member(target.key)
        assert written is not None and written.pending is not None
        pending = written.pending.model_copy(update={"against_revision": None})
        link = link.replace_member(target.key, written.model_copy(update={"pending": pending}))
        fx.commands.append(command)
    # The pushed values are the link's values now: the targets' differing values are being
    # overwritten (in flight), so the merge does not take them for edits.
    base = {**link.base, **desired}
    base_ts = dict(link.base_ts)
    for prop in desired:
        base_ts[prop] = source.observed.changed_at.get(prop) or now
    link = refresh_base(link.model_copy(update={"base": base, "base_ts": base_ts}))
    return _applied(
        f"pushing {source.ref.system} state of {source.key} ({len(fx.commands)} commands)",
        make_decision(DecisionKind.MAPPED, fx, reason="resync", links=(touch(link, now),)),
        record=source.ref,
        read_fresh=True,
    )


def _retry(
    action: OperatorAction, inputs: ActionInputs, policy: Policy, now: datetime
) -> ActionResult:
    link = inputs.link
    why = _live_link(action, link)
    if why is not None:
        return _rejected(why)
    assert link is not None
    member = next(
        (
            m
            for m in link.members
            if m.last_error is not None and m.last_error.command_id == action.command_id
        ),
        None,
    )
    if member is None:
        return _rejected(
            f"command {action.command_id} is not the last failed write of link {link.link_id}"
        )
    if not member.active:
        return _rejected(f"{member.key} is {member.status.value} ({member.status_reason})")
    if member.pending is not None:
        return _rejected(f"a write to {member.key} is in flight")
    if link.status is LinkStatus.UNLINKED:
        return _rejected(f"link {link.link_id} is unlinked")
    assert member.last_error is not None
    review_id = review_item(
        link.tenant,
        ReviewReason.WRITE_REJECTED,
        "",
        now,
        record=member.ref,
        link_id=link.link_id,
        subject=member.last_error.command_id,
    ).review_id
    cleared = member.model_copy(update={"last_error": None, "rejected": {}})
    link = link.replace_member(member.key, cleared)
    if link.status is LinkStatus.ERROR:
        link = link.model_copy(update={"status": LinkStatus.ACTIVE, "status_reason": None})
    fx = Effects()
    link = sync(link, policy, action.cause, now, fx)
    again = [c for c in fx.commands if c.target.key == member.key]
    detail = (
        f"re-sent the write to {member.key} ({len(fx.commands)} commands)"
        if again
        else f"cleared the error of {member.key}: it holds the link's values (nothing to write)"
    )
    return _applied(
        detail,
        make_decision(DecisionKind.MAPPED, fx, reason="retry", links=(touch(link, now),)),
        record=member.ref if member.ref.id is not None else None,
        resolve_reviews=(review_id,),
    )


def _release_deletes(action: OperatorAction, inputs: ActionInputs) -> ActionResult:
    held = inputs.held
    if action.review_id is not None:
        held = tuple(h for h in held if h.review_id == action.review_id)
        if not held:
            return _rejected(f"review item {action.review_id} holds no delete (or is resolved)")
    if not held:
        return _rejected("no deletes are held")
    commands: list[Command] = []
    skipped = 0
    for item in held:
        link = item.link
        member = link.member_for(item.target) if link is not None else None
        if (
            link is None
            or member is None
            or member.ref.id is None
            or link.status is not LinkStatus.UNLINKED
        ):
            skipped += 1  # re-linked (or gone) since: the delete no longer applies
            continue
        commands.append(delete_command(link, member, action.cause))
    fx = Effects(commands=commands)
    return _applied(
        f"released {len(commands)} held deletes"
        + (f", {skipped} no longer apply" if skipped else ""),
        make_decision(DecisionKind.MAPPED, fx, reason="deletes_released"),
        resolve_reviews=tuple(h.review_id for h in held),
        bypass_breaker=True,
    )
