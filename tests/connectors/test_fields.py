"""The connectors' field accessor tables, pure: Wix (``wix/fields.py``) and PowerOffice
(``poweroffice/fields.py``). Round trips: the write shape a value becomes reads back as that
value, for every field, on a create and on an update."""

from __future__ import annotations

from typing import Any

import pytest

from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.poweroffice.fields import PowerOfficeField, fields_of
from services.connectors.wix import fields
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.connectors.wix.fields import FIELDS, NATURAL_KEYS, info_for_create, info_for_update
from services.connectors.wix.models import parse_contact
from services.core.errors import ContractError

VALUES = {
    "info.name.first": "Kari",
    "info.name.last": "Nordmann",
    "info.emails[primary].email": "kari@example.no",
    "info.phones[primary].phone": "+4791234567",
}

EXISTING: dict[str, Any] = {
    "id": "c-1",
    "revision": 4,
    "info": {
        "name": {"first": "Ola", "last": "Hansen"},
        "emails": {
            "items": [
                {"id": "e1", "tag": "WORK", "email": "work@example.no"},
                {"id": "e2", "tag": "HOME", "email": "ola@example.no", "primary": True},
            ]
        },
        "phones": {"items": [{"id": "p1", "tag": "MOBILE", "phone": "22 22 22 22"}]},
    },
}


def test_the_table_covers_the_paths_the_dataflow_file_names_and_is_the_descriptors() -> None:
    assert list(FIELDS) == list(VALUES)
    assert WIX.resource("contacts").fields is FIELDS
    assert {"info.emails[primary].email", "info.phones[primary].phone"} == NATURAL_KEYS
    assert POWEROFFICE.resource("customers").fields is fields_of("customers")


@pytest.mark.parametrize("path", list(VALUES))
def test_wix_create_shape_reads_back_as_the_value(path: str) -> None:
    contact = {"id": "c-new", "info": info_for_create({path: VALUES[path]})}
    accessor = FIELDS[path]
    assert accessor.read(contact) == VALUES[path]
    assert accessor.holds(contact, VALUES[path])
    assert accessor.read({"contact": contact}) == VALUES[path]  # the API's envelope


@pytest.mark.parametrize("path", list(VALUES))
def test_wix_update_shape_reads_back_as_the_value_and_clears(path: str) -> None:
    accessor = FIELDS[path]
    untouched = [p for p in FIELDS if p != path]
    alone = {"id": "c-2", "revision": 1, "info": info_for_create(VALUES)}
    # Clearing a primary item that has siblings makes Wix promote the first sibling: a clear
    # reads back as None where the contact has no other item of that kind.
    for before, value in ((EXISTING, VALUES[path]), (alone, None)):
        info = info_for_update(parse_contact(before), {path: value})
        written = {**before, "info": {**before["info"], **info}}
        assert accessor.read(written) == value
        assert accessor.holds(written, value)
        assert [FIELDS[p].read(written) for p in untouched] == [
            FIELDS[p].read(before) for p in untouched
        ]


def test_wix_info_keys_come_in_table_order_whatever_the_order_given() -> None:
    backwards = dict(reversed(list(VALUES.items())))
    assert list(info_for_create(backwards)) == ["name", "emails", "phones"]
    assert list(info_for_update(parse_contact(EXISTING), backwards)) == [
        "name",
        "emails",
        "phones",
    ]
    with pytest.raises(ContractError, match=r"info\.company"):
        info_for_create({"info.company": "Acme"})


def test_wix_reading_takes_the_primary_items_and_the_phone_in_e164() -> None:
    contact = {
        "info": {
            "emails": {"items": [{"email": "first@example.no"}, {"email": "second@example.no"}]},
            "phones": {"items": [{"phone": "912 34 567", "countryCode": "NO", "primary": True}]},
        },
        "primaryInfo": {"email": "second@example.no"},
    }
    assert FIELDS["info.emails[primary].email"].read(contact) == "second@example.no"
    assert FIELDS["info.phones[primary].phone"].read(contact) == "+4791234567"
    assert FIELDS["info.name.first"].read(contact) is None


