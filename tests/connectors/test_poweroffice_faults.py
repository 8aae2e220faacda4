"""PowerOfficeClient under injected faults: what is retried, what is found again, what is not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.client import PowerOfficeClient, RetryPolicy, _retry_after
from services.connectors.poweroffice.simulator import (
    Credentials,
    PowerOfficeSimulator,
    SimulatorLimits,
)
from services.connectors.simkit import FaultRule, ServerThread
from services.core.budget import ApiBudget
from services.core.errors import RateLimitedError, ServerError, TransportError

CREDS = Credentials()
GATEWAY_429 = b'{"statusCode": "429", "message": "Rate limit is exceeded. Try again in 3 seconds."}'


class Sleeps:
    """Records the waits instead of sleeping (keeps the tests fast)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture(scope="module")
def running() -> Iterator[tuple[PowerOfficeSimulator, ServerThread]]:
    sim = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
    with sim.serve() as server:
        yield sim, server


@pytest.fixture
def sim(running: tuple[PowerOfficeSimulator, ServerThread]) -> PowerOfficeSimulator:
    running[0].reset()
    return running[0]


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(
    sim: PowerOfficeSimulator, server: ServerThread, sleeps: Sleeps, **kwargs: Any
) -> PowerOfficeClient:
    options: dict[str, Any] = {
        "application_key": SecretStr(CREDS.application_key),
        "client_key": SecretStr(CREDS.client_key),
        "subscription_key": SecretStr(CREDS.subscription_key),
        "budget": ApiBudget("poweroffice-faults", 0),
        "base_url": sim.base_url(server),
        "token_url": sim.token_url(server),
        "timeout": 2.0,
        "sleep": sleeps,
    }
    options.update(kwargs)
    return PowerOfficeClient(**options)


@pytest.fixture
def client(
    sim: PowerOfficeSimulator, running: tuple[PowerOfficeSimulator, ServerThread], sleeps: Sleeps
) -> Iterator[PowerOfficeClient]:
    with make_client(sim, running[1], sleeps) as po:
        list(po.resource("customers").list())  # fetch the token before any fault is armed
        sim.reset_counters()
        yield po


# -- idempotent reads -----------------------------------------------------------------------------


def test_get_retries_5xx_with_capped_jittered_backoff(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, sleeps: Sleeps
) -> None:
    sim.seed("customers", [{"Name": "A AS"}])
    sim.add_fault(FaultRule(kind="status", status=503, path="/v2/Customers", method="GET", times=2))
    assert [c.name for c in client.resource("customers").list()] == ["A AS"]
    # two 503s, the page, then the empty page (204) that ends the scan
    assert sim.count(method="GET", resource="customers") == 4
    assert len(sleeps.waits) == 2
    assert all(0 <= w <= client.retry.max_backoff for w in sleeps.waits)


def test_get_gives_up_after_max_attempts(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, sleeps: Sleeps
) -> None:
    sim.add_fault(FaultRule(kind="status", status=502, path="/v2/Customers", method="GET"))
    with pytest.raises(ServerError) as info:
        list(client.resource("customers").list())
    assert info.value.retriable and info.value.status == 502
    assert sim.count(method="GET", resource="customers", status=502) == client.retry.max_attempts


