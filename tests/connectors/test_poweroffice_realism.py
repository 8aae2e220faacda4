"""The PowerOffice client against a less convenient API: the simulator's realism options.

Over real HTTP on loopback: reads that lag the writes (a read replica), a failed ``test`` that
answers 400 (the v2 OpenAPI documents no 409 for PATCH), a server that clamps the page size and
short-lived tokens. The simulator's clock is a ``ManualClock``; the client's back-off ``sleep``
advances it, so "time passes" without the test sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.client import GuardFailedError, PowerOfficeClient
from services.connectors.poweroffice.simulator import (
    Credentials,
    ManualClock,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import FaultRule, ServerThread
from services.core.budget import ApiBudget
from services.core.errors import ConflictError, ValidationError
from services.core.tokens import renew_at, renewal_margin

CREDS = Credentials()


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_for(
    sim: PowerOfficeSimulator, server: ServerThread, sim_clock: ManualClock, **kwargs: Any
) -> PowerOfficeClient:
    options: dict[str, Any] = {
        "application_key": SecretStr(CREDS.application_key),
        "client_key": SecretStr(CREDS.client_key),
        "subscription_key": SecretStr(CREDS.subscription_key),
        "budget": ApiBudget("poweroffice-test", 0),
        "base_url": sim.base_url(server),
        "token_url": sim.token_url(server),
        "timeout": 5.0,
        "sleep": sim_clock.advance,  # back-off waits are simulated time
    }
    options.update(kwargs)
    return PowerOfficeClient(**options)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def lagging(clock: ManualClock) -> Iterator[tuple[PowerOfficeSimulator, ServerThread]]:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(read_lag_seconds=1.0), clock=clock)
    with sim.serve() as server:
        yield sim, server


def _api(sim: PowerOfficeSimulator, server: ServerThread) -> httpx.Client:
    token = httpx.post(
        sim.token_url(server),
        auth=(CREDS.application_key, CREDS.client_key),
        headers={"Ocp-Apim-Subscription-Key": CREDS.subscription_key},
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    return httpx.Client(
        base_url=server.url,
        headers={
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": CREDS.subscription_key,
        },
    )


# -- the simulator's options -------------------------------------------------------------------


def test_reads_lag_writes_but_patch_tests_see_the_primary(
    lagging: tuple[PowerOfficeSimulator, ServerThread], clock: ManualClock
) -> None:
    sim, server = lagging
    seeded = sim.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])[0]
    with _api(sim, server) as api:
        path = f"/v2/Employees/{seeded['Id']}"
        assert api.get(path).json()["FirstName"] == "Ola"  # seeded: readable at once
        sim.edit("employees", seeded["Id"], {"FirstName": "Per"})
        created = api.post("/v2/Employees", json={"FirstName": "Kari", "LastName": "Lie"})
        assert created.status_code == 201
        new_id = created.json()["Id"]
        # The replica has neither the edit nor the new record yet ...
        assert api.get(path).json()["FirstName"] == "Ola"
        assert api.get(f"/v2/Employees/{new_id}").status_code == 404
        listed = api.get("/v2/Employees").json()
        assert [e["FirstName"] for e in listed] == ["Ola"]
        # ... but a PATCH's test is evaluated on the primary: a 400 ProblemDetails by default.
        refused = api.patch(
            path,
            json=[
                {"op": "test", "path": "/FirstName", "value": "Ola"},
                {"op": "replace", "path": "/FirstName", "value": "Ole"},
            ],
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "test" in refused.json()["detail"]
        # One second later the replica caught up.
        clock.advance(1.0)
        assert api.get(path).json()["FirstName"] == "Per"
        assert api.get(f"/v2/Employees/{new_id}").json()["FirstName"] == "Kari"
        assert len(api.get("/v2/Employees").json()) == 2
        # A delete lags too.
        assert api.delete(f"/v2/Employees/{new_id}").status_code == 200
        assert api.get(f"/v2/Employees/{new_id}").status_code == 200
        clock.advance(1.0)
        assert api.get(f"/v2/Employees/{new_id}").status_code == 404


def test_read_lag_is_off_by_default_and_settable_at_run_time(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(), clock=clock)
    assert sim.realism()["read_lag_seconds"] == 0.0
    assert sim.realism()["patch_test_failure_status"] == 400
    with sim.serve() as server, _api(sim, server) as api:
        made = api.post("/v2/Customers", json={"Name": "A AS"}).json()
        assert api.get(f"/v2/Customers/{made['Id']}").status_code == 200
        assert httpx.post(server.url + "/_admin/realism", json={"read_lag_seconds": 2}).json() == {
            **sim.realism(),
            "read_lag_seconds": 2.0,
        }
        other = api.post("/v2/Customers", json={"Name": "B AS"}).json()
        assert api.get(f"/v2/Customers/{other['Id']}").status_code == 404
        sim.reset()
        assert sim.realism()["read_lag_seconds"] == 0.0


def test_page_size_clamp(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(page_size_clamp=7), clock=clock)
    sim.seed("employees", [{"FirstName": f"P{i}", "LastName": "X"} for i in range(10)])
    with sim.serve() as server, _api(sim, server) as api:
        page = api.get("/v2/Employees", params={"PageSize": 100, "PageNumber": 1})
        assert len(page.json()) == 7
        second = api.get("/v2/Employees", params={"PageSize": 100, "PageNumber": 2})
        assert len(second.json()) == 3


# -- the client: guarded patches against lagging reads ----------------------------------------


@pytest.mark.parametrize("status", [400, 409])
def test_guard_refused_while_reads_lag_is_a_conflict_with_the_fresh_record(
    clock: ManualClock, status: int
) -> None:
    sim = PowerOfficeSimulator(
        limits=SimulatorLimits.lifted(read_lag_seconds=1.0, patch_test_failure_status=status),
        clock=clock,
    )
    with sim.serve() as server, client_for(sim, server, clock) as po:
        record = sim.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])[0]
        sim.edit("employees", record["Id"], {"FirstName": "Per"})  # not yet readable
        with pytest.raises(GuardFailedError) as info:
            po.resource("employees").update(
                record["Id"], {"FirstName": "Ole"}, expected={"FirstName": "Ola"}
            )
        error = info.value
        assert isinstance(error, ConflictError) and error.error_code == "test_failed"
        assert error.status == status
        assert error.data["properties"] == ["FirstName"]
        assert error.current is not None and error.current["FirstName"] == "Per"
        assert not error.retriable
        # our value was never written
        assert sim.store.admin_get("employees", record["Id"])["record"]["FirstName"] == "Per"
        # it took more than one read: the first re-read still showed the old state
        assert sim.count(method="GET", resource="employees", status=200) >= 2


def test_guard_refused_and_reads_never_catch_up_stays_a_conflict(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(
        limits=SimulatorLimits.lifted(read_lag_seconds=3600.0, patch_test_failure_status=409),
        clock=clock,
    )
    with sim.serve() as server, client_for(sim, server, clock) as po:
        record = sim.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])[0]
        sim.edit("employees", record["Id"], {"FirstName": "Per"})
        with pytest.raises(GuardFailedError) as info:
            po.resource("employees").update(
                record["Id"], {"FirstName": "Ole"}, expected={"FirstName": "Ola"}
            )
        # Bounded: the last (stale) read is carried, and it is flagged unconfirmed.
        assert info.value.error_code == "test_failed"
        assert info.value.data["unconfirmed"] is True
        assert info.value.current is not None and info.value.current["FirstName"] == "Ola"
        reads = sim.count(method="GET", resource="employees")
        assert reads == po.retry.max_guard_reads


def test_a_400_that_is_not_a_guard_failure_is_still_a_validation_error(
    clock: ManualClock,
) -> None:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(read_lag_seconds=1.0), clock=clock)
    with sim.serve() as server, client_for(sim, server, clock) as po:
        record = sim.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])[0]
        with pytest.raises(ValidationError) as info:
            po.resource("employees").update(
                record["Id"], {"EmailAddress": "not-an-address"}, expected={"EmailAddress": None}
            )
        assert not isinstance(info.value, ConflictError)
        # one refused patch and one test-only probe, which passed: nothing re-read in a loop
        assert sim.count(method="PATCH", resource="employees", status=400) == 1
        assert sim.count(method="PATCH", resource="employees", status=200) == 1
        assert sim.count(method="GET", resource="employees") <= 1


def test_guarded_update_succeeds_after_a_retried_patch_whose_first_attempt_landed(
    lagging: tuple[PowerOfficeSimulator, ServerThread], clock: ManualClock
) -> None:
    sim, server = lagging
    with client_for(sim, server, clock) as po:
        record = sim.seed("employees", [{"FirstName": "Ola", "LastName": "Nordmann"}])[0]
        # Our own earlier write landed (its response was lost): the desired value is there.
        sim.edit("employees", record["Id"], {"FirstName": "Ole"})
        same = (
            po.resource("employees")
            .update(record["Id"], {"FirstName": "Ole"}, expected={"FirstName": "Ola"})
            .record
        )
        assert same.first_name == "Ole"


# -- paging ------------------------------------------------------------------------------------


def test_paging_continues_past_a_short_page_when_the_server_clamps(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(page_size_clamp=7), clock=clock)
    sim.seed("employees", [{"FirstName": f"P{i}", "LastName": "X"} for i in range(20)])
    with sim.serve() as server, client_for(sim, server, clock) as po:
        assert len(list(po.resource("employees").list(page_size=10))) == 20
        assert len(list(po.resource("employees").list_wire(page_size=10))) == 20
        first = sim.store.live("employees")[0]["LastChangedDateTimeOffset"]
        changed = list(po.resource("employees").list_wire(changed_since=first, page_size=10))
        assert len(changed) == 19
        assert len({r["Id"] for r in changed}) == 19


# -- tokens ------------------------------------------------------------------------------------


def test_renewal_margin_is_a_fraction_of_the_lifetime_with_a_cap() -> None:
    assert renewal_margin(10) == pytest.approx(1.0)
    assert renewal_margin(1200) == 60.0
    assert renewal_margin(14400, cap=300) == 300.0
    assert renew_at(100.0, 10.0) == pytest.approx(109.0)
    with pytest.raises(ValueError):
        renewal_margin(10, fraction=1.0)


def test_a_short_lived_token_is_not_renewed_before_every_call(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(
        limits=SimulatorLimits.lifted(token_lifetime_seconds=30), clock=clock
    )
    mono = FakeMonotonic()
    with sim.serve() as server, client_for(sim, server, clock, clock=mono) as po:
        for _ in range(10):
            list(po.resource("employees").list())
            mono.now += 2.0
            clock.advance(2.0)
        # 20 s of a 30 s token: one token for ten calls
        assert po.tokens_fetched == 1
        assert sim.tokens_issued == 1
        mono.now += 7.5  # 27.5 s: inside the last 10 % -> renewed before it expires
        clock.advance(7.5)
        list(po.resource("employees").list())
        assert po.tokens_fetched == 2
        assert sim.count(status=401) == 0


def test_turning_the_read_lag_off_and_on_again_shows_no_stale_history(clock: ManualClock) -> None:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted(read_lag_seconds=1.0), clock=clock)
    record = sim.seed("employees", [{"FirstName": "Ola", "LastName": "N"}])[0]
    sim.edit("employees", record["Id"], {"FirstName": "Per"})
    sim.set_read_lag(0)
    sim.edit("employees", record["Id"], {"FirstName": "Kari"})  # not recorded: no lag
    sim.set_read_lag(1.0)
    assert sim.store.get("employees", record["Id"])["FirstName"] == "Kari"
    with pytest.raises(ValueError):
        sim.set_read_lag(-1)


def test_a_create_whose_response_was_lost_is_found_again_while_reads_lag(
    lagging: tuple[PowerOfficeSimulator, ServerThread], clock: ManualClock
) -> None:
    # The first POST is applied but its response lost; the lookup before the second POST misses
    # (the new record is not readable yet); the second POST is refused (reference in use). The
    # lookup after that refusal must wait for the replica, not give up with the 400.
    sim, server = lagging
    sim.add_fault(
        FaultRule(kind="lose_response", path=r"/v2/Customers$", method="POST", status=502, times=1)
    )
    with client_for(sim, server, clock) as po:
        result = po.resource("customers").create({"Name": "Treg AS"}, reference="tether-link-7")
    assert result.record.name == "Treg AS"
    live = [r for r in sim.store.admin_list("customers") if not r["deleted"]]
    assert len(live) == 1 and live[0]["record"]["Id"] == result.record.id
    assert sim.count(method="POST", resource="customers", status=400) == 1


def test_a_create_refused_for_its_values_is_not_waited_on(
    lagging: tuple[PowerOfficeSimulator, ServerThread], clock: ManualClock
) -> None:
    sim, server = lagging
    with client_for(sim, server, clock) as po, pytest.raises(ValidationError):
        po.resource("customers").create(
            {"Name": "X AS", "EmailAddress": "nope"}, reference="tether-link-8"
        )
    # one lookup before the POST, one after its 400: no waiting loop for a validation error
    assert sim.count(method="GET", resource="customers") == 2
