"""Typed PowerOffice Go v2 records: ``Employee``, ``Customer``, ``ContactPerson`` (+ addresses).

Field names are snake_case attributes with the API's PascalCase names as aliases
(``first_name`` <-> ``FirstName``); ``populate_by_name`` accepts both and ``extra="allow"`` keeps
fields this module does not know, so ``model_dump(by_alias=True)`` gives back the wire record.
Every field except ``Id`` is optional: a ``Fields=`` projection returns partial records and the
real API may omit or add properties. Enumerations (``Gender``, ``InvoiceDeliveryType`` ...) are
plain strings so that a value added by PowerOffice never makes a record unreadable.

``parse_record`` / ``parse_employee`` ... turn a wire dict into a model or raise
``ContractError`` naming the resource, the record ``Id`` and the offending field — never the
offending value (it may be personal data).

Timestamps: the API's ``*DateTimeOffset`` values carry 7 fractional digits (100 ns ticks);
Python keeps 6, so ``parse_timestamp`` rounds *down* to the microsecond (a cursor built from a
parsed value can only re-read, never skip) and ``format_timestamp`` writes the spec's form
``2021-09-30T08:03:00.1234560Z``. Keep the raw string when an exact cursor is needed.

Imports: standard library and pydantic only (no HTTP, no simulator code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_pascal

from services.core.errors import ContractError

Resource = Literal["employees", "customers", "contactpersons"]

_TIMESTAMP_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?\s*$"
)


def parse_timestamp(value: str) -> datetime:
    """Parse an API date-time (``T`` or space, up to 9 fractional digits, ``Z``/offset/none).

    Fractions beyond microseconds are truncated (rounded down). A value without an offset is
    taken as UTC. The result is always timezone-aware. Raises ``ValueError`` when malformed.
    """
    match = _TIMESTAMP_RE.match(value)
    if match is None:
        raise ValueError("not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micros = int((fraction or "0").ljust(6, "0")[:6])
    tz: timezone = UTC
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        tz = timezone(sign * delta)
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second or 0),
        micros,
        tzinfo=tz,
    )


def format_timestamp(value: datetime) -> str:
    """Format as the API does in its examples: UTC, 7 fractional digits, ``Z``.

    A naive datetime is taken as UTC.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond:06d}0Z"


def _timestamp(value: Any) -> Any:
    if isinstance(value, str):
        return parse_timestamp(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]


