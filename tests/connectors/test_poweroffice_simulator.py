"""The PowerOffice Go v2 simulator pinned to shared/reference/poweroffice-go-v2.md (raw HTTP).

These tests speak plain httpx to the simulator so that they pin the wire contract (status codes,
bodies, headers) independently of the production client.
"""

from __future__ import annotations

import base64
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.models import (
    ContactPerson,
    Customer,
    Employee,
    parse_timestamp,
)
from services.connectors.poweroffice.simstore import dto_fields
from services.connectors.poweroffice.simulator import (
    Credentials,
    ManualClock,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import FaultRule, ServerThread

CREDS = Credentials()
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
PATCH_TYPE = {"Content-Type": "application/json-patch+json"}


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="module")
def running(clock: ManualClock) -> Iterator[tuple[PowerOfficeSimulator, ServerThread]]:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(), clock=clock)
    with sim.serve() as server:
        yield sim, server


@pytest.fixture
def sim(running: tuple[PowerOfficeSimulator, ServerThread]) -> PowerOfficeSimulator:
    running[0].reset()
    return running[0]


@pytest.fixture
def server(running: tuple[PowerOfficeSimulator, ServerThread]) -> ServerThread:
    return running[1]


def _basic(app: str = CREDS.application_key, client: str = CREDS.client_key) -> str:
    return "Basic " + base64.b64encode(f"{app}:{client}".encode()).decode()