def test_wix_comparison_forms() -> None:
    contact = {
        "info": {"name": {"first": "Kari  Anne"}, "emails": {"items": [{"email": "K@X.no"}]}}
    }
    assert FIELDS["info.name.first"].holds(contact, " Kari Anne ")
    assert not FIELDS["info.name.first"].holds(contact, "kari anne")  # case counts in names
    assert FIELDS["info.emails[primary].email"].holds(contact, "k@x.NO")
    phoned = {"info": {"phones": {"items": [{"phone": "912 34 567", "countryCode": "SE"}]}}}
    # the contact's number is read in its item's region, the wanted one in NO
    assert FIELDS["info.phones[primary].phone"].holds(phoned, "+46 91 234 567")
    assert FIELDS["info.name.last"].value("  ") is None


def test_poweroffice_values_take_the_propertys_json_type() -> None:
    customers = fields_of("customers")
    assert customers["IsPerson"].value("true") is True
    assert customers["IsPerson"].value("False") is False
    assert customers["Number"].value(" 12 ") == 12
    assert PowerOfficeField("Allowance", float).value("1.5") == 1.5
    assert customers["FirstName"].value("007") == "007"
    assert customers["IsPerson"].value(None) is None
    with pytest.raises(ContractError, match="IsPerson"):
        customers["IsPerson"].value("maybe")


@pytest.mark.parametrize("resource", ["employees", "customers", "contact_persons"])
def test_poweroffice_write_shape_reads_back_and_unknown_names_are_text(resource: str) -> None:
    table = fields_of(resource)
    assert "FirstName" in table and "SomethingNew" in table  # the API keeps unknown properties
    for path in ("FirstName", "SomethingNew"):
        accessor = table[path]
        record = {path: accessor.value("Kari")}  # the record's own shape is the write shape
        assert accessor.read(record) == "Kari"
        assert accessor.holds(record, "Kari") and not accessor.holds(record, "kari")
        assert accessor.kind == "exact"


def test_reading_the_primary_values() -> None:
    """The readers the mapper's hub accessors and the loader share (``services.mapper.wiring``)."""
    phone_no = {
        "id": "c",
        "info": {"phones": {"items": [{"phone": "912 34 567", "countryCode": "NO"}]}},
    }
    derived = {
        "id": "c",
        "info": {"phones": {"items": [{"phone": "+47 912", "e164Phone": "+47912"}]}},
    }
    two_emails = {
        "id": "c",
        "info": {"emails": {"items": [{"email": "a@x.no"}, {"email": "b@x.no"}]}},
        "primaryInfo": {"email": "b@x.no"},
    }
    named = {"id": "c", "info": {"name": {"first": "  Kari  "}}}
    assert FIELDS["info.phones[primary].phone"].read(phone_no) == "+4791234567"
    assert FIELDS["info.phones[primary].phone"].read(derived) == "+47912"
    assert FIELDS["info.emails[primary].email"].read(two_emails) == "b@x.no"
    assert FIELDS["info.emails[primary].email"].read({"contact": two_emails}) == "b@x.no"
    assert FIELDS["info.name.first"].read(named) == "Kari"
    assert FIELDS["info.name.last"].read(named) is None


def test_identifiers_other_items_and_revision() -> None:
    contact = {
        "id": "c",
        "revision": "7",
        "info": {
            "emails": {"items": [{"email": "a@x.no", "primary": True}, {"email": "b@x.no"}]},
            "phones": {"items": [{"phone": "912 34 567", "countryCode": "NO", "primary": True}]},
        },
    }
    assert fields.identifiers(contact) == [
        ("email", "a@x.no"),
        ("email", "b@x.no"),
        ("phone", "+4791234567"),
    ]
    assert fields.has_other_items(contact) is True
    assert (
        fields.has_other_items({"id": "c", "info": {"emails": {"items": [{"email": "a@x.no"}]}}})
        is False
    )
    assert fields.revision(contact) == 7
    assert fields.revision({"contact": {"id": "c", "revision": 3}}) == 3
    assert fields.revision({"id": "c", "revision": True}) is None
