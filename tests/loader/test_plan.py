"""The loader's pure rules (``services.loader.plan``), without Kafka or HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.core.errors import (
    AuthenticationError,
    ConflictError,
    ContractError,
    NotFoundError,
    ServerError,
    TransportError,
    ValidationError,
)
from services.loader.plan import (
    Action,
    FieldValues,
    LoaderCommand,
    Status,
    Step,
    create_values,
    decide_after_conflict,
    decide_fresh,
    failure,
    field_values,
    guarded_patch,
    holds,
    matches_expected,
    numeric_id,
    strip_nulls,
    update_base,
)

CONTACTS = WIX.resource("contacts")
CUSTOMERS = POWEROFFICE.resource("customers")


def command(**kw: Any) -> LoaderCommand:
    values: dict[str, Any] = {
        "command_id": "c1",
        "tenant": "default",
        "link_id": "l1",
        "system": "wix",
        "resource": "contacts",
        "action": Action.UPDATE,
        "target_id": "w1",
    }
    values.update(kw)
    return LoaderCommand(**values)


def contact(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "w1",
        "revision": 3,
        "info": {
            "name": {"first": "Ola", "last": "Nordmann"},
            "emails": {
                "items": [
                    {"email": "other@example.no", "tag": "HOME"},
                    {"email": "Ola@Example.no", "tag": "MAIN", "primary": True},
                ]
            },
            "phones": {"items": [{"phone": "912 34 567", "countryCode": "NO", "primary": True}]},
        },
        "primaryInfo": {"email": "Ola@Example.no", "phone": "912 34 567"},
    }
    base.update(kw)
    return base


# -- a revision-guarded target (Wix contacts) ----------------------------------------------------


def values_of(fields: dict[str, str | None]) -> FieldValues:
    return field_values(command(fields=fields), CONTACTS.fields)


def test_field_values_map_paths_through_the_accessors_and_refuse_unknown_ones() -> None:
    values = values_of(
        {
            "info.name.first": " Ole ",
            "info.name.last": "",
            "info.emails[primary].email": "ole@example.no",
            "info.phones[primary].phone": None,
        }
    )
    assert values.values == {
        "info.name.first": "Ole",
        "info.name.last": None,
        "info.emails[primary].email": "ole@example.no",
        "info.phones[primary].phone": None,
    }
    with pytest.raises(ContractError, match=r"wix command writes an unknown field 'info\.company'"):
        values_of({"info.company": "Acme"})


def test_holds_compares_like_the_mapper() -> None:
    current = contact()
    fields = CONTACTS.fields
    assert holds(current, values_of({"info.emails[primary].email": "ola@example.NO "}), fields)
    assert holds(current, values_of({"info.phones[primary].phone": "+47 912 34 567"}), fields)
    assert holds(
        current, values_of({"info.name.first": "Ola", "info.name.last": "Nordmann"}), fields
    )
    assert not holds(current, values_of({"info.name.first": "ola"}), fields)  # case counts
    assert not holds(current, values_of({"info.phones[primary].phone": None}), fields)
    no_phone = contact(info={}, primaryInfo={})
    assert holds(no_phone, values_of({"info.phones[primary].phone": None}), fields)


def test_update_base_is_the_target_record_at_the_expected_revision() -> None:
    record = contact(revision=None, primaryInfo=None)
    base = update_base(command(target_record=record, expected_revision=2), CONTACTS)
    assert base is not None and base["revision"] == 2 and "primaryInfo" not in base
    own = update_base(command(target_record=contact(), expected_revision=None), CONTACTS)
    assert own is not None and own["revision"] == 3
    assert update_base(command(target_record=None, expected_revision=2), CONTACTS) is None
    other = command(target_record=contact(id="other"), expected_revision=2)
    assert update_base(other, CONTACTS) is None
    assert update_base(command(target_record=contact(revision=None)), CONTACTS) is None


def test_decide_fresh() -> None:
    values = values_of({"info.name.first": "Ole"})
    at_3 = command(expected_revision=3, fields={"info.name.first": "Ole"})
    assert decide_fresh(at_3, values, contact(), CONTACTS) is Step.WRITE
    assert decide_fresh(at_3, values, contact(revision=4), CONTACTS) is Step.CONFLICT
    ole = contact(revision=4, info={"name": {"first": "Ole"}})
    assert decide_fresh(at_3, values, ole, CONTACTS) is Step.NOOP
    unguarded = command(expected={"info.name.first": "Ola"})
    assert decide_fresh(unguarded, values, contact(revision=9), CONTACTS) is Step.WRITE
    moved = command(expected={"info.name.first": "Per"})
    assert decide_fresh(moved, values, contact(revision=9), CONTACTS) is Step.CONFLICT


def test_decide_after_conflict() -> None:
    values = values_of({"info.emails[primary].email": "ola@example.no"})
    assert decide_after_conflict(values, contact(), CONTACTS.fields) is Status.NOOP
    other = values_of({"info.name.last": "X"})
    assert decide_after_conflict(other, contact(), CONTACTS.fields) is Status.CONFLICT


def test_matches_expected_ignores_unknown_paths() -> None:
    fields = CONTACTS.fields
    assert matches_expected(contact(), {"info.name.first": "Ola", "whatever": "x"}, fields)
    assert not matches_expected(contact(), {"info.phones[primary].phone": "+4799999999"}, fields)


def test_strip_nulls() -> None:
    assert strip_nulls({"a": None, "b": [1, None, {"c": None, "d": 2}]}) == {"b": [1, {"d": 2}]}


# -- a value-guarded target with a reference field (PowerOffice) ---------------------------------


def po(**kw: Any) -> LoaderCommand:
    return command(**{"system": "poweroffice", "resource": "customers", "target_id": "7", **kw})


def test_guarded_patch_guards_exactly_the_written_properties() -> None:
    patch = guarded_patch(
        po(
            fields={"FirstName": "Ole", "EmailAddress": None},
            expected={"FirstName": "Ola", "LastName": "Nordmann", "EmailAddress": "o@x.no"},
        ),
        CUSTOMERS,
    )
    assert patch.changes == {"FirstName": "Ole", "EmailAddress": None}
    assert patch.guards == {"FirstName": "Ola", "EmailAddress": "o@x.no"}
    assert guarded_patch(po(fields={"FirstName": "Ole"}), CUSTOMERS).guards == {}
    typed = guarded_patch(
        po(fields={"IsPerson": "true"}, expected={"IsPerson": "false"}), CUSTOMERS
    )
    assert (typed.changes, typed.guards) == ({"IsPerson": True}, {"IsPerson": False})
    with pytest.raises(ContractError):
        guarded_patch(po(fields={"ExternalImportReference": "x"}), CUSTOMERS)


def test_create_values_need_an_idempotency_key() -> None:
    create = po(
        action=Action.CREATE,
        target_id=None,
        fields={"IsPerson": "true", "FirstName": "Kari", "ExternalImportReference": "ref"},
        idempotency_key="ref",
    )
    assert create_values(create, CUSTOMERS) == ({"IsPerson": True, "FirstName": "Kari"}, "ref")
    with pytest.raises(ContractError, match="idempotency_key"):
        create_values(po(action=Action.CREATE, fields={"FirstName": "K"}), CUSTOMERS)
    with pytest.raises(ContractError, match="differs"):
        create_values(
            po(
                action=Action.CREATE,
                fields={"FirstName": "K", "ExternalImportReference": "other"},
                idempotency_key="ref",
            ),
            CUSTOMERS,
        )
    contact_person = command(
        system="poweroffice",
        resource="contact_persons",
        action=Action.CREATE,
        fields={"FirstName": "K"},
        idempotency_key="code",
    )
    persons = POWEROFFICE.resource("contact_persons")
    assert create_values(contact_person, persons) == ({"FirstName": "K"}, "code")


def test_exact_holds_and_ids() -> None:
    fields = CUSTOMERS.fields
    assert holds({"FirstName": "Ole", "LastName": "N"}, FieldValues({"FirstName": "Ole"}), fields)
    assert not holds({"FirstName": "ole"}, FieldValues({"FirstName": "Ole"}), fields)
    assert numeric_id("42", "target_id") == 42
    with pytest.raises(ContractError):
        numeric_id("w-1", "target_id")
    with pytest.raises(ContractError):
        numeric_id(None, "target_id")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (
            ValidationError("create failed", system="wix", status=400, error_code="X"),
            "REJECTED",
            "X",
        ),
        (ConflictError("update failed", system="wix", status=409), "REJECTED", "ConflictError"),
        (NotFoundError("get failed", system="poweroffice", status=404), "FAILED", "NotFoundError"),
        (AuthenticationError("token", system="wix", status=401), "FAILED", "AuthenticationError"),
        (ServerError("update failed", system="wix", status=503), "FAILED", "ServerError"),
        (TransportError("timed out"), "FAILED", "TransportError"),
        (ContractError("bad command"), "FAILED", "ContractError"),
        (KeyError("ola@example.no"), "FAILED", "InternalError"),
    ],
)
def test_failure_classification(error: BaseException, status: str, code: str) -> None:
    result = failure(error, attempts=3)
    assert (result.status.value, result.error_code) == (status, code)
    assert result.is_failure
    assert "ola@example.no" not in (result.error_message or "")
    if isinstance(error, ServerError | TransportError):
        assert (result.error_message or "").startswith("gave up after 3 attempts")
