"""Matching: exactly one candidate links, none creates, several go to review."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mapper.domain import (
    Candidate,
    ContactIndexEntry,
    MatchKey,
    MatchKind,
    Policy,
    link_match_keys,
    match,
    on_member_change,
)
from services.mapper.domain.matching import CREATE_CLOCK_SKEW
from services.mapper.domain.state import Link

from .support import T0, TENANT, World, customer, employee, po_change

EMAIL = MatchKey("email", "kari@example.no")
PHONE = MatchKey("phone", "+4791234567")


def entry(contact_id: str, *keys: MatchKey, tenant: str = TENANT) -> ContactIndexEntry:
    return ContactIndexEntry(tenant=tenant, contact_id=contact_id, keys=keys, props={})


def test_none_creates() -> None:
    assert match([EMAIL], [], TENANT).kind is MatchKind.CREATE


def test_no_keys_creates_whatever_the_candidates() -> None:
    assert match([], [Candidate(contact=entry("c1", EMAIL))], TENANT).kind is MatchKind.CREATE


def test_exactly_one_links() -> None:
    result = match([EMAIL], [Candidate(contact=entry("c1", EMAIL))], TENANT)
    assert result.kind is MatchKind.LINK
    assert result.candidate is not None and result.candidate.identity == "c1"


def test_the_same_contact_found_twice_is_one_candidate() -> None:
    candidates = [
        Candidate(contact=entry("c1", EMAIL, PHONE)),
        Candidate(contact=entry("c1", EMAIL)),
    ]
    assert match([EMAIL, PHONE], candidates, TENANT).kind is MatchKind.LINK


def test_several_are_ambiguous() -> None:
    candidates = [Candidate(contact=entry("c1", EMAIL)), Candidate(contact=entry("c2", EMAIL))]
    result = match([EMAIL], candidates, TENANT)
    assert result.kind is MatchKind.AMBIGUOUS
    assert result.candidate is None
    assert result.candidate_ids == ("c1", "c2")


def test_candidates_must_really_share_a_key_and_the_tenant() -> None:
    candidates = [
        Candidate(contact=entry("c1", PHONE)),
        Candidate(contact=entry("c2", EMAIL, tenant="other")),
    ]
    assert match([EMAIL], candidates, TENANT).kind is MatchKind.CREATE


def test_a_link_still_creating_its_contact_is_a_candidate() -> None:
    decision = on_member_change(None, po_change("customers", customer(), T0), [], Policy(), T0)
    link = decision.link
    assert link is not None and link.hub_record_id is None
    assert EMAIL in link_match_keys(link)
    result = match([EMAIL], [Candidate(link=link)], TENANT)
    assert result.kind is MatchKind.LINK
    assert result.candidate_ids == (f"link:{link.link_id}",)


def _creating_link_and_its_contact(changed: datetime) -> tuple[Link, ContactIndexEntry]:
    """A link whose contact is being created (issued at T0), and a contact with its e-mail,
    not linked yet, last changed at ``changed``."""
    decision = on_member_change(None, po_change("customers", customer(), T0), [], Policy(), T0)
    assert decision.link is not None
    contact = ContactIndexEntry(
        tenant=TENANT, contact_id="c-new", keys=(EMAIL,), props={}, source_ts=changed
    )
    return decision.link, contact


def test_the_contact_a_create_in_flight_made_is_that_links_candidate() -> None:
    # Extracted before the create's outcome was handled: one hub record, not two.
    link, contact = _creating_link_and_its_contact(T0 + timedelta(seconds=1))
    candidates = [Candidate(contact=contact), Candidate(link=link)]
    result = match([EMAIL], candidates, TENANT)
    assert result.kind is MatchKind.LINK
    assert result.candidate_ids == (f"link:{link.link_id}",)


def test_a_contact_changed_before_the_create_was_issued_is_not_its_result() -> None:
    link, contact = _creating_link_and_its_contact(T0 - CREATE_CLOCK_SKEW - timedelta(seconds=1))
    result = match([EMAIL], [Candidate(contact=contact), Candidate(link=link)], TENANT)
    assert result.kind is MatchKind.AMBIGUOUS
    assert result.candidate_ids == ("c-new", f"link:{link.link_id}")


def test_two_contacts_that_could_be_one_creates_result_stay_two_candidates() -> None:
    link, contact = _creating_link_and_its_contact(T0 + timedelta(seconds=1))
    twin = contact.model_copy(update={"contact_id": "c-twin"})
    candidates = [Candidate(contact=contact), Candidate(contact=twin), Candidate(link=link)]
    result = match([EMAIL], candidates, TENANT)
    assert result.kind is MatchKind.AMBIGUOUS
    assert result.candidate_ids == ("c-new", "c-twin", f"link:{link.link_id}")


ids = st.sampled_from(["c1", "c2", "c3", "c4"])
keys = st.sampled_from([EMAIL, PHONE, MatchKey("email", "x@example.no")])


@settings(max_examples=200, deadline=None)
@given(
    record_keys=st.lists(keys, max_size=2, unique=True),
    found=st.lists(st.tuples(ids, st.lists(keys, min_size=1, max_size=3)), max_size=6),
)
def test_matching_never_links_one_record_to_two_contacts(
    record_keys: list[MatchKey], found: list[tuple[str, list[MatchKey]]]
) -> None:
    candidates = [Candidate(contact=entry(cid, *ks)) for cid, ks in found]
    result = match(record_keys, candidates, TENANT)
    matching = {cid for cid, ks in found if set(ks) & set(record_keys)}
    if result.kind is MatchKind.LINK:
        assert result.candidate is not None
        assert matching == {result.candidate.identity}
    elif result.kind is MatchKind.CREATE:
        assert matching == set()
    else:
        assert len(matching) > 1 and result.candidate is None


@pytest.mark.parametrize("order", ["employee_first", "customer_first", "after_create"])
def test_records_sharing_an_unsynced_match_key_share_one_contact_in_any_order(order: str) -> None:
    """An employee matches on its e-mail, which flow A never writes to Wix: a customer with the
    same e-mail must still join the employee's link (before or after its contact exists), not
    create a second contact."""
    world = World()
    emp = world.po_put("employees", employee(1, email="ola@example.no"))
    cust = world.po_put("customers", customer(10, "Ola", "Nordmann", email="ola@example.no"))
    if order == "employee_first":
        world.deliver(emp)
        world.deliver(cust)
    elif order == "customer_first":
        world.deliver(cust)
        world.deliver(emp)
    else:
        world.deliver(emp)
        world.pump()
        world.deliver(cust)
    world.pump()
    assert len(world.wix) == 1
    emp_link = world.shell.link_of("poweroffice", "employees", "1")
    cust_link = world.shell.link_of("poweroffice", "customers", "10")
    assert emp_link is not None and cust_link is not None
    assert emp_link.link_id == cust_link.link_id
    [contact] = world.wix.values()
    assert contact["info"]["emails"]["items"][0]["email"] == "ola@example.no"
