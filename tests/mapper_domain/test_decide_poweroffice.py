"""PowerOffice changes: create, link, join, review, stale, echo, no-op, unlink."""

from __future__ import annotations

from services.mapper.domain import (
    Candidate,
    CommandAction,
    ContactIndexEntry,
    DecisionKind,
    LinkStatus,
    MatchKey,
    Operation,
    OutcomeKind,
    Policy,
    ReviewReason,
    on_member_change,
    on_outcome,
)

from .support import (
    TENANT,
    World,
    contact_person,
    customer,
    employee,
    outcome_for,
    po_change,
    po_values,
    ts,
    wix_contact,
)


def test_new_record_without_match_creates_a_wix_contact() -> None:
    decision = on_member_change(
        None, po_change("employees", employee(), ts(1)), [], Policy(), ts(2)
    )
    assert decision.kind is DecisionKind.CREATE
    [command] = decision.commands
    assert command.action is CommandAction.CREATE
    assert command.target.system == "wix" and command.target.id is None
    assert command.props == {"first_name": "Ola", "last_name": "Nordmann", "phone": "+4791234567"}
    assert command.fields["info.phones[primary].phone"] == "+4791234567"
    link = decision.link
    assert link is not None and link.pending_create and link.hub_record_id is None
    assert command.link_id == link.link_id


def test_created_outcome_completes_the_link() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    link = world.shell.link_of("poweroffice", "employees", "1")
    assert link is not None
    assert link.hub_record_id == "c-new-1" and not link.pending_create
    assert link.base == {
        "first_name": "Ola",
        "last_name": "Nordmann",
        "phone": "+4791234567",
        "email": None,
    }
    wix = link.hub_member
    assert wix is not None and wix.created_by_engine and wix.written is not None
    assert "c-new-1" in world.shell.index
    kinds = [d.kind for d in world.shell.decisions]
    assert kinds == [DecisionKind.CREATE, DecisionKind.COMPLETED, DecisionKind.ECHO]


def test_changes_during_a_pending_create_are_held_never_a_second_create() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    create = world.shell.outbox.pop()
    held = world.deliver(world.po_edit("employees", "1", PhoneNumber="400 00 000"))
    assert held.kind is DecisionKind.HELD and held.commands == ()
    world.load(create)
    world.pump()
    creates = [c for d in world.shell.decisions for c in d.commands if c.action.value == "create"]
    assert len(creates) == 1
    assert world.wix["c-new-1"]["info"]["phones"]["items"][0]["phone"] == "+4740000000"


def test_a_second_record_joins_the_link_whose_contact_is_being_created() -> None:
    world = World()
    world.deliver(world.po_put("customers", customer()))
    same_person = contact_person(first="Kari", last="Hansen", email="KARI@example.no")
    joined = world.deliver(world.po_put("contact_persons", same_person))
    assert joined.kind is DecisionKind.LINKED
    assert joined.commands == ()  # nothing differs; the Wix side waits for its create
    world.pump()
    assert len(world.wix) == 1
    link = world.shell.link_of("poweroffice", "contact_persons", "100")
    assert link is not None and link.hub_record_id == "c-new-1"
    assert len(link.flow_members) == 2


def test_existing_contact_is_linked_not_duplicated() -> None:
    world = World()
    world.deliver(world.wix_put(wix_contact("c-1", "Kari", "Hansen", email="kari@example.no")))
    decision = world.deliver(world.po_put("customers", customer()))
    assert decision.kind is DecisionKind.LINKED
    assert decision.commands == ()  # already equal
    world.pump()
    assert list(world.wix) == ["c-1"]


def test_linking_fills_gaps_and_resolves_differences_by_time() -> None:
    world = World()
    world.deliver(world.wix_put(wix_contact("c-1", "Karianne", None, email="kari@example.no")))
    decision = world.deliver(world.po_put("customers", customer()))  # newer
    assert decision.kind is DecisionKind.CONFLICT
    [conflict] = decision.conflicts
    assert conflict.property == "first_name" and conflict.kind == "initial"
    assert conflict.winner.value == "Kari"
    [command] = decision.commands
    assert command.target.id == "c-1"
    assert command.props == {"first_name": "Kari", "last_name": "Hansen"}
    assert command.expected_revision == 1


def test_several_candidates_go_to_review_without_link_or_create() -> None:
    world = World()
    world.deliver(world.wix_put(wix_contact("c-1", email="kari@example.no")))
    world.deliver(world.wix_put(wix_contact("c-2", email="Kari@Example.no")))
    decision = world.deliver(world.po_put("customers", customer()))
    assert decision.kind is DecisionKind.REVIEW
    assert decision.links == () and decision.commands == ()
    [item] = decision.review_items
    assert item.reason is ReviewReason.AMBIGUOUS_MATCH
    assert item.candidates == ("c-1", "c-2")


