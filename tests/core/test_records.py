"""API records survive the typed Avro record types without losing unknown fields."""

from __future__ import annotations

import pytest

from services.core.codec import AvroCodec
from services.core.errors import ContractError
from services.core.records import to_api, to_avro, unwrap_record, wrap_record


def test_unknown_fields_are_kept_at_every_level() -> None:
    contact = {
        "id": "c1",
        "revision": 2,
        "info": {
            "name": {"first": "Bjørn", "last": "Østby", "middle": "X"},
            "emails": {"items": [{"email": "b@x.no", "primary": True, "verified": True}]},
            "addresses": {"items": [{"address": {"city": "Oslo"}}]},
        },
        "source": {"sourceType": "WIX_APP"},
    }
    back = to_api("tether.wix.Contact", to_avro("tether.wix.Contact", contact))
    assert back["source"] == {"sourceType": "WIX_APP"}
    assert back["info"]["addresses"] == {"items": [{"address": {"city": "Oslo"}}]}
    assert back["info"]["name"]["middle"] == "X"
    assert back["info"]["emails"]["items"][0]["verified"] is True
    assert back["info"]["name"]["first"] == "Bjørn"


def test_record_travels_through_a_change_event() -> None:
    codec = AvroCodec()
    employee = {"Id": 5, "FirstName": "Ola", "Gender": "Male", "ContactGroupIds": [1, 2]}
    event = {
        "event_id": "e",
        "tenant": "t",
        "system": "poweroffice",
        "resource": "employees",
        "record_id": "5",
        "operation": "UPSERT",
        "origin": "POLL",
        "source_timestamp": 0,
        "source_version": None,
        "extracted_at": 0,
        "record": wrap_record("poweroffice", "employees", employee),
    }
    decoded = codec.decode(codec.encode("ChangeEvent", event), "ChangeEvent")
    unwrapped = unwrap_record(decoded["record"])
    assert unwrapped is not None
    type_name, record = unwrapped
    assert type_name == "tether.poweroffice.Employee"
    assert record["Gender"] == "Male" and record["ContactGroupIds"] == [1, 2]
    assert record["Id"] == 5 and record["FirstName"] == "Ola"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"FirstName": "Ola"}, r"Employee\.Id: required value is missing"),
        ({"Id": "12"}, r"Employee\.Id: expected an integer"),
        ({"Id": 1, "FirstName": 7}, r"Employee\.FirstName: expected a string"),
        ({"Id": 1, "IsArchived": "no"}, r"Employee\.IsArchived: expected true/false"),
        ({"Id": 1, "MailAddress": "Oslo"}, r"Employee\.MailAddress: expected an object"),
        (["not", "an", "object"], r"Employee: expected an object"),
    ],
)
def test_malformed_records_raise_contract_errors(record: object, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        to_avro("tether.poweroffice.Employee", record)  # type: ignore[arg-type]


def test_unknown_resource_is_a_contract_error() -> None:
    with pytest.raises(ContractError):
        wrap_record("poweroffice", "suppliers", {"Id": 1})
