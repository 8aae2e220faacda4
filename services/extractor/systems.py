"""The systems the extractor reads: which connectors, with which clients, budgets and settings.

This is the wiring, and the one extractor module (with ``main``'s help text and the ``TETHER_*``
names in ``settings.py``, which deployments use) that names a system: the poller, the
reconciler, the push receiver, parents and the service loop are generic over the connector
interface (``services.core.connector``). A new resource of a wired system is a new entry in its
connector's descriptor and streams; a new system is one more entry in :func:`wire`.

Per system: its descriptor, a client that takes this service's share of the system's API budget
(``ApiBudget``; 0 = lifted; every budget is exported by ``BudgetCollector``) and counts its calls
through ``CoreMetrics.observe_api``, its streams (reading with the poll overlap and cursor seen
limit of the settings), page size and poll interval, and — when it pushes changes — its
``PushSource`` (Wix webhooks, when a public key is configured; see :func:`check_webhooks_off`).

**Snapshot first.** The mapper matches PowerOffice records against the Wix contacts it has seen,
so the Wix streams are polled first and nothing else is extracted until one Wix read has
covered everything (``TETHER_WIX_SNAPSHOT_FIRST``, on by default): :func:`snapshot_first`.

Imports: the connector packages (descriptors, production clients, Wix webhooks), the core
service context and the extractor's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from services.connectors import registry
from services.connectors.poweroffice.client import PowerOfficeClient, require_credentials
from services.connectors.poweroffice.connector import DESCRIPTOR as POWEROFFICE
from services.connectors.wix.client import WixClient, auth_from_settings
from services.connectors.wix.connector import DESCRIPTOR as WIX
from services.connectors.wix.receiver import WixWebhooks
from services.core.budget import ApiBudget, process_share
from services.core.connector import (
    Client,
    PushSource,
    ResourceDescriptor,
    RoutedPushSource,
    SourceStream,
    StreamOptions,
)
from services.core.errors import ConfigurationError
from services.core.metrics import CoreMetrics
from services.core.shared_budget import BudgetStore, poweroffice_key, shared_budget, wix_key
from services.extractor.settings import ExtractorSettings, budget_shape

log = logging.getLogger("tether.extractor")

registry.install()  # core's topics and record types, from the connector descriptors


@dataclass(frozen=True)
class System:
    """One system as the extractor reads it."""

    name: str
    resources: Mapping[str, ResourceDescriptor]
    client: Client
    streams: Mapping[str, SourceStream]
    """Per resource, in polling order (a parent resource before its children)."""
    page_size: int
    poll_interval: float
    push: PushSource | None = None


def budgets(settings: ExtractorSettings) -> dict[str, ApiBudget]:
    """This service's share of every system's API budget (exported even when not extracted).

    The Deployment's share is split by its replicas, or (``TETHER_SHARED_BUDGETS``) taken
    whole from PostgreSQL by every replica together."""
    tenant = settings.tenant
    if settings.shared_budgets:
        store = BudgetStore.for_dsn(settings.postgres_dsn.get_secret_value())
        po, wix = settings.poweroffice_budget_share, settings.wix_budget_share
        return {
            POWEROFFICE.system: shared_budget(
                store,
                f"poweroffice-{tenant}-extractor",
                settings.poweroffice_requests_per_second * po,
                1.0,
                key=poweroffice_key(settings),
                holder=settings.budget_holder("extractor"),
            ),
            WIX.system: shared_budget(
                store,
                f"wix-{tenant}-extractor",
                settings.wix_requests_per_minute * wix,
                60.0,
                key=wix_key(settings),
                holder=settings.budget_holder("extractor"),
            ),
        }
    po_share = process_share(settings.poweroffice_budget_share, settings.replicas)
    po_rate = settings.poweroffice_requests_per_second * po_share
    wix_share = process_share(settings.wix_budget_share, settings.replicas)
    wix_rate = settings.wix_requests_per_minute * wix_share
    return {
        POWEROFFICE.system: ApiBudget(
            f"poweroffice-{tenant}-extractor", *budget_shape(po_rate, 1.0)
        ),
        WIX.system: ApiBudget(f"wix-{tenant}-extractor", *budget_shape(wix_rate, 60.0)),
    }


def enabled(settings: ExtractorSettings) -> dict[str, Mapping[str, ResourceDescriptor]]:
    """The resources of every system the settings extract, by system."""
    systems: dict[str, Mapping[str, ResourceDescriptor]] = {}
    if settings.poweroffice_enabled:
        systems[POWEROFFICE.system] = POWEROFFICE.resources
    if settings.wix_enabled:
        systems[WIX.system] = WIX.resources
    return systems


def snapshot_first(settings: ExtractorSettings) -> str | None:
    """The system whose first complete read must precede every other system's extraction."""
    return WIX.system if settings.wix_enabled and settings.wix_snapshot_first else None


