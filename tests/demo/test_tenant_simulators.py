"""The multi-tenant simulator helper: each tenant's overrides build working production clients.

The overrides are applied the way the tenant registry applies them — over the deployment's
settings, whose base URLs are the same for every tenant — and the clients the connectors build
from those settings see exactly their own tenant's seeded data.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.connectors.poweroffice.connector import make_client as poweroffice_client
from services.connectors.seed import normalize_email
from services.connectors.tenantseed import generate_tenant, share_people
from services.connectors.wix.client import WixClient, auth_from_settings
from services.core.budget import ApiBudget
from services.core.settings import PowerOfficeSettings, WixSettings
from services.demo.tenant_simulators import SimTenant, TenantSimulators, tenant_overrides

SECRET_FIELDS = {
    name
    for model in (PowerOfficeSettings, WixSettings)
    for name, info in model.model_fields.items()
    if info.annotation is SecretStr
}


@pytest.fixture(scope="module")
def sims() -> Iterator[TenantSimulators]:
    with TenantSimulators(2, lift_limits=True) as running:
        yield running


def settings_for(
    sims: TenantSimulators, tenant: SimTenant
) -> tuple[PowerOfficeSettings, WixSettings]:
    po = PowerOfficeSettings(poweroffice_base_url=sims.poweroffice_base_url, **tenant.overrides())
    wix = WixSettings(wix_base_url=sims.wix_url, **tenant.overrides())
    return po, wix


def test_overrides_split_secrets_from_settings():
    tenant = tenant_overrides("tenant-007")
    assert set(tenant.secrets) <= SECRET_FIELDS
    assert not set(tenant.settings) & SECRET_FIELDS
    assert set(tenant.settings) <= set(WixSettings.model_fields) | set(
        PowerOfficeSettings.model_fields
    )
    assert tenant == tenant_overrides("tenant-007")
    assert tenant.secrets != tenant_overrides("tenant-008").secrets
    app = tenant_overrides("tenant-007", wix_auth="app")
    assert "wix_api_key" not in app.secrets and "wix_app_secret" in app.secrets


def test_each_tenants_clients_see_only_its_data(sims: TenantSimulators):
    first, second = (t.tenant for t in sims.tenants)
    source = generate_tenant(first, minimum=50, maximum=60)
    shared = share_people(source, generate_tenant(second, minimum=50, maximum=60), 5)
    seeded = {first: sims.seed_tenant(first, source), second: sims.seed_tenant(second, shared.data)}
    for tenant in sims.tenants:
        po_settings, wix_settings = settings_for(sims, tenant)
        with poweroffice_client(po_settings, ApiBudget("po", 0)) as po:
            ids = {e.id for e in po.resource("employees").list()}
            found = {
                normalize_email(str(record.get("EmailAddress") or ""))
                for resource in ("employees", "customers", "contactpersons")
                for record in po.resource(resource).list_wire()
            }
        assert ids == {e["Id"] for e in seeded[tenant.tenant].employees}
        # The shared people are in both tenants, each tenant's copy in its own records.
        assert set(shared.emails) <= found
        auth = auth_from_settings(wix_settings)
        with WixClient(auth, ApiBudget("wix", 0), base_url=wix_settings.wix_base_url) as wix:
            contacts = {c.id for c in wix.iter_query()}
        assert contacts == {c["id"] for c in seeded[tenant.tenant].wix_contacts}


def test_a_tenant_added_while_serving(sims: TenantSimulators):
    added = sims.add_tenant("tenant-late")
    po_settings, wix_settings = settings_for(sims, added)
    with poweroffice_client(po_settings, ApiBudget("po", 0)) as po:
        assert list(po.resource("customers").list()) == []
    with WixClient(
        auth_from_settings(wix_settings), ApiBudget("wix", 0), base_url=wix_settings.wix_base_url
    ) as wix:
        assert wix.query_page().contacts == []
