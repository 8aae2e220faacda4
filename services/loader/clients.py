"""Building the loader's API clients and budgets from its settings (the only place that does).

Each client gets its own token bucket (``LoaderSettings.poweroffice_budget`` /
``wix_budget``: the loader's share of the API's limit), the loader's ``ApiCalls`` observer as
``on_request`` (metrics by system/operation/status + latency), a per-request timeout and a small
number of in-client attempts for idempotent calls (the executor retries whole commands on top).

Imports: the connectors' production clients, the core errors/budget modules, the loader's
settings and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.connectors.poweroffice.client import (
    PowerOfficeClient,
    RetryPolicy,
    require_credentials,
)
from services.connectors.wix.client import (
    WixClient,
    auth_from_settings,
)
from services.core.budget import ApiBudget
from services.loader.metrics import ApiCalls
from services.loader.settings import LoaderSettings


@dataclass
class Clients:
    wix: WixClient
    poweroffice: PowerOfficeClient
    wix_budget: ApiBudget
    poweroffice_budget: ApiBudget

    @property
    def budgets(self) -> list[ApiBudget]:
        return [self.poweroffice_budget, self.wix_budget]

    def close(self) -> None:
        self.wix.close()
        self.poweroffice.close()


def build_clients(
    settings: LoaderSettings,
    calls: ApiCalls,
    *,
    wix_budget: ApiBudget | None = None,
    poweroffice_budget: ApiBudget | None = None,
) -> Clients:
    """The two clients; budgets default to the configured shares (benchmarks pass scaled ones)."""
    require_credentials(settings)
    wix_budget = wix_budget or settings.wix_budget()
    poweroffice_budget = poweroffice_budget or settings.poweroffice_budget()
    wix = WixClient(
        auth_from_settings(settings),
        wix_budget,
        base_url=settings.wix_base_url,
        timeout_seconds=settings.loader_client_timeout_seconds,
        max_attempts=settings.loader_client_max_attempts,
        on_request=calls,
    )
    poweroffice = PowerOfficeClient(
        application_key=settings.poweroffice_app_key,
        client_key=settings.poweroffice_client_key,
        subscription_key=settings.poweroffice_subscription_key,
        budget=poweroffice_budget,
        base_url=settings.poweroffice_base_url,
        token_url=settings.poweroffice_token_url,
        timeout=settings.loader_client_timeout_seconds,
        retry=RetryPolicy(max_attempts=settings.loader_client_max_attempts),
        on_request=calls,
    )
    return Clients(wix, poweroffice, wix_budget, poweroffice_budget)
