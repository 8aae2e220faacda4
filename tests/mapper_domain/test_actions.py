"""Operator actions as pure decisions: (action, link state, review item, candidates, now)."""

from __future__ import annotations

from typing import Any

from services.core.operator_actions import ActionKind
from services.mapper.domain import (
    Candidate,
    CommandAction,
    DecisionKind,
    Link,
    LinkStatus,
    MemberStatus,
    OutcomeKind,
    Policy,
    ReviewItem,
    ReviewReason,
    read_hub,
    read_member,
)
from services.mapper.domain.actions import (
    ActionInputs,
    ActionResult,
    ActionStatus,
    HeldDelete,
    OperatorAction,
    decide_action,
    known_state_change,
)
from services.mapper.domain.timeline import field_changes

from .support import TENANT, World, customer, employee, outcome_for, po_ref, ts, wix_contact


def action(kind: ActionKind, **targets: Any) -> OperatorAction:
    fields: dict[str, Any] = {
        "action_id": f"a-{kind.value}-{len(targets)}",
        "tenant": TENANT,
        "actor": "ops@example.no",
        "role": "operator",
        "at": ts(500),
        "reason": "checked by phone",
        "kind": kind,
    }
    fields.update(targets)
    return OperatorAction(**fields)


def decide(world: World, act: OperatorAction, inputs: ActionInputs) -> ActionResult:
    return decide_action(act, inputs, world.shell.policy, world.shell.now)


def apply(world: World, result: ActionResult) -> None:
    assert result.status is ActionStatus.APPLIED, result.detail
    world.shell.apply(result.decision)
    world.pump()


def ambiguous() -> tuple[World, ReviewItem]:
    """A customer whose e-mail two Wix contacts carry: in review, candidates c-1 and c-2."""
    world = World()
    world.deliver(world.wix_put(wix_contact("c-1", "Kari", "Hansen", email="kari@example.no")))
    world.deliver(world.wix_put(wix_contact("c-2", "Karianne", "H", email="kari@example.no")))
    decision = world.deliver(world.po_put("customers", customer()))
    assert decision.kind is DecisionKind.REVIEW
    [item] = [r for r in decision.review_items if r.reason is ReviewReason.AMBIGUOUS_MATCH]
    assert item.candidates == ("c-1", "c-2")
    return world, item


def review_inputs(world: World, item: ReviewItem, contact_id: str | None = None) -> ActionInputs:
    """What the shell loads for an action on a review item of the customer."""
    assert item.record is not None and item.record.id is not None
    record = world.po[("customers", item.record.id)]
    change = known_state_change(
        "a-1", item.record, record, ts(100), None
    )  # the action id only names the change
    candidate = None
    if contact_id is not None and contact_id in world.shell.index:
        entry = world.shell.index[contact_id]
        candidate = Candidate(contact=entry, link=world.shell.link_of_contact(contact_id))
    return ActionInputs(
        review=item,
        record_link=world.shell.link_of("poweroffice", "customers", item.record.id),
        change=change,
        candidate=candidate,
    )


# ------------------------------------------------------------------------------------------------
# LINK_TO_CANDIDATE / CREATE_NEW_CONTACT
# ------------------------------------------------------------------------------------------------


def test_link_to_a_listed_candidate_links_and_updates_that_contact() -> None:
    world, item = ambiguous()
    act = action(ActionKind.LINK_TO_CANDIDATE, review_id=item.review_id, contact_id="c-2")
    result = decide(world, act, review_inputs(world, item, "c-2"))
    assert result.status is ActionStatus.APPLIED
    assert result.decision.kind in (DecisionKind.LINKED, DecisionKind.CONFLICT)
    assert result.resolve_reviews == (item.review_id,)
    link = result.decision.link
    assert link is not None and link.hub_record_id == "c-2"
    assert [c.target.id for c in result.decision.commands] == ["c-2"]
    assert all(c.cause.id.startswith("action:") for c in result.decision.commands)
    apply(world, result)
    # the newer PowerOffice values won the initial merge: the chosen contact carries them now
    assert read_hub(world.wix["c-2"])["first_name"] == "Kari"
    assert read_hub(world.wix["c-1"])["first_name"] == "Kari"  # untouched (was Kari already)
    assert world.wix["c-1"]["revision"] == 1


def test_the_same_action_decides_the_same_commands() -> None:
    world, item = ambiguous()
    act = action(ActionKind.LINK_TO_CANDIDATE, review_id=item.review_id, contact_id="c-2")
    first = decide(world, act, review_inputs(world, item, "c-2"))
    again = decide(world, act, review_inputs(world, item, "c-2"))
    assert first.decision == again.decision
    assert first.decision.commands


