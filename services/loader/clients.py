"""The loader's wiring to its connectors: which systems it writes, and their clients and budgets.

The one loader module that names systems: ``CONNECTORS`` lists the connector descriptors
(``services.core.connector.ConnectorDescriptor``) the loader applies commands for. For each it
builds the production client with the loader's own HTTP knobs — its token bucket
(``LoaderSettings.poweroffice_budget`` / ``wix_budget``: the loader's share of the API's limit),
the loader's ``ApiCalls`` observer as ``on_request`` (metrics by system/operation/status +
latency), a per-request timeout and a small number of in-client attempts for idempotent calls
(the executor retries whole commands on top) — and the ``CommandTarget`` over the descriptor's
targets. Everything past this module is generic over the descriptors.

Imports: the connectors' descriptors and production clients, the core connector interface and
budget, the loader's settings, metrics and targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from services.connectors import registry
from services.connectors.poweroffice.client import (
    PowerOfficeClient,
    RetryPolicy,
    require_credentials,
)
from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.wix.client import WixClient, auth_from_settings
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.core.budget import ApiBudget
from services.core.connector import Client, ConnectorDescriptor
from services.loader.metrics import ApiCalls
from services.loader.settings import LoaderSettings
from services.loader.targets import CommandTarget

registry.install()  # core's topics and record types, from the connector descriptors

CONNECTORS: tuple[ConnectorDescriptor[Any, Any], ...] = (POWEROFFICE, WIX)
"""The systems the loader writes to."""

SYSTEMS: tuple[str, ...] = tuple(descriptor.system for descriptor in CONNECTORS)


@dataclass
class Clients:
    """One client and one budget per system (``CONNECTORS``' order)."""

    clients: dict[str, Client]
    budgets: dict[str, ApiBudget]

    def targets(
        self, settings: LoaderSettings, registry: CollectorRegistry | None
    ) -> dict[str, CommandTarget]:
        """A ``CommandTarget`` per system over its connector's targets (``registry`` takes the
        targets' own metrics; a tenant's targets, built after the first, register none)."""
        return {
            d.system: CommandTarget(d, d.targets(self.clients[d.system], settings, registry))
            for d in CONNECTORS
        }

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def configured_budgets(settings: LoaderSettings) -> dict[str, ApiBudget]:
    """The budgets ``settings`` configure, by system (to tell whether kept ones still fit)."""
    return {POWEROFFICE.system: settings.poweroffice_budget(), WIX.system: settings.wix_budget()}


def build_clients(
    settings: LoaderSettings,
    calls: ApiCalls,
    *,
    budgets: Mapping[str, ApiBudget] | None = None,
) -> Clients:
    """The clients; ``budgets`` by system default to the configured shares (benchmarks pass
    scaled ones)."""
    require_credentials(settings)
    given = dict(budgets or {})
    wix_budget = given.get(WIX.system) or settings.wix_budget()
    poweroffice_budget = given.get(POWEROFFICE.system) or settings.poweroffice_budget()
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
    return Clients(
        clients={POWEROFFICE.system: poweroffice, WIX.system: wix},
        budgets={POWEROFFICE.system: poweroffice_budget, WIX.system: wix_budget},
    )
