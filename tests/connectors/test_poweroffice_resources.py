"""``PowerOfficeClient.resource(name)``: one accessor per resource, its rules as data.

The per-resource methods (``get_employee``, ``create_contact_person``, ...) were folded into
``ResourceAccessor``; the requests it sends must be the ones they sent, byte for byte. The golden
requests below were recorded from the per-resource methods (commit ``ec1b2ff``) with the same
calls and the same canned responses, and are compared here against the accessor: method, path
and raw query (parameter order included), ``Content-Type`` and body (JSON Patch ``test`` ops
first), and the auth headers.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.client import (
    RESOURCE_RULES,
    ParentRules,
    PowerOfficeClient,
    ResourceRules,
)
from services.connectors.poweroffice.models import ContactPerson, Customer, Employee
from services.core.budget import ApiBudget

# -- the rules (pure) --------------------------------------------------------------------------


def test_flat_resources_are_addressed_by_id_and_refuse_a_parent() -> None:
    rules = RESOURCE_RULES["customers"]
    assert rules.collection_path(None) == "/Customers"
    assert rules.record_path(12, None) == "/Customers/12"
    assert rules.reference_field == "ExternalImportReference"
    assert rules.reference_filter == "externalImportReference"
    assert rules.parent is None
    with pytest.raises(ValueError, match="no parent"):
        rules.record_path(12, 7)


def test_contact_persons_are_addressed_under_their_customer_and_need_it() -> None:
    rules = RESOURCE_RULES["contactpersons"]
    assert rules.collection_path(7) == "/ContactPersons/7"
    assert rules.record_path(12, 7) == "/ContactPersons/7/12"
    assert rules.reference_field == "ExternalCode"
    assert rules.reference_filter == "externalCodes"
    assert rules.parent == ParentRules(filter="contactIds", field="ContactId")
    with pytest.raises(ValueError, match="parent's id"):
        rules.collection_path(None)


def test_every_resource_has_rules_and_its_model() -> None:
    models = {name: rules.model for name, rules in RESOURCE_RULES.items()}
    assert models == {
        "employees": Employee,
        "customers": Customer,
        "contactpersons": ContactPerson,
    }
    assert all(isinstance(rules, ResourceRules) for rules in RESOURCE_RULES.values())


# -- the accessor's requests ---------------------------------------------------------------------

_RECORD: dict[str, Any] = {
    "Id": 5,
    "FirstName": "A",
    "LastName": "B",
    "Name": "C AS",
    "ContactId": 7,
    "LastChangedDateTimeOffset": "2024-01-01T00:00:00.1234567Z",
    "ExternalImportReference": "ref-1",
    "ExternalCode": "ref-1",
}
_PATCH = "application/json-patch+json"

Sent = tuple[str, str, str | None, str]


class _Recorder:
    """A canned PowerOffice: one record per list's first page, none found by reference."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.headers: set[tuple[str | None, str | None]] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/OAuth/Token"):
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 1200})
        query = request.url.params
        self.sent.append(
            (
                request.method,
                request.url.raw_path.decode(),
                request.headers.get("content-type"),
                request.content.decode(),
            )
        )
        self.headers.add(
            (request.headers.get("authorization"), request.headers.get("ocp-apim-subscription-key"))
        )
        if request.method == "GET":
            if "externalImportReference" in query or "externalCodes" in query:
                return httpx.Response(200, json=[])
            if "PageNumber" in query:
                return httpx.Response(200, json=[_RECORD] if query["PageNumber"] == "1" else [])
            return httpx.Response(200, json=_RECORD)
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200 if request.method == "PATCH" else 201, json=_RECORD)


def _exercise(
    name: str, parent: int | None
) -> tuple[list[Sent], set[tuple[str | None, str | None]]]:
    recorder = _Recorder()
    with PowerOfficeClient(
        application_key=SecretStr("app"),
        client_key=SecretStr("client"),
        subscription_key=SecretStr("sub"),
        budget=ApiBudget("po-resources-test", 0),
        base_url="http://po.test/v2",
        transport=httpx.MockTransport(recorder),
    ) as client:
        records = client.resource(name)
        kw: dict[str, Any] = {"parent_id": parent} if parent is not None else {}
        listing = {"parent_ids": [parent, 8]} if parent is not None else {}
        list(
            records.list(
                fields=["Name"], params={"x": "1"}, order_by="Name asc", page_size=10, **listing
            )
        )
        list(records.list_wire(changed_since="2023-01-01T00:00:00Z", fields=["Name"], page_size=3))
        records.get(5, **kw)
        records.find_by_reference("ref-1", **kw)
        created = records.create({"FirstName": "A", "LastName": "B"}, reference="ref-1", **kw)
        updated = records.update(
            5,
            {"FirstName": "X", "MailAddress": {"City": "Oslo"}},
            expected={"FirstName": "A"},
            **kw,
        )
        records.delete(5, **kw)
    assert created.created and updated.written
    return recorder.sent, recorder.headers