def test_employee_matches_by_phone_when_it_has_no_email() -> None:
    world = World()
    world.deliver(world.wix_put(wix_contact("c-1", phone="+47 912 34 567")))
    decision = world.deliver(world.po_put("employees", employee(phone="912 34 567")))
    assert decision.kind is DecisionKind.LINKED
    assert decision.link is not None and decision.link.hub_record_id == "c-1"


def test_events_for_a_linked_record_never_create() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    for _ in range(3):
        decision = world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
        assert all(c.action is not CommandAction.CREATE for c in decision.commands)
        world.pump()
    assert len(world.wix) == 1


def test_older_changes_are_stale_and_ignored() -> None:
    world = World()
    old = world.po_put("employees", employee())
    world.deliver(old)
    world.pump()
    world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    world.pump()
    stale = world.deliver(old.model_copy(update={"event_id": "replayed-later"}))
    assert stale.kind is DecisionKind.STALE
    assert stale.links == () and stale.commands == ()


def test_replaying_the_same_change_is_a_noop() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    change = world.po_edit("employees", "1", LastName="Hansen")
    first = world.deliver(change)
    assert len(first.commands) == 1
    second = world.deliver(change)
    assert second.kind is DecisionKind.NOOP and second.commands == ()


def test_our_own_write_coming_back_is_an_echo() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    world.deliver(world.wix_edit("c-new-1", first_name="Olav"))
    assert len(world.shell.outbox) == 1
    world.load(world.shell.outbox.pop())
    echo_before_outcome = world.events.pop()  # deliver the echo before the outcome
    decision = world.deliver(echo_before_outcome)
    assert decision.kind is DecisionKind.ECHO and decision.commands == ()
    world.pump()
    assert po_values(world, "employees", "1")["FirstName"] == "Olav"


def test_unrelated_and_format_only_changes_are_noops() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    unrelated = world.deliver(world.po_edit("employees", "1", JobTitle="Boss"))
    assert unrelated.kind is DecisionKind.NOOP and unrelated.commands == ()
    formatted = world.deliver(world.po_edit("employees", "1", PhoneNumber="+47 91234567"))
    assert formatted.kind is DecisionKind.NOOP and formatted.commands == ()
    recased = world.deliver(world.wix_edit("c-new-1", phone="0047 912 34 567"))
    assert recased.kind is DecisionKind.NOOP and recased.commands == ()


def test_archived_record_is_unlinked_and_nothing_is_deleted() -> None:
    world = World()
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    decision = world.deliver(world.po_edit("employees", "1", IsArchived=True))
    assert decision.kind is DecisionKind.UNLINKED and decision.reason == "archived"
    assert decision.commands == ()
    link = decision.link
    assert link is not None and link.status is LinkStatus.UNLINKED
    # while archived, edits are not synced
    later = world.deliver(world.po_edit("employees", "1", LastName="Hansen"))
    assert later.commands == ()
    # un-archived: it joins its contact again
    back = world.deliver(world.po_edit("employees", "1", IsArchived=False))
    assert back.reason == "rejoined"
    # its edit made while archived competes with the link's value as a join: the newer wins
    assert back.kind is DecisionKind.CONFLICT and back.conflicts[0].kind == "join"
    world.pump()
    assert world.wix["c-new-1"]["info"]["name"]["last"] == "Hansen"


def test_unknown_archived_record_is_skipped() -> None:
    decision = on_member_change(
        None, po_change("customers", customer(IsArchived=True), ts(1)), [], Policy(), ts(1)
    )
    assert decision.kind is DecisionKind.SKIPPED and decision.links == ()


def test_supplier_contact_persons_sync_by_default_and_can_be_excluded() -> None:
    change = po_change("contact_persons", contact_person(), ts(1), parent_kind="supplier")
    assert on_member_change(None, change, [], Policy(), ts(1)).kind is DecisionKind.CREATE
    no_suppliers = Policy.from_mapping({"contact_persons": {"include_suppliers": False}})
    skipped = on_member_change(None, change, [], no_suppliers, ts(1))
    assert skipped.kind is DecisionKind.SKIPPED and skipped.reason == "filtered"
    by_parent = Policy.from_mapping({"contact_persons": {"exclude_parent_ids": ["10"]}})
    plain = po_change("contact_persons", contact_person(), ts(1))
    assert on_member_change(None, plain, [], by_parent, ts(1)).kind is DecisionKind.SKIPPED


def test_record_with_nothing_to_sync_goes_to_review() -> None:
    company = customer(first=None, last=None, email=None, is_person=False)
    decision = on_member_change(None, po_change("customers", company, ts(1)), [], Policy(), ts(1))
    assert decision.kind is DecisionKind.REVIEW
    assert decision.links == () and decision.commands == ()
    assert decision.review_items[0].reason is ReviewReason.INSUFFICIENT_CONTACT_DATA