class _Record(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        alias_generator=to_pascal,
        frozen=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The record as the API spells it (PascalCase, unknown fields kept, JSON-ready)."""
        return self.model_dump(by_alias=True, mode="json", exclude_unset=True)


class ContactAddress(_Record):
    """``ContactAddressDto`` (customer/employee ``MailAddress``), ``AddressDto`` (person)."""

    id: int | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    zip_code: str | None = None
    country_code: str | None = None
    external_code: str | None = None
    last_changed_date_time_offset: Timestamp | None = None


class Employee(_Record):
    """``EmployeeDto`` of ``GET /Employees``."""

    id: int
    number: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    email_address: str | None = None
    phone_number: str | None = None
    date_of_birth: date | None = None
    hired_date: date | None = None
    start_date: date | None = None
    end_date: date | None = None
    job_title: str | None = None
    gender: str | None = None
    national_id_number: str | None = None
    international_id_number: str | None = None
    international_id_country_code: str | None = None
    international_id_type: str | None = None
    international_id_report_to_altinn: bool | None = None
    is_archived: bool | None = None
    department_id: int | None = None
    department_code: str | None = None
    location_id: int | None = None
    location_code: str | None = None
    manager_employee_id: int | None = None
    manager_employee_no: int | None = None
    contact_group_ids: list[int] | None = None
    external_import_reference: str | None = None
    external_number: int | None = None
    mail_address: ContactAddress | None = None
    salary_bank_account_id: int | None = None
    expense_bank_account_id: int | None = None
    travel_expense_bank_account_id: int | None = None
    subledger_account_id: int | None = None
    created_from_import_journal_id: str | None = None
    contact_created_date_time_offset: Timestamp | None = None
    employee_created_date_time_offset: Timestamp | None = None
    last_changed_date_time_offset: Timestamp | None = None


class Customer(_Record):
    """``CustomerDto`` of ``GET /Customers``."""

    id: int
    number: int | None = None
    is_person: bool | None = None
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    legal_name: str | None = None
    organization_number: str | None = None
    email_address: str | None = None
    phone_number: str | None = None
    website_url: str | None = None
    date_of_birth: date | None = None
    national_id_number: str | None = None
    is_active: bool | None = None
    is_archived: bool | None = None
    is_vat_free: bool | None = None
    mail_address: ContactAddress | None = None
    contact_group_ids: list[int] | None = None
    external_import_reference: str | None = None
    external_number: int | None = None
    currency_code: str | None = None
    customer_since: date | None = None
    invoice_delivery_type: str | None = None
    invoice_email_address: str | None = None
    invoice_email_address_cc: str | None = Field(default=None, alias="InvoiceEmailAddressCC")
    payment_reminder_email_address: str | None = None
    reminder_delivery_type: str | None = None
    notice_of_debt_collection_delivery_type: str | None = None
    payment_term: int | None = None
    payment_term_id: int | None = None
    delivery_term: str | None = None
    delivery_term_id: int | None = None
    department_code: str | None = None
    department_id: int | None = None
    invoice_branding_theme_code: str | None = None
    invoice_branding_theme_id: int | None = None
    sales_person_employee_id: int | None = None
    sales_person_employee_number: int | None = None
    allowance: float | None = None
    billable_rate: float | None = None
    send_payment_reminders: bool | None = None
    use_invoice_fee: bool | None = None
    transfer_to_debt_collection_agency: bool | None = None
    do_not_add_late_payment_fees: bool | None = None
    do_not_add_late_payment_interest: bool | None = None
    do_not_automate_payment_notifications: bool | None = None
    subledger_account_id: int | None = None
    created_from_import_journal_id: str | None = None
    contact_created_date_time_offset: Timestamp | None = None
    customer_created_date_time_offset: Timestamp | None = None
    last_changed_date_time_offset: Timestamp | None = None


class ContactPerson(_Record):
    """``ContactPersonDto`` of ``GET /ContactPersons`` (a person of a customer or supplier)."""

    id: int
    contact_id: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    email_address: str | None = None
    phone_number: str | None = None
    title: str | None = None
    is_active: bool | None = None
    is_default: bool | None = None
    external_code: str | None = None
    mail_address: ContactAddress | None = None
    created_date_time_offset: Timestamp | None = None
    last_changed_date_time_offset: Timestamp | None = None


PowerOfficeRecord = Employee | Customer | ContactPerson
RecordT = TypeVar("RecordT", Employee, Customer, ContactPerson)


@dataclass(frozen=True)
class ResourceSpec:
    """One PowerOffice resource — the package's one table of them (``RESOURCE_SPECS``): the
    connector's descriptor, the client's reference look-ups and the simulator read it."""

    name: str
    """The engine's name (topics, link members, dataflow files)."""
    api: Resource
    """The API's name (paths, the simulator's collections)."""
    model: type[PowerOfficeRecord]
    reference_field: str
    """The idempotency/lookup reference property (unique per resource)."""
    record_type: str
    """The Avro record type carrying a record in messages (``schemas/``)."""
    parent_field: str | None = None
    """The parent contact's id, for a resource addressed under its parent."""


RESOURCE_SPECS: Final[tuple[ResourceSpec, ...]] = (
    ResourceSpec(
        "employees", "employees", Employee, "ExternalImportReference", "tether.poweroffice.Employee"
    ),
    ResourceSpec(
        "customers", "customers", Customer, "ExternalImportReference", "tether.poweroffice.Customer"
    ),
    ResourceSpec(
        "contact_persons",
        "contactpersons",
        ContactPerson,
        "ExternalCode",
        "tether.poweroffice.ContactPerson",
        parent_field="ContactId",
    ),
)
"""In extraction order: a parent resource before its children."""

RESOURCES: Final[tuple[Resource, ...]] = tuple(spec.api for spec in RESOURCE_SPECS)
"""The API's resource names."""
MODEL_BY_RESOURCE: Final[dict[Resource, type[PowerOfficeRecord]]] = {
    spec.api: spec.model for spec in RESOURCE_SPECS
}
REFERENCE_FIELD: Final[dict[Resource, str]] = {
    spec.api: spec.reference_field for spec in RESOURCE_SPECS
}
"""The idempotency/lookup reference property of each resource, by the API's name."""


def parse_record(model: type[RecordT], data: Any) -> RecordT:
    """Validate one wire record; a malformed one raises ``ContractError`` (no values quoted)."""
    name = model.__name__
    if not isinstance(data, dict):
        raise ContractError(
            f"poweroffice {name}: expected a JSON object, got {type(data).__name__}"
        )
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        record_id = data.get("Id", data.get("id"))
        shown_id = record_id if isinstance(record_id, int) else "?"
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in err['loc'])}: {err['type']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ContractError(f"poweroffice {name} Id={shown_id} malformed: {problems}") from exc


def parse_employee(data: Any) -> Employee:
    return parse_record(Employee, data)


def parse_customer(data: Any) -> Customer:
    return parse_record(Customer, data)


def parse_contact_person(data: Any) -> ContactPerson:
    return parse_record(ContactPerson, data)
