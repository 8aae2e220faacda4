"""Declarative flows: reading and writing both sides, primary items, match keys."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.mapper.domain import (
    FLOWS,
    PROPERTIES,
    FlowSpec,
    MatchKey,
    PropertyMap,
    flow_for,
    hub_match_keys,
    hub_write_values,
    match_keys,
    member_field_values,
    observe_hub,
    observe_member,
    read_hub,
    read_member,
)
from services.mapper.domain.mappings import KeyKind, MatchRule
from services.mapper.domain.merge import cmp

from .support import contact_person, customer, employee, wix_contact


def test_flow_a_employees_maps_names_and_phone_only() -> None:
    props = read_member("employees", employee(email="ola@example.no"))
    assert props == {"first_name": "Ola", "last_name": "Nordmann", "phone": "912 34 567"}


def test_flow_b_contact_persons_maps_email_and_names() -> None:
    props = read_member("contact_persons", contact_person())
    assert props == {"email": "per@example.no", "first_name": "Per", "last_name": "Olsen"}


def test_flow_c_person_customer_maps_email_and_names() -> None:
    props = read_member("customers", customer())
    assert props == {"email": "kari@example.no", "first_name": "Kari", "last_name": "Hansen"}


def test_flow_c_company_customer_syncs_email_only() -> None:
    props = read_member("customers", customer(first=None, last=None, is_person=False))
    assert props == {"email": "kari@example.no"}


def test_values_are_trimmed_and_blank_is_empty() -> None:
    props = read_member("employees", employee(first="  Ola ", last="", phone=None))
    assert props == {"first_name": "Ola", "last_name": None, "phone": None}


def test_raw_values_are_kept_for_patch_test_guards() -> None:
    reading = observe_member("employees", employee(first="  Ola "))
    assert reading.raw["FirstName"] == "  Ola "


def test_invalid_values_are_reported_not_dropped() -> None:
    reading = observe_member("contact_persons", contact_person(email="per.example.no"))
    assert reading.props["email"] == "per.example.no"
    assert [(i.property, i.code.value) for i in reading.issues] == [("email", "invalid_email")]


def test_read_wix_takes_the_primary_items() -> None:
    contact = wix_contact(
        email="main@example.no",
        phone="912 34 567",
        extra_emails=("other@example.no",),
        extra_phones=("22 22 55 55",),
    )
    contact["info"]["emails"]["items"].reverse()  # primary is not first
    props = read_hub(contact)
    assert props == {
        "first_name": "Ola",
        "last_name": "Nordmann",
        "email": "main@example.no",
        "phone": "+4791234567",
    }
    assert observe_hub(contact).has_other_items


def test_read_wix_absent_primary_flag_is_false_and_falls_back() -> None:
    contact: dict[str, Any] = {
        "id": "c",
        "info": {"emails": {"items": [{"email": "a@example.no"}, {"email": "b@example.no"}]}},
        "primaryInfo": {"email": "b@example.no"},
    }
    assert read_hub(contact)["email"] == "b@example.no"
    contact["primaryInfo"] = {}
    assert read_hub(contact)["email"] is None  # the mirror says: no primary e-mail
    del contact["primaryInfo"]
    assert read_hub(contact)["email"] == "a@example.no"  # first item
    contact["info"]["emails"]["items"][1]["primary"] = False
    assert read_hub(contact)["email"] == "a@example.no"


def test_read_wix_phone_uses_the_items_country_code() -> None:
    contact = {
        "id": "c",
        "info": {
            "phones": {"items": [{"phone": "097495550", "countryCode": "IL", "primary": True}]}
        },
    }
    assert read_hub(contact)["phone"] == "+97297495550"


def test_read_wix_accepts_the_api_envelope() -> None:
    assert read_hub({"contact": wix_contact(first="Kari")})["first_name"] == "Kari"


def test_write_helpers() -> None:
    props = {"first_name": "Ola", "email": " Ola@Example.no ", "phone": "912 34 567"}
    assert member_field_values("contact_persons", props) == {
        "FirstName": "Ola",
        "EmailAddress": "Ola@Example.no",
    }
    assert member_field_values("employees", props) == {
        "FirstName": "Ola",
        "PhoneNumber": "912 34 567",
    }
    assert hub_write_values(props) == {
        "first_name": "Ola",
        "email": "Ola@Example.no",
        "phone": "+4791234567",
    }


def test_match_keys_by_flow() -> None:
    assert match_keys(flow_for("customers"), customer(email=" Kari@Example.no")) == [
        MatchKey("email", "kari@example.no")
    ]
    # employees: by e-mail when they have one (not a synced property) ...
    assert match_keys(flow_for("employees"), employee(email="ola@example.no")) == [
        MatchKey("email", "ola@example.no")
    ]
    # ... else by phone
    assert match_keys(flow_for("employees"), employee(email=None)) == [
        MatchKey("phone", "+4791234567")
    ]
    # an invalid e-mail cannot identify anyone: next rule
    assert match_keys(flow_for("employees"), employee(email="nope")) == [
        MatchKey("phone", "+4791234567")
    ]
    assert match_keys(flow_for("customers"), customer(email=None)) == []


def test_wix_index_keys_cover_every_item() -> None:
    contact = wix_contact(email="a@example.no", phone="912 34 567", extra_emails=("B@example.no",))
    assert set(hub_match_keys(contact)) == {
        MatchKey("email", "a@example.no"),
        MatchKey("email", "b@example.no"),
        MatchKey("phone", "+4791234567"),
    }


def test_a_new_flow_is_configuration() -> None:
    """A flow is data: a FlowSpec with property maps and match rules, nothing else."""
    suppliers = FlowSpec(
        name="suppliers_demo",
        system="poweroffice",
        label="D",
        properties=(
            PropertyMap(PROPERTIES["email"], "EmailAddress"),
            PropertyMap(PROPERTIES["first_name"], "FirstName"),
        ),
        match_rules=(MatchRule(KeyKind.EMAIL, "EmailAddress"),),
        is_inactive=lambda record: record.get("IsArchived") is True,
    )
    FLOWS[suppliers.name] = suppliers
    try:
        record = {"Id": 1, "EmailAddress": "s@example.no", "FirstName": "Sup"}
        assert read_member("suppliers_demo", record) == {
            "email": "s@example.no",
            "first_name": "Sup",
        }
        assert member_field_values("suppliers_demo", {"email": "x@example.no"}) == {
            "EmailAddress": "x@example.no"
        }
    finally:
        del FLOWS[suppliers.name]


# --- A -> B -> A ---------------------------------------------------------------------------------

names = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=12),
)
emails = st.one_of(
    st.none(),
    st.builds(
        lambda user, domain, case: f"{user}@{domain}.no".upper() if case else f"{user}@{domain}.no",
        st.from_regex(r"[a-z][a-z0-9.]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
        st.booleans(),
    ),
    st.text(max_size=10),  # invalid values travel too
)
phones = st.one_of(
    st.none(),
    st.builds(
        lambda digits, style: {
            0: f"{digits[:3]} {digits[3:5]} {digits[5:]}",
            1: f"+47 {digits}",
            2: f"0047 {digits}",
            3: digits,
        }[style],
        st.from_regex(r"[49][0-9]{7}", fullmatch=True),
        st.integers(0, 3),
    ),
)


def _wix_from_values(values: dict[str, str | None]) -> dict[str, Any]:
    """What the Wix client builds from hub_write_values (primary items only)."""
    info: dict[str, Any] = {"name": {}}
    if values.get("first_name") is not None:
        info["name"]["first"] = values["first_name"]
    if values.get("last_name") is not None:
        info["name"]["last"] = values["last_name"]
    if values.get("email") is not None:
        info["emails"] = {"items": [{"email": values["email"], "primary": True}]}
    if values.get("phone") is not None:
        info["phones"] = {"items": [{"phone": values["phone"], "primary": True}]}
    return {"id": "c", "revision": 1, "info": info}


@settings(max_examples=150, deadline=None)
@given(
    resource=st.sampled_from(sorted(FLOWS)),
    first=names,
    last=names,
    email=emails,
    phone=phones,
    is_person=st.booleans(),
)
def test_poweroffice_to_wix_to_poweroffice_is_identity(
    resource: str,
    first: str | None,
    last: str | None,
    email: str | None,
    phone: str | None,
    is_person: bool,
) -> None:
    record = {
        "Id": 1,
        "FirstName": first,
        "LastName": last,
        "EmailAddress": email,
        "PhoneNumber": phone,
        "IsPerson": is_person,
    }
    props = read_member(resource, record)
    back_from_wix = read_hub(_wix_from_values(hub_write_values(props)))
    for name, value in props.items():
        assert cmp(name, back_from_wix[name]) == cmp(name, value), name
    # and back into PowerOffice
    patch = member_field_values(resource, {p: back_from_wix[p] for p in props})
    again = read_member(resource, {**record, **patch})
    assert {p: cmp(p, v) for p, v in again.items()} == {p: cmp(p, v) for p, v in props.items()}


@settings(max_examples=100, deadline=None)
@given(first=names, last=names, email=emails, phone=phones)
def test_wix_to_poweroffice_to_wix_is_identity(
    first: str | None, last: str | None, email: str | None, phone: str | None
) -> None:
    contact = _wix_from_values(
        {"first_name": first, "last_name": last, "email": email, "phone": phone}
    )
    props = read_hub(contact)
    for resource in FLOWS:
        flow = FLOWS[resource]
        patch = member_field_values(resource, props)
        record = {"Id": 1, "IsPerson": True, **patch}
        back = read_member(resource, record)
        again = read_hub(_wix_from_values(hub_write_values(back)))
        for name in flow.property_names:
            assert cmp(name, again[name]) == cmp(name, props[name]), (resource, name)


def test_every_canonical_property_is_readable_from_wix() -> None:
    assert set(read_hub(wix_contact())) == set(PROPERTIES)