def wire(
    settings: ExtractorSettings,
    budget: Mapping[str, ApiBudget],
    metrics: CoreMetrics,
    clients: Mapping[str, Client] | None = None,
) -> list[System]:
    """The enabled systems (``clients``: ready-made ones by system, e.g. a test's)."""
    given = dict(clients or {})
    options = StreamOptions(settings.poll_overlap_seconds, settings.cursor_seen_limit)
    systems: list[System] = []
    if settings.poweroffice_enabled:
        po = given.get(POWEROFFICE.system)
        if po is None:
            require_credentials(settings)
            po = PowerOfficeClient(
                application_key=settings.poweroffice_app_key,
                client_key=settings.poweroffice_client_key,
                subscription_key=settings.poweroffice_subscription_key,
                budget=budget[POWEROFFICE.system],
                base_url=settings.poweroffice_base_url,
                token_url=settings.poweroffice_token_url,
                on_request=metrics.observe_api,
            )
        assert isinstance(po, PowerOfficeClient)
        systems.append(
            System(
                POWEROFFICE.system,
                POWEROFFICE.resources,
                po,
                POWEROFFICE.streams(po, options),
                settings.poweroffice_page_size,
                settings.poweroffice_poll_interval_seconds,
            )
        )
    if settings.wix_enabled:
        wix = given.get(WIX.system)
        if wix is None:
            wix = WixClient(
                auth_from_settings(settings),
                budget[WIX.system],
                base_url=settings.wix_base_url,
                on_request=metrics.observe_api,
            )
        assert isinstance(wix, WixClient)
        systems.append(
            System(
                WIX.system,
                WIX.resources,
                wix,
                WIX.streams(wix, options),
                settings.wix_page_size,
                settings.wix_poll_interval_seconds,
                push=wix_webhooks(settings),
            )
        )
    return systems


def routed_push(settings: ExtractorSettings) -> list[tuple[str, RoutedPushSource]]:
    """The push sources a replica serving many tenants routes by tenant, by system: verified
    with the deployment's key (one app for every site), for any installation."""
    key = settings.webhook_public_key_pem()
    if key and settings.wix_enabled and settings.wix_webhooks_enabled is not False:
        return [(WIX.system, WixWebhooks(key))]
    return []


def wix_webhooks(settings: ExtractorSettings) -> PushSource | None:
    """The Wix webhook source when a public key is configured and webhooks are not off."""
    key = settings.webhook_public_key_pem()
    if key and settings.wix_webhooks_enabled is not False:
        return WixWebhooks(key, settings.wix_instance_id)
    check_webhooks_off(settings)
    return None


def check_webhooks_off(settings: ExtractorSettings) -> None:
    """No webhook route: refuse to start when webhooks are expected without a key, else say so."""
    if settings.webhooks_expected():
        raise ConfigurationError(
            "Wix webhooks are expected (TETHER_WIX_WEBHOOKS_ENABLED, or the Wix app is "
            "installed: app id + instance id) but no webhook public key is configured: set "
            "TETHER_WIX_WEBHOOK_PUBLIC_KEY (secret file tether_wix_webhook_public_key) or "
            "TETHER_WIX_WEBHOOK_PUBLIC_KEY_FILE, or TETHER_WIX_WEBHOOKS_ENABLED=false to poll only"
        )
    # Switched off on purpose: INFO; merely unconfigured: WARNING (an operator should know).
    log.log(
        logging.INFO if settings.wix_webhooks_enabled is False else logging.WARNING,
        "Wix webhooks off: Wix changes arrive by polling every %.0f s",
        settings.wix_poll_interval_seconds,
        extra={"fields": {"wix_poll_interval_seconds": settings.wix_poll_interval_seconds}},
    )
