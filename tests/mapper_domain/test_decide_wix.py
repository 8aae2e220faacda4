"""Wix changes: index-only for unlinked contacts, opt-in creation in PowerOffice, fan-out to every
member by flow, clears, deletes and merges."""

from __future__ import annotations

from typing import Any

from services.mapper.domain import (
    CommandAction,
    DecisionKind,
    LinkStatus,
    Operation,
    OutcomeKind,
    Policy,
    ReviewReason,
    adopt_own_create,
    on_hub_change,
    on_member_change,
    on_outcome,
)

from .support import (
    World,
    contact_person,
    customer,
    employee,
    outcome_for,
    po_change,
    po_values,
    ts,
    wix_change,
    wix_contact,
)


def shared_world(policy: Policy | None = None) -> World:
    """Kari is a customer, a contact person and an employee, all linked to one Wix contact."""
    world = World()
    if policy is not None:
        world.shell.policy = policy
    world.deliver(world.po_put("customers", customer()))
    world.pump()
    world.deliver(
        world.po_put(
            "contact_persons", contact_person(first="Kari", last="Hansen", email="kari@example.no")
        )
    )
    world.deliver(
        world.po_put(
            "employees", employee(5, "Kari", "Hansen", "+47 400 00 001", "kari@example.no")
        )
    )
    world.pump()
    link = world.shell.link_of("wix", "contacts", "c-new-1")
    assert link is not None and len(link.flow_members) == 3
    return world


def test_unlinked_contact_only_updates_the_index() -> None:
    contact = wix_contact("c-9", email="new@example.no", phone="912 34 567")
    decision = on_hub_change(None, wix_change(contact, ts(1)), Policy(), ts(1))
    assert decision.kind is DecisionKind.INDEXED
    assert decision.links == () and decision.commands == ()
    [entry] = decision.index_upserts
    assert entry.contact_id == "c-9" and entry.revision == 1
    assert {k.kind for k in entry.keys} == {"email", "phone"}


def test_wix_only_contact_becomes_a_private_customer_when_opted_in() -> None:
    policy = Policy(create_members_for_unmatched_hub=True)
    contact = wix_contact("c-9", "Siri", "Dahl", email="siri@example.no")
    decision = on_hub_change(None, wix_change(contact, ts(1)), policy, ts(1))
    assert decision.kind is DecisionKind.CREATE
    [command] = decision.commands
    assert command.action is CommandAction.CREATE
    assert command.target.resource == "customers" and command.target.id is None
    assert command.fields == {
        "IsPerson": True,
        "FirstName": "Siri",
        "LastName": "Dahl",
        "EmailAddress": "siri@example.no",
    }


def test_wix_only_contact_without_full_name_is_not_created() -> None:
    policy = Policy(create_members_for_unmatched_hub=True)
    contact = wix_contact("c-9", "Siri", None, email="siri@example.no")
    decision = on_hub_change(None, wix_change(contact, ts(1)), policy, ts(1))
    assert decision.kind is DecisionKind.REVIEW and decision.commands == ()
    assert decision.review_items[0].reason is ReviewReason.INSUFFICIENT_CONTACT_DATA


def test_contact_we_are_creating_is_not_created_back_in_poweroffice() -> None:
    world = World()
    world.shell.policy = Policy(create_members_for_unmatched_hub=True)
    world.deliver(world.po_put("customers", customer()))
    world.load(world.shell.outbox.pop())
    outcome, webhook = world.events.popleft(), world.events.popleft()
    early = world.deliver(webhook)  # the webhook overtakes the create outcome
    assert early.kind is DecisionKind.INDEXED and early.commands == ()
    world.deliver(outcome)
    world.pump()
    assert list(world.po) == [("customers", "10")]