def test_a_contact_that_is_not_a_listed_candidate_is_rejected() -> None:
    world, item = ambiguous()
    world.deliver(world.wix_put(wix_contact("c-3", "Kari", "Hansen", email="kari@example.no")))
    act = action(ActionKind.LINK_TO_CANDIDATE, review_id=item.review_id, contact_id="c-3")
    result = decide(world, act, review_inputs(world, item, "c-3"))
    assert result.status is ActionStatus.REJECTED
    assert result.result.startswith("rejected: c-3 is not a candidate")
    assert result.decision.links == () and result.decision.commands == ()


def test_unknown_or_resolved_review_and_linked_record_are_rejected() -> None:
    world, item = ambiguous()
    act = action(ActionKind.LINK_TO_CANDIDATE, review_id="nope", contact_id="c-1")
    assert "unknown review item" in decide(world, act, ActionInputs()).detail

    act = action(ActionKind.LINK_TO_CANDIDATE, review_id=item.review_id, contact_id="c-1")
    inputs = review_inputs(world, item, "c-1")
    resolved = ActionInputs(**{**inputs.__dict__, "review_resolution": "linked"})
    assert "already resolved" in decide(world, act, resolved).detail

    apply(world, decide(world, act, inputs))  # now linked to c-1
    again = decide(world, act, review_inputs(world, item, "c-1"))
    assert again.status is ActionStatus.REJECTED and "already belongs to link" in again.detail


def test_a_candidate_that_no_longer_shares_a_key_is_rejected_never_created() -> None:
    world, item = ambiguous()
    world.deliver(world.wix_edit("c-2", email="other@example.no"))
    act = action(ActionKind.LINK_TO_CANDIDATE, review_id=item.review_id, contact_id="c-2")
    result = decide(world, act, review_inputs(world, item, "c-2"))
    assert result.status is ActionStatus.REJECTED and "no longer matches" in result.detail


def test_read_only_role_is_rejected() -> None:
    world, item = ambiguous()
    act = action(ActionKind.LINK_TO_CANDIDATE, review_id=item.review_id, contact_id="c-1")
    act = act.model_copy(update={"role": "read-only"})
    result = decide(world, act, review_inputs(world, item, "c-1"))
    assert result.status is ActionStatus.REJECTED and "may not act" in result.detail


def test_create_new_contact_creates_one_anyway() -> None:
    world, item = ambiguous()
    act = action(ActionKind.CREATE_NEW_CONTACT, review_id=item.review_id)
    result = decide(world, act, review_inputs(world, item))
    assert result.decision.kind is DecisionKind.CREATE
    [command] = result.decision.commands
    assert command.action is CommandAction.CREATE and command.target.system == "wix"
    assert command.allow_duplicates  # Wix must not refuse it for the candidates' phone/e-mail
    apply(world, result)
    assert sorted(world.wix) == ["c-1", "c-2", "c-new-1"]
    assert read_hub(world.wix["c-new-1"])["email"] == "kari@example.no"


# ------------------------------------------------------------------------------------------------
# IGNORE / UNIGNORE / UNLINK
# ------------------------------------------------------------------------------------------------


def linked_employee(world: World) -> Link:
    world.deliver(world.wix_put(wix_contact("c-1", "Ola", "Nordmann", phone="912 34 567")))
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    link = world.shell.link_of("poweroffice", "employees", "1")
    assert link is not None and link.hub_record_id == "c-1"
    return link


def test_ignoring_a_linked_record_takes_it_out_of_its_link_without_deleting() -> None:
    world = World()
    world.shell.policy = Policy(propagate_deletes=True)
    link = linked_employee(world)
    ref = po_ref("employees", "1")
    result = decide(
        world, action(ActionKind.IGNORE_RECORD, record=ref), ActionInputs(record_link=link)
    )
    assert result.ignore and result.resolve_record_reviews and result.record == ref
    updated = result.decision.link
    assert updated is not None and updated.status is LinkStatus.UNLINKED
    member = updated.member_for(ref)
    assert member is not None and member.status is MemberStatus.UNLINKED
    assert member.status_reason == "ignored"
    assert result.decision.commands == ()

    again = decide(world, action(ActionKind.IGNORE_RECORD, record=ref), ActionInputs(ignored=True))
    assert again.status is ActionStatus.REJECTED and "already ignored" in again.detail


