"""Three-way merge, conflicts and their policy, and the loader's outcomes."""

from __future__ import annotations

from services.mapper.domain import (
    CommandAction,
    DecisionKind,
    OutcomeKind,
    Policy,
    ReviewReason,
)

from .support import World, customer, employee, outcome_for, po_values


def linked_employee(policy: Policy | None = None) -> World:
    world = World()
    if policy is not None:
        world.shell.policy = policy
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    return world


def test_edits_of_different_properties_on_both_sides_both_survive() -> None:
    world = linked_employee()
    po_edit = world.po_edit("employees", "1", LastName="Hansen")
    wix_edit = world.wix_edit("c-new-1", phone="400 00 000")
    world.deliver(po_edit)
    world.deliver(wix_edit)
    world.pump()
    assert po_values(world, "employees", "1")["LastName"] == "Hansen"
    assert po_values(world, "employees", "1")["PhoneNumber"] == "+4740000000"
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Hansen"
    assert world.shell.conflicts == {}


def test_both_sides_edit_one_property_latest_wins_and_the_conflict_is_recorded() -> None:
    for first_side in ("poweroffice", "wix"):
        world = linked_employee()
        if first_side == "poweroffice":
            older = world.po_edit("employees", "1", FirstName="Olav")
            newer = world.wix_edit("c-new-1", first_name="Ole")
        else:
            older = world.wix_edit("c-new-1", first_name="Olav")
            newer = world.po_edit("employees", "1", FirstName="Ole")
        world.deliver(older)  # its write hits the newer edit (revision / test guard)
        world.pump()
        world.deliver(newer)
        world.pump()
        assert po_values(world, "employees", "1")["FirstName"] == "Ole", first_side
        assert world.wix["c-new-1"]["info"]["name"]["first"] == "Ole", first_side
        [conflict] = world.shell.conflicts.values()
        assert conflict.property == "first_name" and conflict.kind == "concurrent_edit"
        assert conflict.winner.value == "Ole" and [c.value for c in conflict.losers] == ["Olav"]


def test_events_arriving_in_reverse_order_still_let_the_latest_edit_win() -> None:
    world = linked_employee()
    wix_older = world.wix_edit("c-new-1", first_name="Olav")
    po_newer = world.po_edit("employees", "1", FirstName="Ole")
    world.deliver(po_newer)  # the newer edit is processed first
    world.pump()
    world.deliver(wix_older)
    world.pump()
    assert po_values(world, "employees", "1")["FirstName"] == "Ole"
    assert world.wix["c-new-1"]["info"]["name"]["first"] == "Ole"


def test_conflict_policy_per_property() -> None:
    world = linked_employee(
        Policy.from_mapping({"conflict_rules": {"first_name": "poweroffice_wins"}})
    )
    world.wix_edit("c-new-1", first_name="X")  # not yet delivered
    po_older = world.po_edit("employees", "1", FirstName="Olav")
    wix_newer = world.wix_edit("c-new-1", first_name="Ole")
    world.deliver(po_older)
    world.pump()
    world.deliver(wix_newer)
    world.pump()
    assert po_values(world, "employees", "1")["FirstName"] == "Olav"
    assert world.wix["c-new-1"]["info"]["name"]["first"] == "Olav"
    [conflict] = world.shell.conflicts.values()
    assert conflict.rule == "poweroffice_wins"


def test_conflict_outcome_remerges_against_the_fresh_state() -> None:
    world = linked_employee()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    [command] = world.shell.outbox
    assert command.expected_revision == 1
    world.wix_edit("c-new-1", phone="400 00 000")  # a Wix edit the mapper has not seen yet
    world.load(world.shell.outbox.pop())
    [outcome] = world.events
    assert outcome.kind is OutcomeKind.CONFLICT
    decision = world.deliver(world.events.popleft())
    assert decision.reason == "remerged"
    by_target = {c.target.key: c for c in decision.commands}
    assert by_target["wix:contacts:c-new-1"].expected_revision == 2
    assert by_target["wix:contacts:c-new-1"].props == {"last_name": "Hansen"}
    assert by_target["poweroffice:employees:1"].props == {"phone": "+4740000000"}
    world.pump()
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Hansen"
    assert po_values(world, "employees", "1")["PhoneNumber"] == "+4740000000"


def test_only_one_write_in_flight_per_member_later_ones_are_held() -> None:
    world = linked_employee()
    first = world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    second = world.deliver(world.po_edit("employees", "1", LastName="Berg"))
    assert len(first.commands) == 1
    assert second.kind is DecisionKind.HELD and second.commands == ()
    world.pump()
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Berg"
    wix_writes = [c for d in world.shell.decisions for c in d.commands if c.target.system == "wix"]
    assert [c.action for c in wix_writes] == [
        CommandAction.CREATE,
        CommandAction.UPDATE,
        CommandAction.UPDATE,
    ]


def test_applied_outcome_sets_written_and_base() -> None:
    world = linked_employee()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    world.load(world.shell.outbox.pop())
    outcome = world.events.popleft()
    decision = world.deliver(outcome)
    assert decision.kind is DecisionKind.COMPLETED
    link = decision.link
    assert link is not None and link.base["last_name"] == "Hansen"
    wix = link.hub_member
    assert wix is not None and wix.pending is None
    assert wix.written is not None and wix.written.props == {"last_name": "Hansen"}
    echo = world.deliver(world.events.popleft())
    assert echo.kind is DecisionKind.ECHO and echo.commands == ()


def test_rejected_write_is_recorded_and_not_resent_until_the_value_changes() -> None:
    world = linked_employee()
    world.deliver(world.wix_edit("c-new-1", phone="not a phone"))
    [command] = world.shell.outbox
    world.shell.outbox.clear()
    rejected = world.deliver(outcome_for(command, OutcomeKind.REJECTED, error_code="400"))
    assert rejected.kind is DecisionKind.RECORDED
    assert rejected.review_items[0].reason is ReviewReason.WRITE_REJECTED
    link = rejected.link
    assert link is not None
    member = link.member("poweroffice:employees:1")
    assert member is not None and member.last_error is not None
    # an unrelated Wix edit does not resend the rejected value
    again = world.deliver(world.wix_edit("c-new-1", last_name="Hansen"))
    assert [c.props for c in again.commands] == [{"last_name": "Hansen"}]
    world.pump()
    # a new value is sent
    fixed = world.deliver(world.wix_edit("c-new-1", phone="400 00 000"))
    assert [c.props for c in fixed.commands] == [{"phone": "+4740000000"}]


def test_outcome_for_an_unknown_link_is_stale() -> None:
    world = World()
    world.deliver(world.po_put("customers", customer()))
    command = world.shell.outbox.pop()
    world.shell.links.clear()
    decision = world.deliver(outcome_for(command, OutcomeKind.APPLIED))
    assert decision.kind is DecisionKind.STALE
