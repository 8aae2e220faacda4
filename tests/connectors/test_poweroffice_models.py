"""PowerOffice Go v2 records: parsing, unknown fields kept, malformed input as ContractError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.connectors.poweroffice.models import (
    Customer,
    Employee,
    format_timestamp,
    parse_contact_person,
    parse_customer,
    parse_employee,
    parse_timestamp,
)
from services.core.errors import ContractError

EMPLOYEE_EXAMPLE = {  # the reference's example EmployeeDto (shortened), plus a future field
    "Id": 12345,
    "Number": 2,
    "FirstName": "Henry",
    "LastName": "Ford",
    "EmailAddress": "abc@test.yxz",
    "PhoneNumber": "+4712345678",
    "DateOfBirth": "2003-07-15",
    "Gender": "Male",
    "IsArchived": False,
    "ContactGroupIds": [],
    "MailAddress": {
        "Id": 12345,
        "City": "Oslo",
        "ZipCode": "0161",
        "LastChangedDateTimeOffset": "2022-07-11T12:46:59.1234567Z",
    },
    "EmployeeCreatedDateTimeOffset": "2021-09-30T00:00:00Z",
    "LastChangedDateTimeOffset": "2021-09-30T15:12:11.1234567Z",
    "SomethingNew": {"x": 1},
}


def test_parse_example_keeps_unknown_fields_and_round_trips() -> None:
    employee = parse_employee(EMPLOYEE_EXAMPLE)
    assert employee.id == 12345 and employee.first_name == "Henry"
    assert employee.mail_address is not None and employee.mail_address.city == "Oslo"
    assert employee.last_changed_date_time_offset == datetime(
        2021, 9, 30, 15, 12, 11, 123456, tzinfo=UTC
    )
    wire = employee.to_wire()
    assert wire["SomethingNew"] == {"x": 1}
    assert wire["FirstName"] == "Henry" and "first_name" not in wire
    assert Employee(id=1, first_name="Ola").first_name == "Ola"  # snake_case names work too


def test_projection_needs_only_id() -> None:
    assert parse_customer({"Id": 1}).name is None
    assert parse_contact_person({"Id": 2, "ContactId": 1}).contact_id == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"FirstName": "x"},  # no Id
        {"Id": "abc"},
        {"Id": 1, "IsPerson": "maybe"},
        {"Id": 1, "LastChangedDateTimeOffset": "not a date"},
        {"Id": 1, "MailAddress": {"City": ["Oslo"]}},
    ],
)
def test_malformed_customer_is_a_contract_error(bad: dict[str, object]) -> None:
    with pytest.raises(ContractError) as info:
        parse_customer(bad)
    assert "Customer" in str(info.value)


def test_contract_error_names_field_not_value() -> None:
    with pytest.raises(ContractError) as info:
        parse_customer({"Id": 7, "EmailAddress": ["kari@example.com"]})
    assert "Id=7" in str(info.value) and "EmailAddress" in str(info.value)
    assert "kari@example.com" not in str(info.value)
    with pytest.raises(ContractError):
        parse_employee(["not", "an", "object"])


def test_timestamps() -> None:
    assert parse_timestamp("2021-09-25 08:03:00.1234567 -00:00") == datetime(
        2021, 9, 25, 8, 3, 0, 123456, tzinfo=UTC
    )
    assert parse_timestamp("2021-09-25T10:03:00+02:00") == datetime(
        2021, 9, 25, 10, 3, tzinfo=timezone(timedelta(hours=2))
    )
    assert parse_timestamp("2021-09-25T08:03:00").tzinfo is UTC
    with pytest.raises(ValueError):
        parse_timestamp("25.09.2021")
    value = datetime(2023, 10, 19, 11, 5, 0, 123456, tzinfo=UTC)
    assert format_timestamp(value) == "2023-10-19T11:05:00.1234560Z"
    assert parse_timestamp(format_timestamp(value)) == value
    assert format_timestamp(datetime(2023, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == (
        "2023-01-01T00:00:00.0000000Z"
    )


def test_customer_cc_alias() -> None:
    customer = Customer.model_validate({"Id": 1, "InvoiceEmailAddressCC": "a@b.no;c@d.no"})
    assert customer.invoice_email_address_cc == "a@b.no;c@d.no"
    assert "InvoiceEmailAddressCC" in customer.to_wire()