def test_a_linked_wix_contact_is_not_ignored_and_unignore_needs_an_ignored_record() -> None:
    world = World()
    link = linked_employee(world)
    wix = link.hub_member
    assert wix is not None
    result = decide(
        world, action(ActionKind.IGNORE_RECORD, record=wix.ref), ActionInputs(record_link=link)
    )
    assert result.status is ActionStatus.REJECTED and "unlink the link first" in result.detail

    ref = po_ref("employees", "1")
    assert decide(world, action(ActionKind.UNIGNORE_RECORD, record=ref), ActionInputs()).status is (
        ActionStatus.REJECTED
    )
    back = decide(world, action(ActionKind.UNIGNORE_RECORD, record=ref), ActionInputs(ignored=True))
    assert back.status is ActionStatus.APPLIED and back.unignore and back.record == ref


def test_unlink_dissolves_the_link_and_later_edits_are_not_synced() -> None:
    world = World()
    world.shell.policy = Policy(propagate_deletes=True)
    link = linked_employee(world)
    result = decide(world, action(ActionKind.UNLINK, link_id=link.link_id), ActionInputs(link=link))
    assert result.decision.commands == ()
    unlinked = result.decision.link
    assert unlinked is not None and unlinked.status is LinkStatus.UNLINKED
    assert all(m.status is MemberStatus.UNLINKED for m in unlinked.members)
    apply(world, result)
    decision = world.deliver(world.wix_edit("c-1", first_name="Changed"))
    assert decision.kind is DecisionKind.UNLINKED and decision.commands == ()
    world.pump()
    assert read_member("employees", world.po[("employees", "1")])["first_name"] == "Ola"

    twice = decide(
        world, action(ActionKind.UNLINK, link_id=link.link_id), ActionInputs(link=unlinked)
    )
    assert twice.status is ActionStatus.REJECTED and "already unlinked" in twice.detail
    unknown = decide(world, action(ActionKind.UNLINK, link_id="x"), ActionInputs())
    assert unknown.status is ActionStatus.REJECTED and "unknown link" in unknown.detail


# ------------------------------------------------------------------------------------------------
# RESYNC / RETRY_COMMAND / RESET_DELETE_BREAKER / REDRIVE_DEAD_LETTERS
# ------------------------------------------------------------------------------------------------


def drifted(world: World) -> Link:
    """A link whose Wix contact was changed behind the engine's back (no event seen)."""
    link = linked_employee(world)
    contact = world.wix["c-1"]
    contact["info"]["name"]["first"] = "Drift"
    wix = link.hub_member
    assert wix is not None and wix.observed is not None
    observed = wix.observed.model_copy(
        update={"props": {**wix.observed.props, "first_name": "Drift"}}
    )
    link = link.replace_member(wix.key, wix.model_copy(update={"observed": observed}))
    world.shell.links[link.link_id] = link
    return link


def test_resync_pushes_the_chosen_side_to_the_other() -> None:
    world = World()
    link = drifted(world)
    push_po = action(ActionKind.RESYNC, link_id=link.link_id, side="poweroffice")
    result = decide(world, push_po, ActionInputs(link=link))
    assert result.read_fresh
    [command] = result.decision.commands
    assert command.target.id == "c-1" and command.props["first_name"] == "Ola"
    assert command.expected == {} and command.expected_revision is None  # unguarded
    apply(world, result)
    assert read_hub(world.wix["c-1"])["first_name"] == "Ola"

    world2 = World()
    link2 = drifted(world2)
    push_wix = action(ActionKind.RESYNC, link_id=link2.link_id, side="wix")
    result2 = decide(world2, push_wix, ActionInputs(link=link2))
    [command2] = result2.decision.commands
    assert command2.target.key == "poweroffice:employees:1"
    apply(world2, result2)
    record = world2.po[("employees", "1")]
    assert read_member("employees", record)["first_name"] == "Drift"
    # settled: nothing left to write, no ping-pong
    after = world2.shell.links[link2.link_id]
    assert after.base["first_name"] == "Drift"


def test_resync_waits_for_a_write_in_flight() -> None:
    world = World()
    link = linked_employee(world)
    world.deliver(world.po_edit("employees", "1", FirstName="Olav"))  # write to Wix in flight
    link = world.shell.links[link.link_id]
    result = decide(
        world,
        action(ActionKind.RESYNC, link_id=link.link_id, side="poweroffice"),
        ActionInputs(link=link),
    )
    assert result.status is ActionStatus.REJECTED and "in flight" in result.detail