def test_wix_name_change_reaches_every_member_with_only_its_properties() -> None:
    world = shared_world()
    decision = world.deliver(world.wix_edit("c-new-1", first_name="Karianne"))
    assert decision.kind is DecisionKind.MAPPED
    assert {c.target.key: c.props for c in decision.commands} == {
        "poweroffice:customers:10": {"first_name": "Karianne"},
        "poweroffice:contact_persons:100": {"first_name": "Karianne"},
        "poweroffice:employees:5": {"first_name": "Karianne"},
    }
    world.pump()
    for resource, rid in (("customers", "10"), ("contact_persons", "100"), ("employees", "5")):
        assert po_values(world, resource, rid)["FirstName"] == "Karianne"


def test_phone_change_from_employee_goes_to_wix_only() -> None:
    world = shared_world()
    decision = world.deliver(world.po_edit("employees", "5", PhoneNumber="400 00 002"))
    assert [(c.target.key, c.props) for c in decision.commands] == [
        ("wix:contacts:c-new-1", {"phone": "+4740000002"})
    ]


def test_email_change_from_customer_goes_to_wix_and_contact_person() -> None:
    world = shared_world()
    decision = world.deliver(world.po_edit("customers", "10", EmailAddress="Kari.H@example.no"))
    assert {c.target.key: c.props for c in decision.commands} == {
        "wix:contacts:c-new-1": {"email": "Kari.H@example.no"},
        "poweroffice:contact_persons:100": {"email": "Kari.H@example.no"},
    }
    world.pump()
    assert po_values(world, "contact_persons", "100")["EmailAddress"] == "Kari.H@example.no"
    assert po_values(world, "employees", "5")["EmailAddress"] == "kari@example.no"  # not synced


def test_commands_carry_the_state_they_were_computed_against() -> None:
    world = shared_world()
    decision = world.deliver(world.wix_edit("c-new-1", last_name="Berg"))
    by_target = {c.target.key: c for c in decision.commands}
    cp = by_target["poweroffice:contact_persons:100"]
    assert cp.fields == {"LastName": "Berg"} and cp.expected == {"LastName": "Hansen"}
    assert cp.target.parent_id == "10"
    world.pump()
    decision = world.deliver(world.po_edit("customers", "10", LastName="Bergh"))
    wix = next(c for c in decision.commands if c.target.system == "wix")
    assert wix.expected_revision == world.wix["c-new-1"]["revision"]
    assert wix.expected == {"info.name.last": "Berg"}


def test_clearing_a_value_clears_it_on_the_other_side() -> None:
    world = shared_world()
    decision = world.deliver(world.wix_edit("c-new-1", phone=None))
    assert [(c.target.key, c.props) for c in decision.commands] == [
        ("poweroffice:employees:5", {"phone": None})
    ]
    world.pump()
    assert po_values(world, "employees", "5")["PhoneNumber"] is None


def test_clearing_that_would_empty_the_wix_contact_is_refused() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee(first=None, last=None)))
    world.pump()
    decision = world.deliver(world.po_edit("employees", "1", PhoneNumber=None))
    assert decision.kind is DecisionKind.REVIEW and decision.commands == ()
    [item] = decision.review_items
    assert item.reason is ReviewReason.WOULD_EMPTY_HUB_RECORD
    assert "phone" in item.detail
    world.pump()
    assert world.wix["c-new-1"]["info"]["phones"]["items"][0]["phone"] == "+4791234567"


def test_clearing_is_allowed_when_the_contact_keeps_another_item() -> None:
    world = World()
    world.deliver(
        world.wix_put(
            wix_contact("c-1", None, None, phone="912 34 567", extra_emails=("x@example.no",))
        )
    )
    world.deliver(world.po_put("employees", employee(first=None, last=None)))
    world.pump()
    decision = world.deliver(world.po_edit("employees", "1", PhoneNumber=None))
    assert [(c.target.key, c.props) for c in decision.commands] == [
        ("wix:contacts:c-1", {"phone": None})
    ]


def test_wix_delete_unlinks_everything_and_nothing_is_deleted_by_default() -> None:
    world = shared_world()
    gone = wix_change(None, world.tick(), contact_id="c-new-1", operation=Operation.DELETE)
    decision = world.deliver(gone)
    assert decision.kind is DecisionKind.UNLINKED and decision.commands == ()
    assert decision.index_deletes == ("c-new-1",)
    link = decision.link
    assert link is not None and link.status is LinkStatus.UNLINKED
    later = world.deliver(world.po_edit("customers", "10", LastName="Berg"))
    assert later.kind is DecisionKind.UNLINKED and later.commands == ()