def _reads(path: str, extra: str) -> list[Sent]:
    changed = (
        "Fields=Id%2CName%2CLastChangedDateTimeOffset&lastChangedDateTimeOffsetGreaterThan={floor}"
        "&OrderBy=LastChangedDateTimeOffset+asc%2C+Id+asc&PageNumber={page}&PageSize=3"
    )
    return [
        (
            "GET",
            f"{path}?x=1{extra}&Fields=Id%2CName&OrderBy=Name+asc&PageNumber=1&PageSize=10",
            None,
            "",
        ),
        (
            "GET",
            f"{path}?x=1{extra}&Fields=Id%2CName&OrderBy=Name+asc&PageNumber=2&PageSize=10",
            None,
            "",
        ),
        ("GET", f"{path}?" + changed.format(floor="2023-01-01T00%3A00%3A00Z", page=1), None, ""),
        # keyset: from one tick below the page's last stamp; the repeat is dropped, then page 2
        (
            "GET",
            f"{path}?" + changed.format(floor="2024-01-01T00%3A00%3A00.1234550Z", page=1),
            None,
            "",
        ),
        (
            "GET",
            f"{path}?" + changed.format(floor="2024-01-01T00%3A00%3A00.1234550Z", page=2),
            None,
            "",
        ),
    ]


_GUARDED = (
    '[{"op":"test","path":"/FirstName","value":"A"},'
    '{"op":"replace","path":"/FirstName","value":"X"},'
    '{"op":"replace","path":"/MailAddress/City","value":"Oslo"}]'
)


def test_employee_requests_are_the_per_resource_methods_ones() -> None:
    sent, headers = _exercise("employees", None)
    assert sent == [
        *_reads("/v2/Employees", ""),
        ("GET", "/v2/Employees/5", None, ""),
        ("GET", "/v2/Employees?externalImportReference=ref-1", None, ""),
        ("GET", "/v2/Employees?externalImportReference=ref-1", None, ""),  # before the POST
        (
            "POST",
            "/v2/Employees",
            "application/json",
            '{"FirstName":"A","LastName":"B","ExternalImportReference":"ref-1"}',
        ),
        ("PATCH", "/v2/Employees/5", _PATCH, _GUARDED),
        ("DELETE", "/v2/Employees/5", None, ""),
    ]
    assert headers == {("Bearer tok", "sub")}


def test_contact_person_requests_are_the_per_resource_methods_ones() -> None:
    sent, headers = _exercise("contactpersons", 7)
    assert sent == [
        *_reads("/v2/ContactPersons", "&contactIds=7%2C8"),
        ("GET", "/v2/ContactPersons/7/5", None, ""),
        ("GET", "/v2/ContactPersons?externalCodes=ref-1&contactIds=7", None, ""),
        ("GET", "/v2/ContactPersons?externalCodes=ref-1&contactIds=7", None, ""),
        (
            "POST",
            "/v2/ContactPersons/7",
            "application/json",
            '{"FirstName":"A","LastName":"B","ExternalCode":"ref-1"}',
        ),
        ("PATCH", "/v2/ContactPersons/7/5", _PATCH, _GUARDED),
        ("DELETE", "/v2/ContactPersons/7/5", None, ""),
    ]
    assert headers == {("Bearer tok", "sub")}


def test_a_parent_is_required_where_nested_and_refused_elsewhere() -> None:
    client = PowerOfficeClient(
        application_key=SecretStr("app"),
        client_key=SecretStr("client"),
        subscription_key=SecretStr("sub"),
        budget=ApiBudget("po-resources-test", 0),
        base_url="http://po.test/v2",
        transport=httpx.MockTransport(lambda request: httpx.Response(500)),
    )
    with client:
        # refused before any request (the transport would answer 500)
        with pytest.raises(ValueError, match="parent's id"):
            client.resource("contactpersons").get(5)
        with pytest.raises(ValueError, match="parent's id"):
            client.resource("contactpersons").create({}, reference="r")
        with pytest.raises(ValueError, match="no parent"):
            client.resource("customers").delete(5, parent_id=7)
        with pytest.raises(ValueError, match="no parent"):
            list(client.resource("employees").list(parent_ids=[7]))
        with pytest.raises(ValueError, match="unknown PowerOffice resource 'contact_persons'"):
            client.resource("contact_persons")
