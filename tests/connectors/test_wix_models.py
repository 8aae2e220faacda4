"""Wix contact models, primary-item rules and the client's pure request builders."""

from __future__ import annotations

from typing import Any

import pytest

from services.connectors.wix.fields import info_for_create, info_for_update
from services.connectors.wix.models import (
    parse_contact,
    primary_email,
    primary_email_item,
    primary_phone,
)
from services.core.errors import ContractError


def wire(**info: Any) -> dict[str, Any]:
    return {
        "id": "c-1",
        "revision": 3,
        "createdDate": "2024-01-01T10:00:00.123Z",
        "updatedDate": "2024-01-02T10:00:00.456Z",
        "source": {"sourceType": "IMPORT"},
        "info": info,
    }


FULL = wire(
    name={"first": "Kari", "last": "Nordmann"},
    emails={
        "items": [
            {"id": "e-1", "tag": "WORK", "email": "work@example.com"},
            {"id": "e-2", "tag": "HOME", "email": "home@example.com", "primary": True},
        ]
    },
    phones={
        "items": [
            {
                "id": "p-1",
                "tag": "MOBILE",
                "countryCode": "NO",
                "phone": "41234567",
                "e164Phone": "+4741234567",
                "formattedPhone": "+47 41 23 45 67",
                "primary": True,
            },
            {"id": "p-2", "tag": "FAX", "phone": "22 22 22 22", "futureField": 1},
        ]
    },
    addresses={"items": [{"id": "a-1", "tag": "HOME", "address": {"city": "Oslo"}}]},
    extendedFields={"items": {"custom.tether-link-id": "L-1", "contacts.displayByFirstName": "K"}},
)


def test_parse_keeps_unknown_fields_and_round_trips():
    contact = parse_contact(FULL)
    assert contact.id == "c-1" and contact.revision == 3
    assert contact.updated_date is not None and contact.updated_date.microsecond == 456000
    back = contact.to_wire()
    assert back["source"] == FULL["source"]
    assert back["info"]["addresses"] == FULL["info"]["addresses"]
    assert back["info"]["phones"]["items"][1]["futureField"] == 1
    assert back["info"]["emails"]["items"][0]["primary"] is False  # absent means false
    assert contact.extended_fields["custom.tether-link-id"] == "L-1"


def test_primary_rules():
    contact = parse_contact(FULL)
    assert primary_email(contact) == "home@example.com"
    assert primary_phone(contact) == "41234567"
    unflagged = parse_contact(
        wire(emails={"items": [{"email": "a@example.com"}, {"email": "b@example.com"}]})
    )
    assert primary_email(unflagged) == "a@example.com"  # none flagged, no mirror: first item
    mirrored = parse_contact(
        {
            **wire(emails={"items": [{"email": "a@example.com"}, {"email": "b@example.com"}]}),
            "primaryInfo": {"email": "b@example.com"},
        }
    )
    item = primary_email_item(mirrored)
    assert item is not None and item.email == "b@example.com"
    only_mirror = parse_contact({**wire(), "primaryInfo": {"phone": "123"}})
    assert primary_phone(only_mirror) == "123" and primary_email(only_mirror) is None


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"revision": 1}, "id: missing"),
        ({"id": "x", "revision": "one"}, "revision: int_parsing"),
        (
            {"id": "x", "revision": 1, "info": {"emails": {"items": [{"tag": "MAIN"}]}}},
            "info.emails.items.0.email: missing",
        ),
        (["not", "a", "dict"], "expected a JSON object"),
    ],
)
def test_malformed_contacts_raise_contract_error(payload: object, where: str):
    with pytest.raises(ContractError) as caught:
        parse_contact(payload)
    assert where in str(caught.value)


def test_contract_error_does_not_echo_personal_data():
    bad = wire(emails={"items": [{"email": ["secret@example.com"]}]})
    with pytest.raises(ContractError) as caught:
        parse_contact(bad)
    assert "secret" not in str(caught.value)


def test_info_for_create():
    assert info_for_create(
        {
            "info.name.first": "Kari",
            "info.emails[primary].email": " k@example.com ",
            "info.phones[primary].phone": "412",
        },
        phone_country="NO",
        extended_fields={"custom.l": "1"},
    ) == {
        "name": {"first": "Kari"},
        "emails": {"items": [{"tag": "MAIN", "email": "k@example.com", "primary": True}]},
        "phones": {
            "items": [{"tag": "MAIN", "phone": "412", "primary": True, "countryCode": "NO"}]
        },
        "extendedFields": {"items": {"custom.l": "1"}},
    }


def test_update_info_touches_only_what_changed():
    contact = parse_contact(FULL)
    assert info_for_update(contact, {"info.name.last": "Hansen"}) == {
        "name": {"first": "Kari", "last": "Hansen"}
    }
    assert info_for_update(contact, {"info.name.first": None}) == {"name": {"last": "Nordmann"}}
    assert info_for_update(contact, {}) == {}


def test_update_info_replaces_only_the_primary_email():
    contact = parse_contact(FULL)
    info = info_for_update(contact, {"info.emails[primary].email": "new@example.com"})
    assert info == {
        "emails": {
            "items": [
                {"tag": "WORK", "email": "work@example.com", "primary": False},
                {"tag": "HOME", "email": "new@example.com", "primary": True},
            ]
        }
    }  # read-only item ids are never sent back (docs/wix-decisions.md)
    # the new value already exists as another item: listed once, as the primary item
    promoted = info_for_update(contact, {"info.emails[primary].email": "WORK@example.com"})[
        "emails"
    ]["items"]
    assert promoted == [{"tag": "HOME", "email": "WORK@example.com", "primary": True}]
    cleared = info_for_update(contact, {"info.emails[primary].email": None})["emails"]["items"]
    assert cleared == [{"tag": "WORK", "email": "work@example.com", "primary": False}]
    bare = parse_contact(wire(name={"first": "X"}))
    assert info_for_update(bare, {"info.emails[primary].email": "x@example.com"}) == {
        "emails": {"items": [{"tag": "MAIN", "email": "x@example.com", "primary": True}]}
    }


def test_update_info_phone_sends_only_writable_fields_and_keeps_other_items():
    items = info_for_update(parse_contact(FULL), {"info.phones[primary].phone": "+47 98765432"})[
        "phones"
    ]["items"]
    assert items == [
        {
            "tag": "MOBILE",
            "countryCode": "NO",
            "phone": "+47 98765432",
            "primary": True,
        },
        {"tag": "FAX", "phone": "22 22 22 22", "primary": False},
    ]


def test_update_info_extended_fields_keep_other_custom_keys():
    contact = parse_contact(FULL)
    info = info_for_update(contact, {}, extended_fields={"custom.other": 5})
    assert info == {
        "extendedFields": {"items": {"custom.tether-link-id": "L-1", "custom.other": 5}}
    }
    removed = info_for_update(contact, {}, extended_fields={"custom.tether-link-id": None})
    assert removed == {"extendedFields": {"items": {}}}
    with pytest.raises(ValueError):
        info_for_update(contact, {}, extended_fields={"contacts.displayByFirstName": "x"})
