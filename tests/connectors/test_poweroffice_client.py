"""PowerOfficeClient against the simulator over real HTTP on loopback: every operation."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.client import (
    PowerOfficeClient,
    RetryPolicy,
    build_patch,
    scrub,
)
from services.connectors.poweroffice.models import (
    ContactPerson,
    Customer,
    Employee,
    format_timestamp,
)
from services.connectors.poweroffice.simulator import (
    Credentials,
    ManualClock,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import ServerThread
from services.core.budget import ApiBudget
from services.core.errors import (
    AuthenticationError,
    ConflictError,
    ContractError,
    NotFoundError,
    ValidationError,
)

CREDS = Credentials()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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


def make_client(
    sim: PowerOfficeSimulator, server: ServerThread, **kwargs: Any
) -> PowerOfficeClient:
    options: dict[str, Any] = {
        "application_key": SecretStr(CREDS.application_key),
        "client_key": SecretStr(CREDS.client_key),
        "subscription_key": SecretStr(CREDS.subscription_key),
        "budget": ApiBudget("poweroffice-test", 0),
        "base_url": sim.base_url(server),
        "token_url": sim.token_url(server),
        "timeout": 5.0,
    }
    options.update(kwargs)
    return PowerOfficeClient(**options)


@pytest.fixture
def calls() -> list[tuple[str, str, int, float]]:
    return []


@pytest.fixture
def client(
    sim: PowerOfficeSimulator,
    running: tuple[PowerOfficeSimulator, ServerThread],
    calls: list[tuple[str, str, int, float]],
) -> Iterator[PowerOfficeClient]:
    def observe(system: str, operation: str, status: int, seconds: float) -> None:
        calls.append((system, operation, status, seconds))

    with make_client(sim, running[1], on_request=observe) as po:
        yield po


# -- reads ----------------------------------------------------------------------------------------


def test_iterates_all_pages_typed(sim: PowerOfficeSimulator, client: PowerOfficeClient) -> None:
    sim.seed("employees", [{"FirstName": f"P{i}", "LastName": "X"} for i in range(7)])
    employees = list(client.resource("employees").list(page_size=3))
    assert [e.first_name for e in employees] == [f"P{i}" for i in range(7)]
    assert all(isinstance(e, Employee) for e in employees)
    # 7 records at 3 per page: pages 1, 2 full, page 3 short, page 4 empty (204) -> 4 list
    # calls: a short page does not end the scan (a server may clamp PageSize)
    assert sim.count(method="GET", resource="employees") == 4
    assert sim.count(method="GET", resource="employees", status=204) == 1
    sim.seed(
        "employees", [{"FirstName": "P7", "LastName": "X"}, {"FirstName": "P8", "LastName": "X"}]
    )
    sim.reset_counters()
    assert len(list(client.resource("employees").list(page_size=3))) == 9
    # exact multiple: the 4th page is 204
    assert sim.count(method="GET", resource="employees", status=204) == 1


def test_empty_lists_and_projection(sim: PowerOfficeSimulator, client: PowerOfficeClient) -> None:
    assert list(client.resource("customers").list()) == []
    assert list(client.resource("contactpersons").list()) == []
    sim.seed("customers", [{"Name": "Østby Bygg AS", "EmailAddress": "post@ostby.no"}])
    projected = list(client.resource("customers").list(fields=["Name"]))
    assert projected[0].name == "Østby Bygg AS" and projected[0].id > 0
    assert projected[0].email_address is None
    raw = list(client.resource("customers").list_wire(fields=["EmailAddress"]))
    assert set(raw[0]) == {"Id", "EmailAddress"}


def test_incremental_reads_are_exclusive(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, clock: ManualClock
) -> None:
    first = client.resource("customers").create({"Name": "A AS"}, reference="a").record
    clock.advance(1)
    second = client.resource("customers").create({"Name": "B AS"}, reference="b").record
    assert first.last_changed_date_time_offset is not None
    changed = list(
        client.resource("customers").list(changed_since=first.last_changed_date_time_offset)
    )
    assert [c.id for c in changed] == [second.id]
    raw_cursor = format_timestamp(first.last_changed_date_time_offset)
    assert [c.id for c in client.resource("customers").list(changed_since=raw_cursor)] == [
        second.id
    ]
    clock.advance(1)
    client.resource("customers").update(first.id, {"Name": "A2 AS"})
    assert second.last_changed_date_time_offset is not None
    again = list(
        client.resource("customers").list(changed_since=second.last_changed_date_time_offset)
    )
    assert [c.name for c in again] == ["A2 AS"]


def test_incremental_paging_with_equal_timestamps_misses_nothing(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    same = "2024-05-01T10:00:00.1234560Z"
    later = "2024-05-01T10:00:01.0000000Z"
    rows = [
        {"FirstName": f"S{i}", "LastName": "X", "LastChangedDateTimeOffset": same} for i in range(7)
    ]
    rows += [
        {"FirstName": f"L{i}", "LastName": "X", "LastChangedDateTimeOffset": later}
        for i in range(3)
    ]
    sim.seed("employees", rows)
    got = [
        e.first_name
        for e in client.resource("employees").list(
            changed_since="2024-01-01T00:00:00Z", page_size=3
        )
    ]
    assert sorted(got) == sorted(r["FirstName"] for r in rows)
    assert len(got) == len(set(got)) == 10


def test_incremental_paging_survives_edits_during_the_scan(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, clock: ManualClock
) -> None:
    records = []
    for i in range(6):
        clock.advance(1)
        records.extend(sim.seed("customers", [{"Name": f"C{i} AS"}]))
    seen = []
    iterator = client.resource("customers").list(changed_since="2000-01-01T00:00:00Z", page_size=2)
    for customer in iterator:
        seen.append(customer.name)
        if len(seen) == 2:
            # the first record changes while we read: PageNumber paging would now skip C2
            clock.advance(1)
            sim.edit("customers", records[0]["Id"], {"Name": "C0 edited AS"})
    assert {f"C{i} AS" for i in range(6)} <= set(seen)
    assert "C0 edited AS" in seen


def test_get_and_not_found(sim: PowerOfficeSimulator, client: PowerOfficeClient) -> None:
    created = sim.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])[0]
    assert client.resource("employees").get(created["Id"]).last_name == "Nordmann"
    with pytest.raises(NotFoundError) as info:
        client.resource("customers").get(424242)
    assert info.value.status == 404 and info.value.system == "poweroffice"
    assert info.value.error_code == "Object(s) not found"


def test_malformed_record_is_a_contract_error(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    sim.store.seed(
        "employees",
        [{"FirstName": {"secret": "ola@example.com"}, "LastName": "X", "DateOfBirth": "yesterday"}],
        validate=False,
    )
    with pytest.raises(ContractError) as info:
        list(client.resource("employees").list())
    message = str(info.value)
    assert "Employee" in message and "FirstName" in message and "DateOfBirth" in message
    assert "ola@example.com" not in message and "yesterday" not in message


# -- creates --------------------------------------------------------------------------------------


def test_create_each_resource_and_find_again_by_reference(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    employee = client.resource("employees").create(
        {"FirstName": "Ola", "LastName": "Nordmann"}, reference="link-e1"
    )
    assert employee.created and employee.record.external_import_reference == "link-e1"
    customer = client.resource("customers").create(
        {"IsPerson": True, "FirstName": "Eli", "LastName": "Røed"}, reference="link-c1"
    )
    assert customer.created and isinstance(customer.record, Customer)
    company = client.resource("customers").create({"Name": "Fjord Energi ASA"}, reference="link-c2")
    person = client.resource("contactpersons").create(
        {"FirstName": "Kari", "LastName": "Lie"}, reference="link-p1", parent_id=company.record.id
    )
    assert person.created and isinstance(person.record, ContactPerson)
    assert person.record.contact_id == company.record.id
    sim.reset_counters()
    again = client.resource("employees").create(
        {"FirstName": "Ola", "LastName": "Nordmann"}, reference="link-e1"
    )
    assert not again.created and again.record.id == employee.record.id
    again_person = client.resource("contactpersons").create(
        {"FirstName": "Kari", "LastName": "Lie"}, reference="LINK-P1", parent_id=company.record.id
    )
    assert not again_person.created and again_person.record.id == person.record.id
    assert sim.count(method="POST", resource="employees") == 0
    assert sim.count(method="POST", resource="contactpersons") == 0
    assert client.resource("customers").find_by_reference("link-c2") is not None
    assert client.resource("customers").find_by_reference("nope") is None
    assert (
        client.resource("contactpersons").find_by_reference("link-p1", parent_id=company.record.id)
        is not None
    )
    assert (
        client.resource("contactpersons").find_by_reference("link-p1", parent_id=customer.record.id)
        is None
    )
    assert client.resource("employees").find_by_reference("link-e1") is not None


def test_create_validation_errors_are_not_retried(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    with pytest.raises(ValidationError) as info:
        client.resource("employees").create({"FirstName": "Ola"}, reference="x1")
    assert info.value.status == 400 and not info.value.retriable
    assert info.value.error_code == "Employee validation error(s)"
    assert sim.count(method="POST", resource="employees") == 1
    with pytest.raises(ValueError):
        client.resource("customers").create({"Name": "A"}, reference="a,b")
    with pytest.raises(ValueError):
        client.resource("customers").create({"Name": "A"}, reference="x" * 51)
    with pytest.raises(ValueError):
        client.resource("customers").create(
            {"Name": "A", "ExternalImportReference": "other"}, reference="r"
        )


# -- updates --------------------------------------------------------------------------------------


def test_build_patch_puts_tests_first() -> None:
    ops = build_patch(
        {"FirstName": "Kari", "MailAddress": {"City": "Bergen"}}, {"FirstName": "Ola"}
    )
    assert ops == [
        {"op": "test", "path": "/FirstName", "value": "Ola"},
        {"op": "replace", "path": "/FirstName", "value": "Kari"},
        {"op": "replace", "path": "/MailAddress/City", "value": "Bergen"},
    ]
    assert build_patch({"a/b~c": 1}) == [{"op": "replace", "path": "/a~1b~0c", "value": 1}]


def test_guarded_update_and_conflict(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, clock: ManualClock
) -> None:
    created = (
        client.resource("employees")
        .create(
            {"FirstName": "Ola", "LastName": "Nordmann", "PhoneNumber": "+47 912 34 567"},
            reference="e",
        )
        .record
    )
    clock.advance(1)
    updated = (
        client.resource("employees")
        .update(
            created.id,
            {"PhoneNumber": "+47 400 00 000"},
            expected={"PhoneNumber": "+47 912 34 567"},
        )
        .record
    )
    assert updated.phone_number == "+47 400 00 000"
    assert updated.last_changed_date_time_offset != created.last_changed_date_time_offset
    # someone edits in the product; our guard (the old value) no longer holds
    sim.edit("employees", created.id, {"FirstName": "Olav"})
    with pytest.raises(ConflictError) as info:
        client.resource("employees").update(
            created.id, {"FirstName": "Ole"}, expected={"FirstName": "Ola"}
        )
    assert info.value.error_code == "test_failed"
    assert info.value.data["properties"] == ["FirstName"]
    assert client.resource("employees").get(created.id).first_name == "Olav"
    # the desired state already holds: no error, nothing written
    same = (
        client.resource("employees")
        .update(created.id, {"FirstName": "Olav"}, expected={"FirstName": "Ola"})
        .record
    )
    assert same.first_name == "Olav"


def test_guarded_update_when_test_failure_is_a_400(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(
        limits=SimulatorLimits.lifted(patch_test_failure_status=400), clock=clock
    )
    with sim.serve() as server, make_client(sim, server) as po:
        person_parent = sim.seed("customers", [{"Name": "Parent AS"}])[0]
        created = (
            po.resource("contactpersons")
            .create(
                {"FirstName": "Ida", "LastName": "Lie"},
                reference="p",
                parent_id=person_parent["Id"],
            )
            .record
        )
        sim.edit("contactpersons", created.id, {"LastName": "Berg"})
        with pytest.raises(ConflictError) as info:
            po.resource("contactpersons").update(
                created.id,
                {"LastName": "Lie-Berg"},
                expected={"LastName": "Lie"},
                parent_id=person_parent["Id"],
            )
        assert info.value.status == 400 and info.value.error_code == "test_failed"
        ok = (
            po.resource("contactpersons")
            .update(
                created.id,
                {"LastName": "Lie-Berg"},
                expected={"LastName": "Berg"},
                parent_id=person_parent["Id"],
            )
            .record
        )
        assert ok.last_name == "Lie-Berg"
        with pytest.raises(ValidationError):
            po.resource("contactpersons").update(
                created.id, {"FirstName": None}, parent_id=person_parent["Id"]
            )


def test_update_customer_address(sim: PowerOfficeSimulator, client: PowerOfficeClient) -> None:
    customer = client.resource("customers").create({"Name": "Adr AS"}, reference="adr").record
    moved = (
        client.resource("customers")
        .update(
            customer.id,
            {"MailAddress": {"City": "Bergen", "ZipCode": "5003"}},
            expected={"MailAddress": {"City": None}},
        )
        .record
    )
    assert moved.mail_address is not None and moved.mail_address.city == "Bergen"


# -- deletes --------------------------------------------------------------------------------------


def test_deletes(sim: PowerOfficeSimulator, client: PowerOfficeClient) -> None:
    customer = client.resource("customers").create({"Name": "Del AS"}, reference="d").record
    person = (
        client.resource("contactpersons")
        .create({"FirstName": "A", "LastName": "B"}, reference="dp", parent_id=customer.id)
        .record
    )
    client.resource("contactpersons").delete(person.id, parent_id=customer.id)
    with pytest.raises(NotFoundError):
        client.resource("contactpersons").get(person.id, parent_id=customer.id)
    sim.store.set_in_use("customers", customer.id, True)
    with pytest.raises(ConflictError):
        client.resource("customers").delete(customer.id)
    sim.store.set_in_use("customers", customer.id, False)
    client.resource("customers").delete(customer.id)
    with pytest.raises(NotFoundError):
        client.resource("customers").delete(customer.id)  # a first-attempt 404 is an error
    employee = (
        client.resource("employees")
        .create({"FirstName": "A", "LastName": "B"}, reference="de")
        .record
    )
    client.resource("employees").delete(employee.id)
    assert list(client.resource("employees").list()) == []


# -- auth, observer, privacy ----------------------------------------------------------------------


def test_proactive_renewal_before_expiry(
    sim: PowerOfficeSimulator,
    running: tuple[PowerOfficeSimulator, ServerThread],
    clock: ManualClock,
) -> None:
    mono = FakeMonotonic()
    with make_client(sim, running[1], clock=mono) as po:
        list(po.resource("employees").list())
        assert po.tokens_fetched == 1
        mono.now += 1100
        clock.advance(1100)
        list(po.resource("employees").list())
        assert po.tokens_fetched == 1  # 100 s left: still good
        mono.now += 50  # 50 s left, inside the 60 s margin
        clock.advance(50)
        list(po.resource("employees").list())
        assert po.tokens_fetched == 2
    assert sim.count(status=401) == 0


def test_one_reauthentication_on_401(
    sim: PowerOfficeSimulator,
    running: tuple[PowerOfficeSimulator, ServerThread],
    clock: ManualClock,
) -> None:
    with make_client(sim, running[1], clock=FakeMonotonic()) as po:
        list(po.resource("customers").list())
        clock.advance(1300)  # the server expired the token; the client's clock did not move
        list(po.resource("customers").list())
        assert po.tokens_fetched == 2
        assert sim.count(resource="customers", status=401) == 1


def test_bad_credentials(
    sim: PowerOfficeSimulator, running: tuple[PowerOfficeSimulator, ServerThread]
) -> None:
    with make_client(sim, running[1], client_key=SecretStr("wrong-client-key-123")) as po:
        with pytest.raises(AuthenticationError) as info:
            po.resource("customers").get(1)
        assert info.value.error_code == "invalid_client" and info.value.status == 400
        assert "wrong-client-key-123" not in str(info.value)
        assert "wrong-client-key-123" not in repr(po)
    with make_client(
        sim, running[1], subscription_key=SecretStr("bad-sub"), retry=RetryPolicy()
    ) as po:
        with pytest.raises(AuthenticationError) as info:
            po.resource("customers").get(1)
        assert info.value.status == 401


def test_observer_and_budget_see_every_request(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, calls: list[tuple[str, str, int, float]]
) -> None:
    client.resource("customers").create({"Name": "Obs AS"}, reference="obs")
    operations = [(system, op, status) for system, op, status, _ in calls]
    assert operations == [
        ("poweroffice", "token", 200),
        ("poweroffice", "customers.list", 204),
        ("poweroffice", "customers.create", 201),
    ]
    assert all(seconds >= 0 for *_, seconds in calls)
    assert client.budget.acquired == 3


def test_no_secret_token_email_or_phone_in_logs_or_errors(
    sim: PowerOfficeSimulator,
    client: PowerOfficeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client.resource("customers").create(
        {"Name": "Priv AS", "EmailAddress": "kari@priv.no"}, reference="priv"
    )
    with pytest.raises(ValidationError) as info:
        client.resource("customers").create(
            {"Name": "Dup AS", "EmailAddress": "bad email", "PhoneNumber": "+47 912 34 567"},
            reference="priv2",
        )
    assert (
        len(list(client.resource("customers").list(params={"emailAddresses": "kari@priv.no"}))) == 1
    )
    # our own log lines (httpx's request lines are silenced by services.core.runtime)
    ours = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("services.connectors")
    )
    assert "customers.create" in ours  # DEBUG lines exist, so the check below means something
    text = ours + str(info.value) + repr(info.value.data)
    for secret in (
        CREDS.application_key,
        CREDS.client_key,
        CREDS.subscription_key,
        "kari@priv.no",
        "912 34 567",
    ):
        assert secret not in text
    assert "Bearer" not in text


def test_scrub_removes_personal_data() -> None:
    detail = (
        "ExternalImportReference is already in use. 'ABC123' is used on (contact) Id = 123456789."
        " Mail kari@example.com phone +47 912 34 567"
    )
    cleaned = scrub(detail)
    assert "ABC123" not in cleaned and "kari@example.com" not in cleaned
    assert "912 34 567" not in cleaned and "Id = 123456789" in cleaned
