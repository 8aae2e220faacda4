"""The loader's pure rules (``services.loader.plan``), without Kafka or HTTP."""

from __future__ import annotations

from typing import Any

import pytest

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
    LoaderCommand,
    Status,
    Step,
    coerce,
    decide_after_conflict,
    decide_wix_fresh,
    failure,
    po_create,
    po_holds,
    po_id,
    po_patch,
    read_wix,
    strip_nulls,
    wix_base,
    wix_holds,
    wix_matches_expected,
    wix_values,
)


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


# -- Wix ---------------------------------------------------------------------------------------


def test_wix_values_map_paths_and_refuse_unknown_ones() -> None:
    values = wix_values(
        {
            "info.name.first": " Ole ",
            "info.name.last": "",
            "info.emails[primary].email": "ole@example.no",
            "info.phones[primary].phone": None,
        }
    )
    assert values.values == {
        "first_name": "Ole",
        "last_name": None,
        "email": "ole@example.no",
        "phone": None,
    }
    assert values.has_natural_key
    assert not wix_values(
        {"info.name.first": "A", "info.phones[primary].phone": " "}
    ).has_natural_key
    with pytest.raises(ContractError, match=r"info\.company"):
        wix_values({"info.company": "Acme"})


def test_read_wix_takes_the_primary_items() -> None:
    assert read_wix(contact()) == {
        "first_name": "Ola",
        "last_name": "Nordmann",
        "email": "Ola@Example.no",
        "phone": "912 34 567",
    }
    unflagged = contact(primaryInfo={"email": "other@example.no"})
    for item in unflagged["info"]["emails"]["items"]:
        item.pop("primary", None)
    assert read_wix(unflagged)["email"] == "other@example.no"
    projection = {"id": "w", "info": {"emails": {"items": [{"email": "first@example.no"}]}}}
    assert read_wix(projection)["email"] == "first@example.no"
    e164 = contact()
    e164["info"]["phones"]["items"][0]["e164Phone"] = "+4791234567"
    assert read_wix(e164)["phone"] == "+4791234567"


def test_wix_holds_compares_like_the_mapper() -> None:
    current = contact()
    assert wix_holds(current, wix_values({"info.emails[primary].email": "ola@example.NO "}))
    assert wix_holds(current, wix_values({"info.phones[primary].phone": "+47 912 34 567"}))
    assert wix_holds(current, wix_values({"info.name.first": "Ola", "info.name.last": "Nordmann"}))
    assert not wix_holds(current, wix_values({"info.name.first": "ola"}))  # case counts in names
    assert not wix_holds(current, wix_values({"info.phones[primary].phone": None}))
    no_phone = contact(info={}, primaryInfo={})
    assert wix_holds(no_phone, wix_values({"info.phones[primary].phone": None}))


def test_wix_base_is_the_target_record_at_the_expected_revision() -> None:
    record = contact(revision=None, primaryInfo=None)
    base = wix_base(command(target_record=record, expected_revision=2))
    assert base is not None and base["revision"] == 2 and "primaryInfo" not in base
    assert wix_base(command(target_record=contact(), expected_revision=None))["revision"] == 3  # type: ignore[index]
    assert wix_base(command(target_record=None, expected_revision=2)) is None
    assert wix_base(command(target_record=contact(id="other"), expected_revision=2)) is None
    assert wix_base(command(target_record=contact(revision=None))) is None


def test_decide_wix_fresh() -> None:
    values = wix_values({"info.name.first": "Ole"})
    at_3 = command(expected_revision=3, fields={"info.name.first": "Ole"})
    assert decide_wix_fresh(at_3, values, contact()) is Step.WRITE
    assert decide_wix_fresh(at_3, values, contact(revision=4)) is Step.CONFLICT
    ole = contact(revision=4, info={"name": {"first": "Ole"}})
    assert decide_wix_fresh(at_3, values, ole) is Step.NOOP
    unguarded = command(expected={"info.name.first": "Ola"})
    assert decide_wix_fresh(unguarded, values, contact(revision=9)) is Step.WRITE
    moved = command(expected={"info.name.first": "Per"})
    assert decide_wix_fresh(moved, values, contact(revision=9)) is Step.CONFLICT