def _token(http: httpx.Client, path: str = "/OAuth/Token") -> str:
    response = http.post(
        path,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": _basic(), "Ocp-Apim-Subscription-Key": CREDS.subscription_key},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def api(sim: PowerOfficeSimulator, server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as http:
        token = _token(http)
        http.headers["Authorization"] = f"Bearer {token}"
        http.headers["Ocp-Apim-Subscription-Key"] = CREDS.subscription_key
        yield http


def _customer(api: httpx.Client, **extra: Any) -> dict[str, Any]:
    body = {"Name": "Østby Bygg AS", "EmailAddress": "post@ostby.no", **extra}
    response = api.post("/v2/Customers", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


# -- token endpoint -------------------------------------------------------------------------------


def test_token_success_shape_and_case_insensitive_paths(
    sim: PowerOfficeSimulator, server: ServerThread
) -> None:
    with httpx.Client(base_url=server.url) as http:
        headers = {"Authorization": _basic(), "Ocp-Apim-Subscription-Key": CREDS.subscription_key}
        form = {"grant_type": "client_credentials"}
        for path in ("/OAuth/Token", "/oauth/token", "/Demo/OAuth/Token", "/demo/oauth/Token"):
            response = http.post(path, data=form, headers=headers)
            assert response.status_code == 200, path
            body = response.json()
            assert set(body) == {"access_token", "token_type", "expires_in"}
            assert body["token_type"] == "bearer" and body["expires_in"] == 1200
        token = response.json()["access_token"]
        auth = {
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": "sim-subscription-key",
        }
        for path in ("/v2/Customers", "/V2/customers", "/Demo/v2/Customers", "/demo/V2/CUSTOMERS"):
            assert http.get(path, headers=auth).status_code == 204, path


def test_token_errors(sim: PowerOfficeSimulator, server: ServerThread) -> None:
    with httpx.Client(base_url=server.url) as http:
        key = {"Ocp-Apim-Subscription-Key": CREDS.subscription_key}
        form = {"grant_type": "client_credentials"}
        bad = http.post(
            "/OAuth/Token", data=form, headers={**key, "Authorization": _basic("x", "y")}
        )
        assert bad.status_code == 400
        assert bad.json()["error"] == "invalid_client"
        assert "Client integration not found" in bad.json()["error_description"]
        nobasic = http.post("/OAuth/Token", data=form, headers=key)
        assert nobasic.status_code == 400 and nobasic.json()["error"] == "invalid_client"
        grant = http.post(
            "/OAuth/Token",
            data={"grant_type": "password"},
            headers={**key, "Authorization": _basic()},
        )
        assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
        nokey = http.post("/OAuth/Token", data=form, headers={"Authorization": _basic()})
        assert nokey.status_code == 401
        assert "missing subscription key" in nokey.json()["message"]
        wrongkey = http.post(
            "/OAuth/Token",
            data=form,
            headers={"Authorization": _basic(), "Ocp-Apim-Subscription-Key": "nope"},
        )
        assert wrongkey.status_code == 401
        assert "invalid subscription key" in wrongkey.json()["message"]


def test_bearer_required_and_expiry(
    sim: PowerOfficeSimulator, server: ServerThread, clock: ManualClock
) -> None:
    with httpx.Client(base_url=server.url) as http:
        key = {"Ocp-Apim-Subscription-Key": CREDS.subscription_key}
        assert http.get("/v2/Employees", headers=key).status_code == 401
        garbage = http.get("/v2/Employees", headers={**key, "Authorization": "Bearer nope"})
        assert garbage.status_code == 401
        assert garbage.headers["WWW-Authenticate"].startswith("Bearer")
        token = _token(http)
        auth = {**key, "Authorization": f"Bearer {token}"}
        no_key = http.get("/v2/Employees", headers={"Authorization": f"Bearer {token}"})
        assert no_key.status_code == 401
        assert http.get("/v2/Employees", headers=auth).status_code == 204
        clock.advance(1199)
        assert http.get("/v2/Employees", headers=auth).status_code == 204
        clock.advance(2)
        assert http.get("/v2/Employees", headers=auth).status_code == 401


# -- shapes ---------------------------------------------------------------------------------------


def test_dto_fields_match_models_and_reference_examples(api: httpx.Client) -> None:
    customer = _customer(
        api, MailAddress={"AddressLine1": "Storgata 1", "City": "Oslo", "ZipCode": "0150"}
    )
    employee = api.post("/v2/Employees", json={"FirstName": "Ola", "LastName": "Nordmann"})
    assert employee.status_code == 201
    person = api.post(
        f"/v2/ContactPersons/{customer['Id']}", json={"FirstName": "Kari", "LastName": "Lie"}
    )
    assert person.status_code == 201
    for model, resource, dto in (
        (Customer, "customers", customer),
        (Employee, "employees", employee.json()),
        (ContactPerson, "contactpersons", person.json()),
    ):
        aliases = {info.alias for info in model.model_fields.values()}
        assert list(dto) == dto_fields(resource)  # every documented field, documented order
        assert set(dto) == aliases, resource
        assert TS_RE.match(dto["LastChangedDateTimeOffset"])
    assert customer["MailAddress"]["CountryCode"] == "NO"
    assert TS_RE.match(customer["MailAddress"]["LastChangedDateTimeOffset"])
    assert customer["Number"] == 10000 and employee.json()["Number"] == 1
    assert person.json()["ContactId"] == customer["Id"]
    assert set(person.json()["MailAddress"] or {}) <= {
        "AddressLine1",
        "AddressLine2",
        "City",
        "CountryCode",
        "ZipCode",
    }


def test_post_validation_and_read_only_fields(api: httpx.Client) -> None:
    missing = api.post("/v2/Employees", json={"FirstName": "Ola"})
    assert missing.status_code == 400
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["title"] == "Employee validation error(s)"
    assert missing.json()["status"] == 400
    company = api.post("/v2/Customers", json={"IsPerson": False, "FirstName": "A"})
    assert company.status_code == 400
    person = api.post(
        "/v2/Customers", json={"IsPerson": True, "FirstName": "Eli", "LastName": "Røed"}
    )
    assert person.status_code == 201
    bad_email = api.post("/v2/Customers", json={"Name": "X AS", "EmailAddress": "not-an-email"})
    assert bad_email.status_code == 400
    bad_type = api.post("/v2/Employees", json={"FirstName": 5, "LastName": "x"})
    assert bad_type.status_code == 400
    assert bad_type.json()["title"] == "Unable to cast object(s)"
    # read-only and unknown properties are ignored on POST; camelCase keys are accepted
    created = api.post(
        "/v2/Employees",
        json={
            "firstName": "Ola",
            "lastName": "Nordmann",
            "IsActive": False,
            "LastChangedDateTimeOffset": "2000-01-01T00:00:00Z",
            "Whatever": 1,
        },
    )
    assert created.status_code == 201
    assert created.json()["FirstName"] == "Ola"
    assert created.json()["LastChangedDateTimeOffset"] != "2000-01-01T00:00:00.0000000Z"
    assert "Whatever" not in created.json()
    wrong_type = api.post("/v2/Employees", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415


def test_get_404_problem_details_and_unknown_route(api: httpx.Client) -> None:
    missing = api.get("/v2/Customers/12345")
    assert missing.status_code == 404
    assert missing.json()["title"] == "Object(s) not found"
    assert missing.json()["detail"] == "Customer with id = 12345 not found."
    assert api.get("/v2/Nothing").status_code == 404
    assert api.get("/v2/Nothing").json() == {"statusCode": 404, "message": "Resource not found"}
    assert api.get("/v2/Customers/abc").status_code == 404


# -- lists ----------------------------------------------------------------------------------------


def test_empty_list_is_204_with_empty_body(api: httpx.Client) -> None:
    for path in ("/v2/Employees", "/v2/Customers", "/v2/ContactPersons"):
        response = api.get(path)
        assert response.status_code == 204
        assert response.content == b""


def test_paging_edges(sim: PowerOfficeSimulator, api: httpx.Client) -> None:
    sim.seed("employees", [{"FirstName": f"P{i}", "LastName": "X"} for i in range(7)])
    page1 = api.get("/v2/Employees", params={"PageNumber": 1, "PageSize": 3})
    assert page1.status_code == 200 and isinstance(page1.json(), list)
    assert [e["FirstName"] for e in page1.json()] == ["P0", "P1", "P2"]
    assert page1.headers["X-Pagination"]
    page3 = api.get("/v2/Employees", params={"pageNumber": 3, "pageSize": 3})
    assert [e["FirstName"] for e in page3.json()] == ["P6"]
    past = api.get("/v2/Employees", params={"PageNumber": 4, "PageSize": 3})
    assert past.status_code == 204 and past.content == b""
    assert len(api.get("/v2/Employees").json()) == 7  # default PageSize 5000
    assert api.get("/v2/Employees", params={"PageSize": 20000}).status_code == 200
    for bad in ({"PageSize": 20001}, {"PageSize": 0}, {"PageNumber": 0}, {"PageSize": "x"}):
        assert api.get("/v2/Employees", params=bad).status_code == 400, bad
    for odata in ({"$top": 1}, {"$skip": 1}):
        response = api.get("/v2/Employees", params=odata)
        assert response.status_code == 400
        assert response.json()["status"] == 400


def test_exclusive_change_and_created_filters(
    sim: PowerOfficeSimulator, api: httpx.Client, clock: ManualClock
) -> None:
    first = _customer(api, ExternalImportReference="c-1")
    clock.advance(5)
    second = _customer(api, Name="Fjord Energi ASA", ExternalImportReference="c-2")
    stamp = first["LastChangedDateTimeOffset"]
    after = api.get("/v2/Customers", params={"lastChangedDateTimeOffsetGreaterThan": stamp})
    assert [c["Id"] for c in after.json()] == [second["Id"]]
    just_before = (parse_timestamp(stamp) - timedelta(microseconds=1)).isoformat()
    both = api.get("/v2/Customers", params={"lastChangedDateTimeOffsetGreaterThan": just_before})
    assert len(both.json()) == 2
    # the spec's other spelling: space, 7 digits, "-00:00" offset
    spaced = parse_timestamp(second["LastChangedDateTimeOffset"]).strftime(
        "%Y-%m-%d %H:%M:%S.%f0 -00:00"
    )
    none = api.get("/v2/Customers", params={"lastChangedDateTimeOffsetGreaterThan": spaced})
    assert none.status_code == 204
    created = api.get("/v2/Customers", params={"customerCreatedDateTimeOffsetGreaterThan": stamp})
    assert [c["Id"] for c in created.json()] == [second["Id"]]
    # each resource has its own created-filter name; another resource's name is ignored
    other_name = api.get("/v2/Customers", params={"createdDateTimeOffsetGreaterThan": stamp})
    assert len(other_name.json()) == 2
    bad = api.get("/v2/Customers", params={"lastChangedDateTimeOffsetGreaterThan": "yesterday"})
    assert bad.status_code == 400
    person = api.post(f"/v2/ContactPersons/{first['Id']}", json={"FirstName": "A", "LastName": "B"})
    cp_stamp = person.json()["CreatedDateTimeOffset"]
    assert (
        api.get(
            "/v2/ContactPersons", params={"createdDateTimeOffsetGreaterThan": cp_stamp}
        ).status_code
        == 204
    )
    sim.seed("employees", [{"FirstName": "E", "LastName": "M", "Number": 42}])
    employees = api.get("/v2/Employees", params={"employeeCreatedDateTimeOffsetGreaterThan": stamp})
    assert len(employees.json()) == 1


def test_reference_and_number_filters(sim: PowerOfficeSimulator, api: httpx.Client) -> None:
    sim.seed(
        "employees",
        [
            {"FirstName": "A", "LastName": "X", "Number": 1, "ExternalImportReference": "ref-A"},
            {"FirstName": "B", "LastName": "X", "Number": 150, "ExternalNumber": 7},
            {"FirstName": "C", "LastName": "X", "Number": 600},
        ],
    )
    by_ref = api.get("/v2/Employees", params={"externalImportReference": "REF-a"}).json()
    assert [e["FirstName"] for e in by_ref] == ["A"]
    ranged = api.get("/v2/Employees", params={"employeeNos": "1, 100-200"}).json()
    assert [e["FirstName"] for e in ranged] == ["A", "B"]
    open_ended = api.get("/v2/Employees", params={"employeeNos": "500-"}).json()
    assert [e["FirstName"] for e in open_ended] == ["C"]
    assert [
        e["FirstName"] for e in api.get("/v2/Employees", params={"externalNos": "7"}).json()
    ] == ["B"]
    customer = _customer(api)
    other = _customer(api, Name="Bergen Rør ANS")
    for parent, code in ((customer, "cp-1"), (other, "cp-2")):
        created = api.post(
            f"/v2/ContactPersons/{parent['Id']}",
            json={"FirstName": "K", "LastName": "L", "ExternalCode": code},
        )
        assert created.status_code == 201
    by_parent = api.get("/v2/ContactPersons", params={"contactIds": f"{other['Id']}"}).json()
    assert [p["ExternalCode"] for p in by_parent] == ["cp-2"]
    by_code = api.get("/v2/ContactPersons", params={"externalCodes": "cp-1, CP-2"}).json()
    assert len(by_code) == 2
    assert api.get("/v2/ContactPersons", params={"contactIds": "1-5"}).status_code == 400


def test_fields_projection_and_order_by(sim: PowerOfficeSimulator, api: httpx.Client) -> None:
    sim.seed(
        "employees",
        [
            {"FirstName": "Bjørn", "LastName": "Østby"},
            {"FirstName": "Åse", "LastName": "Berg"},
            {"FirstName": "Anne", "LastName": "Berg"},
        ],
    )
    projected = api.get("/v2/Employees", params={"Fields": "id, firstname"}).json()
    assert all(list(e) == ["Id", "FirstName"] for e in projected)
    assert api.get("/v2/Employees", params={"Fields": "Id,Nope"}).status_code == 400
    ordered = api.get(
        "/v2/Employees", params={"OrderBy": "LastName asc, FirstName desc", "Fields": "FirstName"}
    ).json()
    assert [e["FirstName"] for e in ordered] == ["Åse", "Anne", "Bjørn"]
    desc = api.get("/v2/Employees", params={"OrderBy": "Id desc"}).json()
    assert [e["Id"] for e in desc] == sorted((e["Id"] for e in desc), reverse=True)
    default = api.get("/v2/Employees").json()
    assert [e["Id"] for e in default] == sorted(e["Id"] for e in default)
    for bad in ("Nope asc", "LastName sideways", "MailAddress asc"):
        assert api.get("/v2/Employees", params={"OrderBy": bad}).status_code == 400, bad


# -- JSON Patch -----------------------------------------------------------------------------------


def test_patch_applies_case_insensitive_paths_and_returns_full_dto(
    api: httpx.Client, clock: ManualClock
) -> None:
    customer = _customer(api)
    clock.advance(1)
    ops = [
        {"op": "test", "path": "/name", "value": "Østby Bygg AS"},
        {"op": "replace", "path": "/EMAILADDRESS", "value": "ny@ostby.no"},
        {"op": "add", "path": "/phoneNumber", "value": "2222 5555"},
    ]
    patched = api.patch(f"/v2/Customers/{customer['Id']}", json=ops, headers=PATCH_TYPE)
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert list(body) == list(customer)
    assert body["EmailAddress"] == "ny@ostby.no" and body["PhoneNumber"] == "2222 5555"
    assert body["LastChangedDateTimeOffset"] > customer["LastChangedDateTimeOffset"]
    # a patch that changes nothing does not move LastChanged
    again = api.patch(
        f"/v2/Customers/{customer['Id']}",
        json=[{"op": "replace", "path": "/EmailAddress", "value": "ny@ostby.no"}],
        headers=PATCH_TYPE,
    )
    assert again.json()["LastChangedDateTimeOffset"] == body["LastChangedDateTimeOffset"]


def test_patch_failing_test_fails_whole_patch_with_400(api: httpx.Client) -> None:
    # The v2 OpenAPI lists no 409 for PATCH, only 400 ProblemDetails: the simulator's default.
    customer = _customer(api)
    ops = [
        {"op": "replace", "path": "/EmailAddress", "value": "changed@ostby.no"},
        {"op": "test", "path": "/Name", "value": "Someone Else AS"},
    ]
    response = api.patch(f"/v2/Customers/{customer['Id']}", json=ops, headers=PATCH_TYPE)
    assert response.status_code == 400
    assert response.json()["title"] == "Customer validation error(s)"
    assert "/Name" in response.json()["detail"]
    unchanged = api.get(f"/v2/Customers/{customer['Id']}").json()
    assert unchanged == customer


def test_patch_rejections(api: httpx.Client) -> None:
    customer = _customer(api)
    path = f"/v2/Customers/{customer['Id']}"
    op = [{"op": "replace", "path": "/Name", "value": "Nytt Navn AS"}]
    assert api.patch(path, json=op).status_code == 415  # application/json is refused
    for bad in (
        [{"op": "replace", "path": "/Id", "value": 1}],
        [{"op": "replace", "path": "/LastChangedDateTimeOffset", "value": "2020-01-01T00:00:00Z"}],
        [{"op": "replace", "path": "/IsActive", "value": False}],
        [{"op": "replace", "path": "/Nope", "value": 1}],
        [{"op": "jump", "path": "/Name", "value": 1}],
        [{"op": "replace", "path": "/Name", "value": None}],  # a company needs a Name
        [],
    ):
        response = api.patch(path, json=bad, headers=PATCH_TYPE)
        assert response.status_code == 400, bad
    address = api.patch(
        path,
        json=[{"op": "add", "path": "/mailAddress/city", "value": "Bergen"}],
        headers=PATCH_TYPE,
    )
    assert address.status_code == 200 and address.json()["MailAddress"]["City"] == "Bergen"


def test_patch_test_failure_status_can_be_409(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(
        limits=SimulatorLimits.lifted(patch_test_failure_status=409), clock=clock
    )
    created = sim.seed("employees", [{"FirstName": "Ola", "LastName": "N"}])[0]
    with pytest.raises(Exception) as info:
        sim.store.patch(
            "employees", created["Id"], [{"op": "test", "path": "/FirstName", "value": "Kari"}]
        )
    assert getattr(info.value, "status", None) == 409
    assert getattr(info.value, "title", None) == "Employee conflict"


def test_uniqueness_is_400_problem_details(api: httpx.Client) -> None:
    _customer(api, ExternalImportReference="ABC123")
    duplicate = api.post(
        "/v2/Customers", json={"Name": "Y AS", "ExternalImportReference": "abc123"}
    )
    assert duplicate.status_code == 400
    assert duplicate.json()["title"] == "Customer validation error(s)"
    assert "ExternalImportReference is already in use" in duplicate.json()["detail"]
    # per class: an employee may use the same reference
    employee = api.post(
        "/v2/Employees",
        json={"FirstName": "A", "LastName": "B", "ExternalImportReference": "ABC123"},
    )
    assert employee.status_code == 201
    dup_employee = api.post(
        "/v2/Employees",
        json={"FirstName": "C", "LastName": "D", "ExternalImportReference": "ABC123"},
    )
    assert dup_employee.status_code == 400
    other = _customer(api, Name="Z AS", ExternalImportReference="other")
    via_patch = api.patch(
        f"/v2/Customers/{other['Id']}",
        json=[{"op": "replace", "path": "/ExternalImportReference", "value": "ABC123"}],
        headers=PATCH_TYPE,
    )
    assert via_patch.status_code == 400
    parent = _customer(api, Name="P AS")
    first = api.post(
        f"/v2/ContactPersons/{parent['Id']}",
        json={"FirstName": "A", "LastName": "B", "ExternalCode": "link-1"},
    )
    assert first.status_code == 201
    dup_code = api.post(
        f"/v2/ContactPersons/{other['Id']}",
        json={"FirstName": "C", "LastName": "D", "ExternalCode": "link-1"},
    )
    assert dup_code.status_code == 400
    assert dup_code.json()["title"] == "Contact person validation error(s)"


# -- change stamps --------------------------------------------------------------------------------


def test_contact_person_and_address_changes_do_not_bump_parent(
    api: httpx.Client, clock: ManualClock
) -> None:
    customer = _customer(api, MailAddress={"City": "Oslo", "ZipCode": "0150"})
    clock.advance(1)
    person = api.post(
        f"/v2/ContactPersons/{customer['Id']}", json={"FirstName": "Ida", "LastName": "Lie"}
    ).json()
    clock.advance(1)
    patched = api.patch(
        f"/v2/ContactPersons/{customer['Id']}/{person['Id']}",
        json=[{"op": "replace", "path": "/LastName", "value": "Lie-Berg"}],
        headers=PATCH_TYPE,
    )
    assert patched.status_code == 200
    assert patched.json()["LastChangedDateTimeOffset"] > person["LastChangedDateTimeOffset"]
    after = api.get(f"/v2/Customers/{customer['Id']}").json()
    assert after["LastChangedDateTimeOffset"] == customer["LastChangedDateTimeOffset"]
    clock.advance(1)
    moved = api.patch(
        f"/v2/Customers/{customer['Id']}",
        json=[{"op": "replace", "path": "/MailAddress/City", "value": "Bergen"}],
        headers=PATCH_TYPE,
    ).json()
    assert moved["LastChangedDateTimeOffset"] == customer["LastChangedDateTimeOffset"]
    assert (
        moved["MailAddress"]["LastChangedDateTimeOffset"]
        > customer["MailAddress"]["LastChangedDateTimeOffset"]
    )
    archived = api.patch(
        f"/v2/Customers/{customer['Id']}",
        json=[{"op": "replace", "path": "/IsArchived", "value": True}],
        headers=PATCH_TYPE,
    ).json()
    assert archived["LastChangedDateTimeOffset"] > customer["LastChangedDateTimeOffset"]


def test_stamps_strictly_increase_under_a_frozen_clock(sim: PowerOfficeSimulator) -> None:
    records = sim.seed("employees", [{"FirstName": f"P{i}", "LastName": "X"} for i in range(5)])
    stamps = [r["LastChangedDateTimeOffset"] for r in records]
    assert stamps == sorted(set(stamps))
    # equal stamps exist only when a test seeds them on purpose
    same = "2024-05-01T10:00:00.1234560Z"
    twins = sim.seed(
        "employees",
        [
            {"FirstName": "T", "LastName": str(i), "LastChangedDateTimeOffset": same}
            for i in range(2)
        ],
    )
    assert {t["LastChangedDateTimeOffset"] for t in twins} == {same}


# -- contact person routes and deletes ------------------------------------------------------------


def test_contact_person_routes(api: httpx.Client) -> None:
    customer = _customer(api)
    person = api.post(
        f"/v2/ContactPersons/{customer['Id']}", json={"FirstName": "A", "LastName": "B"}
    ).json()
    assert api.get(f"/v2/ContactPersons/{customer['Id']}/{person['Id']}").status_code == 200
    assert api.get(f"/v2/ContactPersons/{customer['Id'] + 1}/{person['Id']}").status_code == 404
    assert api.get(f"/v2/ContactPersons/{person['Id']}").status_code == 404
    unknown_parent = api.post("/v2/ContactPersons/999999", json={"FirstName": "A", "LastName": "B"})
    assert unknown_parent.status_code == 404
    private = api.post(
        "/v2/Customers", json={"IsPerson": True, "FirstName": "Eli", "LastName": "Røed"}
    ).json()
    refused = api.post(
        f"/v2/ContactPersons/{private['Id']}", json={"FirstName": "A", "LastName": "B"}
    )
    assert refused.status_code == 400


def test_delete_200_404_409_and_cascade(sim: PowerOfficeSimulator, api: httpx.Client) -> None:
    customer = _customer(api)
    person = api.post(
        f"/v2/ContactPersons/{customer['Id']}", json={"FirstName": "A", "LastName": "B"}
    ).json()
    sim.store.set_in_use("customers", customer["Id"], True)
    in_use = api.delete(f"/v2/Customers/{customer['Id']}")
    assert in_use.status_code == 409
    assert in_use.json()["title"] == "Customer conflict"
    assert "is in use and cannot be deleted" in in_use.json()["detail"]
    sim.store.set_in_use("customers", customer["Id"], False)
    deleted = api.delete(f"/v2/Customers/{customer['Id']}")
    assert deleted.status_code == 200 and deleted.content == b""
    assert api.get(f"/v2/Customers/{customer['Id']}").status_code == 404
    assert api.delete(f"/v2/Customers/{customer['Id']}").status_code == 404
    assert api.get(f"/v2/ContactPersons/{customer['Id']}/{person['Id']}").status_code == 404
    # a contact that is both customer and employee cannot lose its customer role by DELETE
    shared = sim.seed("customers", [{"Name": "Delt AS"}])[0]
    sim.seed("employees", [{"Id": shared["Id"], "FirstName": "D", "LastName": "E"}])
    assert api.delete(f"/v2/Customers/{shared['Id']}").status_code == 409
    assert api.get(f"/v2/Employees/{shared['Id']}").status_code == 200


# -- rate limit -----------------------------------------------------------------------------------


def test_429_body_and_retry_after_at_10_per_second() -> None:
    sim = PowerOfficeSimulator()  # real limits
    with sim.serve() as server, httpx.Client(base_url=server.url) as http:
        token = _token(http)  # the token call counts too
        auth = {
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": CREDS.subscription_key,
        }
        statuses = [http.get("/v2/Customers", headers=auth).status_code for _ in range(10)]
        assert statuses[:9] == [204] * 9
        assert statuses[9] == 429
        limited = http.get("/v2/Customers", headers=auth)
        assert limited.status_code == 429
        body = limited.json()
        assert body["statusCode"] == "429"
        assert re.fullmatch(r"Rate limit is exceeded\. Try again in \d+ seconds\.", body["message"])
        assert limited.headers["Retry-After"].isdigit()
        assert sim.counters_json()["rate_limited"] == 2
        time.sleep(1.05)
        assert http.get("/v2/Customers", headers=auth).status_code == 204


# -- admin API ------------------------------------------------------------------------------------


def test_admin_api(sim: PowerOfficeSimulator, server: ServerThread, api: httpx.Client) -> None:
    with PowerOfficeSimulatorAdmin(server.url) as admin:
        assert admin.health()
        seeded = admin.seed("customers", [{"Name": "Admin AS", "Number": 20000}])
        assert seeded[0]["Number"] == 20000 and TS_RE.match(seeded[0]["LastChangedDateTimeOffset"])
        cid = seeded[0]["Id"]
        edited = admin.edit("customers", cid, {"EmailAddress": "ui@admin.no", "IsActive": False})
        assert edited["IsActive"] is False
        assert edited["LastChangedDateTimeOffset"] > seeded[0]["LastChangedDateTimeOffset"]
        admin.set_in_use("customers", cid)
        assert api.delete(f"/v2/Customers/{cid}").status_code == 409
        admin.delete("customers", cid)  # the admin delete is a hard delete, even when in use
        assert api.get(f"/v2/Customers/{cid}").status_code == 404
        views = admin.records("customers")
        assert views[0]["deleted"] is True and views[0]["record"]["Id"] == cid
        admin.delete("customers", cid, purge=True)
        assert admin.records("customers") == []
        admin.add_fault(FaultRule(kind="status", status=503, path="/v2/Employees", times=1))
        admin.add_fault({"kind": "latency", "seconds": 0.0, "path": "nothing-matches"})
        assert len(admin.faults()["rules"]) == 2
        assert api.get("/v2/Employees").status_code == 503
        assert api.get("/v2/Employees").status_code == 204
        counters = admin.counters()
        assert {"method": "GET", "resource": "employees", "status": 503, "count": 1} in counters[
            "requests"
        ]
        assert counters["faults_injected"] == {"status": 1}
        admin.clear_faults()
        assert admin.faults()["rules"] == []
        admin.reset_counters()
        assert admin.counters()["total"] == 0
        admin.expire_tokens()
        assert api.get("/v2/Employees").status_code == 401
        before = sim.now()
        admin.advance_clock(60)
        assert sim.now() - before >= timedelta(seconds=60)
        with pytest.raises(httpx.HTTPStatusError):
            admin.add_fault({"kind": "explode"})
        admin.reset()
        assert admin.records("employees") == []


def test_seed_accepts_generated_demo_data(sim: PowerOfficeSimulator) -> None:
    from services.connectors import seed

    data = seed.generate(60, 3)
    employees = sim.seed("employees", data.employees)
    customers = sim.seed("customers", data.customers)
    persons = [
        {**person, "ContactId": customers[parent]["Id"]} for parent, person in data.contact_persons
    ]
    created = sim.seed("contactpersons", persons)
    assert len(employees) == len(data.employees) and len(created) == len(persons)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_main_runs_as_its_own_process() -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.connectors.poweroffice.simulator",
            "--port",
            str(port),
            "--lift-limits",
            "--subscription-key",
            "proc-key",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with PowerOfficeSimulatorAdmin(f"http://127.0.0.1:{port}") as admin:
                    assert admin.health()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "simulator process did not start"
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.1)
        key = {"Ocp-Apim-Subscription-Key": "proc-key"}
        response = httpx.get(f"http://127.0.0.1:{port}/v2/Customers", headers=key)
        assert response.status_code == 401  # subscription accepted, bearer missing
    finally:
        proc.terminate()
        proc.wait(timeout=10)
