"""``tether simulate poweroffice|wix --tenants N``: one process serving tenant ``default`` (the
single-tenant credentials) and N more, each reachable with its derived credentials."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.client import PowerOfficeClient
from services.connectors.wix.client import ApiKeyAuth, WixClient
from services.core.budget import ApiBudget
from services.demo.stack import free_port
from services.demo.tenant_simulators import tenant_overrides


def serve(system: str) -> Iterator[str]:
    port = free_port()
    argv = ["simulate", system, "--port", str(port), "--tenants", "2", "--lift-limits"]
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_tenants", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def poweroffice() -> Iterator[str]:
    yield from serve("poweroffice")


@pytest.fixture
def wix() -> Iterator[str]:
    yield from serve("wix")


def test_poweroffice_serves_default_and_n_clients(poweroffice: str):
    listed = httpx.get(f"{poweroffice}/_tenants").json()["tenants"]
    assert [t["tenant"] for t in listed] == ["default", "tenant-001", "tenant-002"]
    secrets = tenant_overrides("tenant-002").secrets
    with PowerOfficeClient(
        application_key=SecretStr(secrets["poweroffice_app_key"]),
        client_key=SecretStr(secrets["poweroffice_client_key"]),
        subscription_key=SecretStr(secrets["poweroffice_subscription_key"]),
        budget=ApiBudget("po", 0),
        base_url=f"{poweroffice}/v2",
    ) as client:
        assert list(client.resource("employees").list()) == []
    counters = httpx.get(f"{poweroffice}/_tenants/tenant-002/_admin/counters").json()
    assert counters["tokens_issued"] == 1
    assert httpx.get(f"{poweroffice}/_admin/counters").json()["tokens_issued"] == 0


def test_wix_serves_default_and_n_sites(wix: str):
    listed = httpx.get(f"{wix}/_tenants").json()["tenants"]
    assert [t["tenant"] for t in listed] == ["default", "tenant-001", "tenant-002"]
    tenant = tenant_overrides("tenant-001")
    auth = ApiKeyAuth(
        api_key=SecretStr(tenant.secrets["wix_api_key"]), site_id=tenant.settings["wix_site_id"]
    )
    with WixClient(auth, ApiBudget("wix", 0), base_url=wix) as client:
        client.create({"info.name.first": "Ola"})
    assert len(httpx.get(f"{wix}/_tenants/tenant-001/_admin/contacts").json()["contacts"]) == 1
    assert httpx.get(f"{wix}/_admin/contacts").json()["contacts"] == []