def test_decide_after_conflict() -> None:
    values = wix_values({"info.emails[primary].email": "ola@example.no"})
    assert decide_after_conflict(values, contact()) is Status.NOOP
    assert decide_after_conflict(wix_values({"info.name.last": "X"}), contact()) is Status.CONFLICT


def test_wix_matches_expected_ignores_unknown_paths() -> None:
    assert wix_matches_expected(contact(), {"info.name.first": "Ola", "whatever": "x"})
    assert not wix_matches_expected(contact(), {"info.phones[primary].phone": "+4799999999"})


def test_strip_nulls() -> None:
    assert strip_nulls({"a": None, "b": [1, None, {"c": None, "d": 2}]}) == {"b": [1, {"d": 2}]}


# -- PowerOffice --------------------------------------------------------------------------------

TYPES = {"IsPerson": bool, "DepartmentId": int, "Allowance": float}


def po(**kw: Any) -> LoaderCommand:
    return command(**{"system": "poweroffice", "resource": "customers", "target_id": "7", **kw})


def test_po_patch_guards_exactly_the_written_properties() -> None:
    patch = po_patch(
        po(
            fields={"FirstName": "Ole", "EmailAddress": None},
            expected={"FirstName": "Ola", "LastName": "Nordmann", "EmailAddress": "o@x.no"},
        ),
        TYPES,
    )
    assert patch.changes == {"FirstName": "Ole", "EmailAddress": None}
    assert patch.guards == {"FirstName": "Ola", "EmailAddress": "o@x.no"}
    assert po_patch(po(fields={"FirstName": "Ole"}), TYPES).guards == {}
    with pytest.raises(ContractError):
        po_patch(po(fields={"ExternalImportReference": "x"}), TYPES)


def test_coerce_to_the_json_type_of_the_property() -> None:
    assert coerce("IsPerson", "true", TYPES) is True
    assert coerce("IsPerson", "False", TYPES) is False
    assert coerce("DepartmentId", " 12 ", TYPES) == 12
    assert coerce("Allowance", "1.5", TYPES) == 1.5
    assert coerce("FirstName", "007", TYPES) == "007"
    assert coerce("IsPerson", None, TYPES) is None
    with pytest.raises(ContractError, match="IsPerson"):
        coerce("IsPerson", "maybe", TYPES)


def test_po_create_needs_an_idempotency_key() -> None:
    create = po(
        action=Action.CREATE,
        target_id=None,
        fields={"IsPerson": "true", "FirstName": "Kari", "ExternalImportReference": "ref"},
        idempotency_key="ref",
    )
    assert po_create(create, TYPES) == ({"IsPerson": True, "FirstName": "Kari"}, "ref")
    with pytest.raises(ContractError, match="idempotency_key"):
        po_create(po(action=Action.CREATE, fields={"FirstName": "K"}), TYPES)
    with pytest.raises(ContractError, match="differs"):
        po_create(
            po(
                action=Action.CREATE,
                fields={"FirstName": "K", "ExternalImportReference": "other"},
                idempotency_key="ref",
            ),
            TYPES,
        )
    contact_person = command(
        system="poweroffice",
        resource="contact_persons",
        action=Action.CREATE,
        fields={"FirstName": "K"},
        idempotency_key="code",
    )
    assert po_create(contact_person, TYPES) == ({"FirstName": "K"}, "code")


def test_po_holds_and_ids() -> None:
    assert po_holds({"FirstName": "Ole", "LastName": "N"}, {"FirstName": "Ole"})
    assert not po_holds({"FirstName": "ole"}, {"FirstName": "Ole"})
    assert po_id("42", "target_id") == 42
    with pytest.raises(ContractError):
        po_id("w-1", "target_id")
    with pytest.raises(ContractError):
        po_id(None, "target_id")


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