def test_retry_resends_a_rejected_write_under_a_new_command_id() -> None:
    world = World()
    link = linked_employee(world)
    world.deliver(world.po_edit("employees", "1", LastName="Berg"))
    [command] = world.shell.outbox
    world.shell.outbox.clear()
    rejected = world.deliver(outcome_for(command, OutcomeKind.REJECTED, error_code="INVALID"))
    [review] = rejected.review_items
    link = world.shell.links[link.link_id]
    wix = link.hub_member
    assert wix is not None and wix.last_error is not None and wix.rejected

    act = action(ActionKind.RETRY_COMMAND, link_id=link.link_id, command_id=command.command_id)
    result = decide(world, act, ActionInputs(link=link))
    [again] = result.decision.commands
    assert again.command_id != command.command_id
    assert again.props == command.props and again.target == command.target
    assert result.resolve_reviews == (review.review_id,)
    apply(world, result)
    assert read_hub(world.wix["c-1"])["last_name"] == "Berg"

    stale = decide(world, act, ActionInputs(link=world.shell.links[link.link_id]))
    assert stale.status is ActionStatus.REJECTED and "not the last failed write" in stale.detail


def test_retry_of_a_failed_create_creates_again() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    [create] = world.shell.outbox
    world.shell.outbox.clear()
    world.deliver(outcome_for(create, OutcomeKind.FAILED, error_code="timeout"))
    link = world.shell.link_of("poweroffice", "employees", "1")
    assert link is not None and link.status is LinkStatus.ERROR
    act = action(ActionKind.RETRY_COMMAND, link_id=link.link_id, command_id=create.command_id)
    result = decide(world, act, ActionInputs(link=link))
    [command] = result.decision.commands
    assert command.action is CommandAction.CREATE
    retried = result.decision.link
    assert retried is not None and retried.status is LinkStatus.ACTIVE
    apply(world, result)
    assert list(world.wix) == ["c-new-1"]


def test_reset_delete_breaker_emits_the_held_deletes_that_still_apply() -> None:
    world = World()
    world.shell.policy = Policy(propagate_deletes=True)
    world.deliver(world.po_put("employees", employee()))
    world.pump()  # the engine created c-new-1
    from services.mapper.domain import Operation

    from .support import po_change

    gone = po_change("employees", None, world.tick(), record_id="1", operation=Operation.DELETE)
    decision = world.deliver(gone)
    [held_delete] = decision.delete_commands
    world.shell.outbox.clear()  # the shell's breaker held it
    link = decision.link
    assert link is not None
    held = HeldDelete(review_id="r-1", target=held_delete.target, link=link)
    result = decide(world, action(ActionKind.RESET_DELETE_BREAKER), ActionInputs(held=(held,)))
    assert result.bypass_breaker and result.resolve_reviews == ("r-1",)
    [command] = result.decision.commands
    assert command.action is CommandAction.DELETE and command.target == held_delete.target
    apply(world, result)
    assert world.wix == {}

    relinked = link.model_copy(update={"status": LinkStatus.ACTIVE})
    skip = decide(
        world,
        action(ActionKind.RESET_DELETE_BREAKER),
        ActionInputs(held=(held.model_copy(update={"link": relinked}),)),
    )
    assert skip.decision.commands == () and "1 no longer apply" in skip.detail
    none = decide(world, action(ActionKind.RESET_DELETE_BREAKER), ActionInputs())
    assert none.status is ActionStatus.REJECTED


def test_redrive_is_only_recorded() -> None:
    world = World()
    act = action(ActionKind.REDRIVE_DEAD_LETTERS, deadletter_stage="mapper", deadletter_ids=("d1",))
    result = decide(world, act, ActionInputs())
    assert result.status is ActionStatus.APPLIED
    assert result.decision.links == () and result.decision.commands == ()


# ------------------------------------------------------------------------------------------------
# Field-level before/after values (timeline)
# ------------------------------------------------------------------------------------------------


def test_field_changes_of_a_change_and_of_an_action() -> None:
    world = World()
    link = linked_employee(world)
    decision = world.deliver(world.po_edit("employees", "1", FirstName="Olav"))
    after = decision.link
    fields = field_changes(link, after, "poweroffice:employees:1")
    assert fields == {"first_name": {"before": "Ola", "after": "Olav"}}
    # nothing moved on the subject: the link's synced values are compared
    assert field_changes(after, after, "poweroffice:employees:1") is None
    assert field_changes(None, None, None) is None
    world.pump()
    synced = world.shell.links[link.link_id]
    base = field_changes(link, synced, None)
    assert base == {"first_name": {"before": "Ola", "after": "Olav"}}