def test_wix_delete_propagates_only_to_records_we_created() -> None:
    world = World()
    world.shell.policy = Policy(create_members_for_unmatched_hub=True, propagate_deletes=True)
    world.deliver(world.wix_put(wix_contact("c-9", "Siri", "Dahl", email="siri@example.no")))
    world.pump()
    [(_, created_id)] = list(world.po)
    gone = wix_change(None, world.tick(), contact_id="c-9", operation=Operation.DELETE)
    decision = world.deliver(gone)
    assert [(c.action, c.target.key) for c in decision.delete_commands] == [
        (CommandAction.DELETE, f"poweroffice:customers:{created_id}")
    ]


def test_wix_merge_unlinks_and_asks_for_review() -> None:
    world = shared_world()
    merged = wix_change(
        None, world.tick(), contact_id="c-new-1", operation=Operation.DELETE, merged_into="c-7"
    )
    decision = world.deliver(merged)
    assert decision.kind is DecisionKind.UNLINKED and decision.reason == "hub_record_merged"
    assert decision.review_items[0].reason is ReviewReason.HUB_RECORD_MERGED
    assert decision.review_items[0].candidates == ("c-7",)


def _opted_in_create() -> tuple[Policy, Any, Any]:
    """A Wix-only contact being created as a customer: (policy, link, the create command)."""
    policy = Policy(create_members_for_unmatched_hub=True)
    contact = wix_contact("c-9", "Siri", "Dahl", email="siri@example.no")
    decision = on_hub_change(None, wix_change(contact, ts(1)), policy, ts(1))
    [link] = decision.links
    [command] = decision.commands
    return policy, link, command


def test_our_created_customer_seen_before_the_outcome_joins_its_pending_member() -> None:
    policy, link, command = _opted_in_create()
    record = customer(77, "Siri", "Dahl", "siri@example.no", PhoneNumber=None)
    change = po_change("customers", record, ts(2))
    adopted = adopt_own_create(link, change)
    assert adopted is not None
    [member] = adopted.flow_members
    assert member.ref.id == "77" and member.pending is not None  # the outcome completes it
    seen = on_member_change(adopted, change, [], policy, ts(2))
    assert seen.commands == ()  # exactly what we created: nothing to write anywhere
    done = on_outcome(
        seen.links[0],
        outcome_for(command, OutcomeKind.CREATED, record=record, target_id="77"),
        policy,
        ts(3),
    )
    assert done.kind is DecisionKind.COMPLETED and done.commands == ()
    assert [m.ref.id for m in done.links[0].flow_members] == ["77"]
    # A link with no create in flight for that resource adopts nothing.
    assert adopt_own_create(done.links[0], change) is None
    assert adopt_own_create(link, po_change("employees", employee(5), ts(2))) is None


def test_an_edit_of_our_created_customer_made_before_the_outcome_is_kept_and_synced() -> None:
    policy, link, command = _opted_in_create()
    created = customer(77, "Siri", "Dahl", "siri@example.no")
    edited = {**created, "LastName": "Dahl-Berg"}
    change = po_change("customers", edited, ts(5))
    adopted = adopt_own_create(link, change)
    assert adopted is not None
    seen = on_member_change(adopted, change, [], policy, ts(5))
    assert [(c.target.key, c.props) for c in seen.commands] == [
        ("wix:contacts:c-9", {"last_name": "Dahl-Berg"})
    ]
    outcome = outcome_for(command, OutcomeKind.CREATED, record=created, target_id="77", at=ts(3))
    done = on_outcome(seen.links[0], outcome, policy, ts(6))
    [member] = done.links[0].flow_members
    assert member.observed is not None and member.observed.props["last_name"] == "Dahl-Berg"
    assert done.commands == (), "the older created state must not be written back"
