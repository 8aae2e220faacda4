"""Several PowerOffice Go clients in one simulator: the production client over real HTTP.

Credentials select the client (never the URL); each client's data, tokens and counters are its
own; a subscription key that is not the token's client's is refused; rate limits are per
subscription key, so tenants with their own keys never throttle each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.poweroffice.simtenants import (
    PowerOfficeSimulators,
    PowerOfficeTenant,
    tenant_credentials,
)
from services.connectors.poweroffice.simulator import Credentials, SimulatorLimits
from services.connectors.simkit import ServerThread
from services.core.budget import ApiBudget
from services.core.errors import AuthenticationError

# A window no test run outlasts: whether a request is throttled never depends on timing.
SLOW_LIMITS = SimulatorLimits(requests_per_second=3, window_seconds=600)


@pytest.fixture
def front() -> PowerOfficeSimulators:
    return PowerOfficeSimulators(
        PowerOfficeTenant(name, tenant_credentials(name), SimulatorLimits.lifted())
        for name in ("alpha", "beta")
    )


@pytest.fixture
def server(front: PowerOfficeSimulators) -> Iterator[ServerThread]:
    with front.serve() as running:
        yield running


def client(server: ServerThread, creds: Credentials, **kwargs: Any) -> PowerOfficeClient:
    return PowerOfficeClient(
        application_key=SecretStr(creds.application_key),
        client_key=SecretStr(creds.client_key),
        subscription_key=SecretStr(creds.subscription_key),
        budget=ApiBudget("poweroffice-test", 0),
        base_url=f"{server.url}/v2",
        timeout=5.0,
        **kwargs,
    )


def employee(first: str, email: str) -> dict[str, Any]:
    return {"FirstName": first, "LastName": "Nordmann", "EmailAddress": email}


def names(po: PowerOfficeClient) -> list[str]:
    return sorted(e.first_name or "" for e in po.resource("employees").list())


def token(server: ServerThread, creds: Credentials) -> str:
    response = httpx.post(
        f"{server.url}/OAuth/Token",
        auth=(creds.application_key, creds.client_key),
        headers={"Ocp-Apim-Subscription-Key": creds.subscription_key},
        data={"grant_type": "client_credentials"},
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_each_client_sees_only_its_own_records(front: PowerOfficeSimulators, server: ServerThread):
    for name, first in (("alpha", "Ola"), ("beta", "Kari")):
        with PowerOfficeSimulatorAdmin(PowerOfficeSimulators.admin_root(server.url, name)) as a:
            a.seed("employees", [employee(first, "same.person@example.com")])
    with client(server, tenant_credentials("alpha")) as alpha:
        created = alpha.resource("employees").create(
            employee("Per", "per@example.com"), reference="per"
        )
        assert names(alpha) == ["Ola", "Per"]
    with client(server, tenant_credentials("beta")) as beta:
        assert names(beta) == ["Kari"]
        assert beta.resource("employees").find_by_reference("per") is None
    assert [r["record"]["FirstName"] for r in front["alpha"].store.admin_list("employees")] == [
        "Ola",
        "Per",
    ]
    assert created.record.first_name == "Per"
    # /_admin without a tenant is the first tenant's.
    with PowerOfficeSimulatorAdmin(server.url) as default:
        assert len(default.records("employees")) == 2


def test_wrong_or_foreign_credentials_are_refused(server: ServerThread):
    alpha, beta = tenant_credentials("alpha"), tenant_credentials("beta")
    # alpha's keys with beta's subscription key: the gateway's invalid_client (400).
    mixed = Credentials(alpha.application_key, alpha.client_key, beta.subscription_key)
    with client(server, mixed) as po, pytest.raises(AuthenticationError):
        list(po.resource("employees").list())
    unknown = Credentials(alpha.application_key, "no-such-client", alpha.subscription_key)
    with client(server, unknown) as po, pytest.raises(AuthenticationError):
        list(po.resource("employees").list())
    # alpha's token sent with beta's subscription key: 401 (keys and token must belong together).
    alpha_token = token(server, alpha)
    foreign = httpx.get(
        f"{server.url}/v2/Employees",
        headers={
            "Authorization": f"Bearer {alpha_token}",
            "Ocp-Apim-Subscription-Key": beta.subscription_key,
        },
    )
    assert foreign.status_code == 401
    unknown_key = httpx.get(
        f"{server.url}/v2/Employees",
        headers={"Authorization": f"Bearer {alpha_token}", "Ocp-Apim-Subscription-Key": "nope"},
    )
    assert unknown_key.status_code == 401
    assert "invalid subscription key" in unknown_key.json()["message"]
    own = httpx.get(
        f"{server.url}/v2/Employees",
        headers={
            "Authorization": f"Bearer {alpha_token}",
            "Ocp-Apim-Subscription-Key": alpha.subscription_key,
        },
    )
    assert own.status_code == 204  # authorized; alpha has no employees


def test_a_token_of_one_client_never_reads_another(
    front: PowerOfficeSimulators, server: ServerThread
):
    front["beta"].seed("employees", [employee("Kari", "kari@example.com")])
    alpha = tenant_credentials("alpha")
    response = httpx.get(
        f"{server.url}/v2/Employees",
        headers={
            "Authorization": f"Bearer {token(server, alpha)}",
            "Ocp-Apim-Subscription-Key": alpha.subscription_key,
        },
    )
    assert response.status_code == 204
    assert front["alpha"].tokens_issued == 1 and front["beta"].tokens_issued == 0


def exhaust(server: ServerThread, creds: Credentials) -> list[int]:
    """Four token requests in a row: the fourth is over a limit of 3 per window."""
    return [
        httpx.post(
            f"{server.url}/OAuth/Token",
            auth=(creds.application_key, creds.client_key),
            headers={"Ocp-Apim-Subscription-Key": creds.subscription_key},
            data={"grant_type": "client_credentials"},
        ).status_code
        for _ in range(4)
    ]


def test_rate_limits_are_per_subscription_key():
    front = PowerOfficeSimulators(
        PowerOfficeTenant(name, tenant_credentials(name), SLOW_LIMITS) for name in ("alpha", "beta")
    )
    with front.serve() as server:
        assert exhaust(server, tenant_credentials("alpha")) == [200, 200, 200, 429]
        with client(server, tenant_credentials("beta")) as beta:
            assert names(beta) == []  # token + one page: within beta's own 3
    assert front["alpha"].count(status=429) == 1
    assert front["beta"].count(status=429) == 0


def test_clients_sharing_a_subscription_key_share_its_limit():
    shared = [tenant_credentials(n, shared_subscription_key=True) for n in ("alpha", "beta")]
    front = PowerOfficeSimulators(
        PowerOfficeTenant(name, creds, SLOW_LIMITS)
        for name, creds in zip(("alpha", "beta"), shared, strict=True)
    )
    with front.serve() as server:
        assert exhaust(server, shared[0]) == [200, 200, 200, 429]
        assert exhaust(server, shared[1]) == [429, 429, 429, 429]


def test_tenants_added_and_listed_at_run_time(front: PowerOfficeSimulators, server: ServerThread):
    added = httpx.post(f"{server.url}/_tenants", json={"tenant": "gamma", "requests_per_second": 0})
    assert added.status_code == 201
    assert added.json()["client_key"] == tenant_credentials("gamma").client_key
    assert httpx.post(f"{server.url}/_tenants", json={"tenant": "gamma"}).status_code == 409
    assert httpx.post(f"{server.url}/_tenants", json={"tenant": "Bad Id"}).status_code == 400
    assert httpx.post(f"{server.url}/_tenants", json={"tenant": "x", "nope": 1}).status_code == 400
    listed = httpx.get(f"{server.url}/_tenants").json()["tenants"]
    assert [t["tenant"] for t in listed] == ["alpha", "beta", "gamma"]
    with client(server, tenant_credentials("gamma")) as gamma:
        gamma.resource("employees").create(employee("Nils", "nils@example.com"), reference="n")
        assert names(gamma) == ["Nils"]
    assert front["gamma"].store.admin_list("employees")[0]["record"]["FirstName"] == "Nils"
    assert front["alpha"].store.admin_list("employees") == []
    missing = httpx.get(f"{server.url}/_tenants/nobody/_admin/counters")
    assert missing.status_code == 404


def test_demo_environment_paths_route_the_same_way(
    front: PowerOfficeSimulators, server: ServerThread
):
    front["beta"].seed("employees", [employee("Kari", "kari@example.com")])
    beta = tenant_credentials("beta")
    with PowerOfficeClient(
        application_key=SecretStr(beta.application_key),
        client_key=SecretStr(beta.client_key),
        subscription_key=SecretStr(beta.subscription_key),
        budget=ApiBudget("poweroffice-test", 0),
        base_url=f"{server.url}/Demo/v2",
    ) as demo:
        assert names(demo) == ["Kari"]
    assert front["beta"].count(resource="token", status=200) == 1