def test_get_retries_dropped_connection(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    created = sim.seed("employees", [{"FirstName": "Ola", "LastName": "N"}])[0]
    sim.add_fault(FaultRule(kind="drop", path="/v2/Employees/", method="GET", times=1))
    assert client.resource("employees").get(created["Id"]).first_name == "Ola"
    assert sim.faults.injected["drop"] == 1


def test_get_retries_timeout(
    sim: PowerOfficeSimulator, running: tuple[PowerOfficeSimulator, ServerThread], sleeps: Sleeps
) -> None:
    created = sim.seed("employees", [{"FirstName": "Ola", "LastName": "N"}])[0]
    policy = RetryPolicy(max_attempts=2)
    with make_client(sim, running[1], sleeps, timeout=1.0, retry=policy) as po:
        list(po.resource("employees").list())
        sim.add_fault(FaultRule(kind="timeout", seconds=2.5, path="/v2/Employees/", times=1))
        assert po.resource("employees").get(created["Id"]).first_name == "Ola"
        assert sim.faults.injected["timeout"] == 1
        sim.add_fault(FaultRule(kind="timeout", seconds=2.5, path="/v2/Employees/", times=2))
        with pytest.raises(TransportError) as info:
            po.resource("employees").get(created["Id"])
        assert info.value.retriable
        assert sim.faults.injected["timeout"] == 3


# -- creates --------------------------------------------------------------------------------------


def _posts(sim: PowerOfficeSimulator, resource: str) -> int:
    return sim.count(method="POST", resource=resource)


def test_create_with_lost_response_is_found_again_not_reposted(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    sim.add_fault(
        FaultRule(kind="lose_response", status=504, path="/v2/Customers", method="POST", times=1)
    )
    result = client.resource("customers").create({"Name": "Once AS"}, reference="link-1")
    assert result.created and result.record.name == "Once AS"
    assert _posts(sim, "customers") == 1
    assert len(sim.store.live("customers")) == 1


def test_create_with_dropped_connection_after_commit_is_found_again(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    parent = sim.seed("customers", [{"Name": "Parent AS"}])[0]
    sim.add_fault(
        FaultRule(kind="lose_response", status=0, path="/v2/ContactPersons", method="POST", times=1)
    )
    result = client.resource("contactpersons").create(
        {"FirstName": "Ida", "LastName": "Lie"}, reference="link-cp", parent_id=parent["Id"]
    )
    assert result.created and result.record.external_code == "link-cp"
    assert _posts(sim, "contactpersons") == 1
    assert len(sim.store.live("contactpersons")) == 1


def test_create_refused_before_the_api_is_posted_again_after_a_lookup(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    sim.add_fault(
        FaultRule(kind="status", status=503, path="/v2/Employees", method="POST", times=1)
    )
    result = client.resource("employees").create(
        {"FirstName": "Ola", "LastName": "N"}, reference="link-e"
    )
    assert result.created
    assert _posts(sim, "employees") == 2
    # lookups: one before the first POST, one after the unknown outcome
    assert sim.count(method="GET", resource="employees") == 2
    assert len(sim.store.live("employees")) == 1


def test_create_racing_a_duplicate_links_the_existing_record(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    existing = sim.seed("customers", [{"Name": "Raced AS", "ExternalImportReference": "link-r"}])[0]
    # the first lookup misses (as if the other writer committed just after it): the POST then
    # hits the uniqueness rule and the client links the record that holds the reference
    sim.add_fault(
        FaultRule(kind="status", status=204, body=b"", path="/v2/Customers", method="GET", times=1)
    )
    result = client.resource("customers").create({"Name": "Raced AS"}, reference="link-r")
    assert not result.created and result.record.id == existing["Id"]
    assert sim.count(method="POST", resource="customers", status=400) == 1
    assert len(sim.store.live("customers")) == 1


def test_create_gives_up_without_duplicating(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    sim.add_fault(FaultRule(kind="status", status=500, path="/v2/Customers", method="POST"))
    with pytest.raises(ServerError):
        client.resource("customers").create({"Name": "Never AS"}, reference="link-n")
    assert _posts(sim, "customers") == client.retry.max_create_posts
    assert sim.store.live("customers") == []


# -- patches and deletes --------------------------------------------------------------------------


def test_guarded_patch_with_lost_response_is_retried_and_recognised(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    created = sim.seed("employees", [{"FirstName": "Ola", "LastName": "N"}])[0]
    sim.add_fault(
        FaultRule(kind="lose_response", status=502, path="/v2/Employees/", method="PATCH", times=1)
    )
    updated = (
        client.resource("employees")
        .update(created["Id"], {"FirstName": "Kari"}, expected={"FirstName": "Ola"})
        .record
    )
    assert updated.first_name == "Kari"
    assert sim.count(method="PATCH", resource="employees") == 2
    # the retry's guard fails (400, the default) and the re-read finds our value there
    assert sim.count(method="PATCH", resource="employees", status=400) == 1


def test_unguarded_patch_is_not_retried(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    created = sim.seed("employees", [{"FirstName": "Ola", "LastName": "N"}])[0]
    sim.add_fault(
        FaultRule(kind="status", status=503, path="/v2/Employees/", method="PATCH", times=1)
    )
    with pytest.raises(ServerError):
        client.resource("employees").update(created["Id"], {"FirstName": "Kari"})
    assert sim.count(method="PATCH", resource="employees") == 1


def test_delete_with_lost_response_is_done(
    sim: PowerOfficeSimulator, client: PowerOfficeClient
) -> None:
    created = sim.seed("customers", [{"Name": "Gone AS"}])[0]
    sim.add_fault(
        FaultRule(kind="lose_response", status=504, path="/v2/Customers/", method="DELETE", times=1)
    )
    client.resource("customers").delete(created["Id"])
    assert sim.count(method="DELETE", resource="customers", status=404) == 1
    assert sim.store.live("customers") == []


# -- rate limits ----------------------------------------------------------------------------------


def test_429_waits_as_told_and_retries_any_method(
    sim: PowerOfficeSimulator, client: PowerOfficeClient, sleeps: Sleeps
) -> None:
    sim.add_fault(
        FaultRule(kind="rate_limit", body=GATEWAY_429, path="/v2/Customers", method="POST", times=2)
    )
    result = client.resource("customers").create({"Name": "Throttled AS"}, reference="link-t")
    assert result.created
    assert sleeps.waits == [3.0, 3.0]  # from the body: the injected 429 has no Retry-After
    assert client.budget.throttled_by_api == 2
    assert _posts(sim, "customers") == 3 and len(sim.store.live("customers")) == 1


def test_429_exhausted_reaches_the_caller(
    sim: PowerOfficeSimulator, running: tuple[PowerOfficeSimulator, ServerThread], sleeps: Sleeps
) -> None:
    sim.add_fault(FaultRule(kind="rate_limit", body=b"{}", path="/v2/Customers"))
    policy = RetryPolicy(max_rate_limited_attempts=3)
    with (
        make_client(sim, running[1], sleeps, retry=policy) as po,
        pytest.raises(RateLimitedError) as info,
    ):
        list(po.resource("customers").list())
    assert info.value.retry_after == 1.0 and info.value.retriable
    assert sleeps.waits == [1.0, 1.0]


def test_real_gateway_429_is_absorbed() -> None:
    sim = PowerOfficeSimulator(limits=SimulatorLimits(requests_per_second=4))
    with sim.serve() as server:
        with make_client(sim, server, Sleeps(), sleep=time.sleep) as po:
            started = time.monotonic()
            for _ in range(6):
                assert list(po.resource("customers").list()) == []
            assert time.monotonic() - started >= 0.9  # waited out Retry-After: 1
        assert sim.counters_json()["rate_limited"] >= 1
        assert po.budget.throttled_by_api == sim.counters_json()["rate_limited"]


def test_retry_after_sources() -> None:
    request = httpx.Request("GET", "http://x")
    header = httpx.Response(429, headers={"Retry-After": "7"}, json={}, request=request)
    assert _retry_after(header, 60) == 7.0
    body = httpx.Response(429, content=GATEWAY_429, request=request)
    assert _retry_after(body, 60) == 3.0
    capped = httpx.Response(429, headers={"Retry-After": "600"}, request=request)
    assert _retry_after(capped, 60) == 60.0
    nothing = httpx.Response(429, content=b"", request=request)
    assert _retry_after(nothing, 60) == 1.0


def test_full_budget_share_gets_no_429_from_the_real_limit() -> None:
    sim = PowerOfficeSimulator()  # 10 requests/second per subscription key
    with sim.serve() as server:
        budget = ApiBudget("po-share", 10, 1.0)
        with make_client(sim, server, Sleeps(), budget=budget, sleep=time.sleep) as po:
            started = time.monotonic()
            for _ in range(24):  # token + 24 calls: three windows' worth
                assert list(po.resource("employees").list()) == []
            elapsed = time.monotonic() - started
        assert sim.counters_json()["rate_limited"] == 0
        assert budget.throttled_by_api == 0
        assert 1.9 <= elapsed < 3.5  # the budget's pace (25 permits: 2 full windows), no penalty
