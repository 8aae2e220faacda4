"""Many tenants on the local simulators: their credentials as setting overrides, and seeding.

For the tests, the benchmarks and the demo. ``tenant_overrides(tenant)`` gives a tenant's
connector settings the way the tenant registry stores them — ``settings`` (non-secret setting
fields: ``wix_site_id``, ``wix_instance_id``, ``wix_app_id``) and ``secrets`` (secret setting
fields, for a credentials directory: ``poweroffice_app_key``, ``poweroffice_client_key``,
``poweroffice_subscription_key``, ``wix_api_key`` or ``wix_app_secret``) — derived from the
tenant id exactly as the simulators derive them, so it also describes simulators started as
processes (``tether simulate poweroffice|wix --tenants N``). The base URLs are the deployment's
(one per API, as in production), so they are not overrides.

``TenantSimulators`` runs both multi-tenant simulators in this process (``ServerThread``s):
``with TenantSimulators(3) as sims: sims.tenants[0].secrets ...``. ``seed_tenant`` loads a
tenant's generated data (``tenantseed``) through its ``/_tenants/{tenant}/_admin`` API, in this
process or in simulator processes.

Imports: the connectors' simulators, admin clients and seed modules, and ``demo.seeding``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from services.connectors.poweroffice.simtenants import (
    PowerOfficeSimulators,
    PowerOfficeTenant,
    tenant_credentials,
)
from services.connectors.poweroffice.simulator import SimulatorLimits
from services.connectors.seed import SeedData
from services.connectors.simkit import ServerThread, tenant_ids
from services.connectors.wix.simsites import (
    DEFAULT_APP_SECRET,
    WixSites,
    site_credentials,
)
from services.connectors.wix.simulator import DEFAULT_APP_ID
from services.connectors.wix.simwebhooks import WebhookSettings
from services.demo.seeding import Seeded, seed_simulators

WixAuth = Literal["api_key", "app"]


@dataclass(frozen=True)
class SimTenant:
    """One tenant's setting overrides: ``settings`` may be stored in clear, ``secrets`` not."""

    tenant: str
    settings: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def overrides(self) -> dict[str, str]:
        """All overrides by setting field name (``settings.model_copy(update=...)`` form)."""
        return {**self.settings, **self.secrets}


def tenant_overrides(
    tenant: str, *, shared_subscription_key: bool = False, wix_auth: WixAuth = "api_key"
) -> SimTenant:
    """``tenant``'s credentials on the simulators. ``wix_auth="app"``: the app-token flow
    (``wix_app_id`` + ``wix_instance_id``, secret ``wix_app_secret``) instead of an API key; the
    instance id is set either way (the webhook receiver checks it)."""
    po = tenant_credentials(tenant, shared_subscription_key=shared_subscription_key)
    site = site_credentials(tenant)
    settings = {"wix_site_id": site.site_id, "wix_instance_id": site.instance_id}
    secrets = {
        "poweroffice_app_key": po.application_key,
        "poweroffice_client_key": po.client_key,
        "poweroffice_subscription_key": po.subscription_key,
    }
    if wix_auth == "api_key":
        secrets["wix_api_key"] = site.api_key
    else:
        settings["wix_app_id"] = DEFAULT_APP_ID
        secrets["wix_app_secret"] = DEFAULT_APP_SECRET
    return SimTenant(tenant, settings, secrets)


class TenantSimulators:
    """Both multi-tenant simulators in this process, one tenant per id (``tenant-001``...)."""

    def __init__(
        self,
        tenants: int | Sequence[str],
        *,
        lift_limits: bool = False,
        shared_subscription_key: bool = False,
        wix_auth: WixAuth = "api_key",
        webhook_urls: Sequence[str] = (),
    ) -> None:
        """``lift_limits``: no 10 req/s and 200 req/min (benchmarks); ``webhook_urls``: where
        every site's contact webhooks go (the extractor's receiver)."""
        names = tenant_ids(tenants) if isinstance(tenants, int) else list(tenants)
        self._shared_key = shared_subscription_key
        self._wix_auth: WixAuth = wix_auth
        self._rate = 0 if lift_limits else 200
        self.poweroffice = PowerOfficeSimulators(
            limits=SimulatorLimits.lifted() if lift_limits else SimulatorLimits()
        )
        self.wix = WixSites(
            webhook_settings=WebhookSettings(urls=list(webhook_urls), delivery_workers=2)
        )
        self.tenants: list[SimTenant] = []
        for name in names:
            self.add_tenant(name)
        self._servers: list[ServerThread] = []
        self.poweroffice_url = ""
        self.wix_url = ""

    def add_tenant(self, tenant: str) -> SimTenant:
        """A tenant more, in both simulators (also while they serve)."""
        self.poweroffice.add(
            PowerOfficeTenant(
                tenant,
                tenant_credentials(tenant, shared_subscription_key=self._shared_key),
                self.poweroffice.limits,
            )
        )
        self.wix.add(dataclasses.replace(site_credentials(tenant), rate_limit=self._rate))
        made = tenant_overrides(
            tenant, shared_subscription_key=self._shared_key, wix_auth=self._wix_auth
        )
        self.tenants.append(made)
        return made

    def start(self) -> TenantSimulators:
        po, wix = self.poweroffice.serve().start(), self.wix.serve().start()
        self._servers = [po, wix]
        self.poweroffice_url, self.wix_url = po.url, wix.url
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        self._servers = []
        self.wix.close()

    def __enter__(self) -> TenantSimulators:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def poweroffice_base_url(self) -> str:
        """The deployment's ``poweroffice_base_url`` (the token URL is derived from it)."""
        return f"{self.poweroffice_url}/v2"

    def seed_tenant(self, tenant: str, data: SeedData) -> Seeded:
        """Load ``data`` (``tenantseed.generate_tenant``) into ``tenant``'s client and site."""
        return seed_tenant(tenant, data, self.poweroffice_url, self.wix_url)


def seed_tenant(tenant: str, data: SeedData, poweroffice_url: str, wix_url: str) -> Seeded:
    """Load ``data`` into ``tenant``'s client and site of multi-tenant simulators at these root
    URLs (in this process or started with ``tether simulate ... --tenants N``)."""
    return seed_simulators(
        data,
        PowerOfficeSimulators.admin_root(poweroffice_url, tenant),
        WixSites.admin_root(wix_url, tenant),
    )