def test_invalid_values_are_synced_and_reported() -> None:
    decision = on_member_change(
        None, po_change("customers", customer(email="kari.example.no"), ts(1)), [], Policy(), ts(1)
    )
    assert decision.kind is DecisionKind.CREATE
    assert decision.commands[0].props["email"] == "kari.example.no"
    [item] = decision.review_items
    assert item.reason is ReviewReason.INVALID_VALUE and item.property == "email"
    assert "kari" not in item.detail  # no personal data in review details


def test_deletes_unlink_by_default_and_propagate_only_for_records_we_created() -> None:
    for policy, expect_delete in ((Policy(), False), (Policy(propagate_deletes=True), True)):
        world = World()
        world.shell.policy = policy
        world.deliver(world.po_put("employees", employee()))
        world.pump()
        gone = po_change("employees", None, world.tick(), record_id="1", operation=Operation.DELETE)
        decision = world.deliver(gone)
        assert decision.kind is DecisionKind.UNLINKED and decision.reason == "deleted"
        assert bool(decision.delete_commands) is expect_delete
        if expect_delete:
            assert decision.delete_commands[0].target.id == "c-new-1"

    # a contact we only linked to is never deleted
    world = World()
    world.shell.policy = Policy(propagate_deletes=True)
    world.deliver(world.wix_put(wix_contact("c-1", phone="912 34 567")))
    world.deliver(world.po_put("employees", employee()))
    world.pump()
    gone = po_change("employees", None, world.tick(), record_id="1", operation=Operation.DELETE)
    assert world.deliver(gone).delete_commands == ()


def test_delete_of_one_member_keeps_the_shared_link() -> None:
    world = World()
    world.shell.policy = Policy(propagate_deletes=True)
    world.deliver(world.po_put("customers", customer()))
    world.deliver(
        world.po_put(
            "contact_persons", contact_person(first="Kari", last="Hansen", email="kari@example.no")
        )
    )
    world.pump()
    gone = po_change("customers", None, world.tick(), record_id="10", operation=Operation.DELETE)
    decision = world.deliver(gone)
    assert decision.delete_commands == ()
    assert decision.link is not None and decision.link.status is LinkStatus.ACTIVE


def test_failed_create_marks_the_link_and_the_next_change_retries() -> None:
    first = on_member_change(None, po_change("employees", employee(), ts(1)), [], Policy(), ts(1))
    link = first.link
    assert link is not None
    failed = on_outcome(
        link,
        outcome_for(first.commands[0], OutcomeKind.FAILED, error_code="timeout"),
        Policy(),
        ts(2),
    )
    assert failed.kind is DecisionKind.RECORDED
    link = failed.link
    assert link is not None and link.status is LinkStatus.ERROR
    wix = link.hub_member
    assert wix is not None and wix.last_error is not None and wix.last_error.code == "timeout"
    retry = on_member_change(
        link, po_change("employees", employee(last="Hansen"), ts(3)), [], Policy(), ts(3)
    )
    assert [c.action for c in retry.commands] == [CommandAction.CREATE]


def test_linked_existing_contact_already_owned_by_another_link_merges_the_links() -> None:
    # the index did not know contact c-1 yet: the mapper asked to create, the loader found c-1
    world = World()
    world.deliver(world.po_put("customers", customer()))
    create = world.shell.outbox.pop()
    owner = world.shell.change(
        po_change("contact_persons", contact_person(email="kari@example.no"), world.tick())
    )
    # (joined the pending link; now simulate a separate link owning c-1)
    assert owner.link is not None
    other = on_member_change(
        None,
        po_change("employees", employee(email="kari@example.no"), world.tick()),
        [
            Candidate(
                contact=ContactIndexEntry(
                    tenant=TENANT,
                    contact_id="c-1",
                    keys=(MatchKey("email", "kari@example.no"),),
                    props={
                        "first_name": "Ola",
                        "last_name": "Nordmann",
                        "email": "kari@example.no",
                        "phone": None,
                    },
                    revision=3,
                )
            )
        ],
        Policy(),
        world.shell.now,
    )
    world.shell.apply(other)
    contact_link = other.link
    assert contact_link is not None and contact_link.hub_record_id == "c-1"
    outcome = outcome_for(
        create,
        OutcomeKind.LINKED_EXISTING,
        record=wix_contact("c-1", "Ola", "Nordmann", email="kari@example.no", revision=3),
        target_id="c-1",
        at=world.tick(),
    )
    link = world.shell.links[create.link_id]
    decision = on_outcome(link, outcome, Policy(), world.shell.now, contact_link)
    assert decision.reason == "merged_into_existing_link"
    merged, retired = decision.links
    assert merged.link_id == contact_link.link_id
    assert {m.key for m in merged.flow_members} == {
        "poweroffice:employees:1",
        "poweroffice:customers:10",
        "poweroffice:contact_persons:100",
    }
    assert retired.status is LinkStatus.MERGED and retired.merged_into == merged.link_id
