"""The loader's settings: the shared groups plus concurrency, retries and budgets.

``LoaderSettings`` combines ``TetherSettings`` (Kafka, topics, HTTP port — 9102 for the loader),
``PowerOfficeSettings`` and ``WixSettings`` (credentials and API budgets) with the loader's own
knobs, each read from ``TETHER_<NAME>`` (``TETHER_LOADER_CONCURRENCY`` …), and the tenant
registry's (``TETHER_TENANTS_FROM_REGISTRY``, default off: the single tenant of the environment).

Budgets: the loader's token bucket per API is its process's part of the Deployment's configured
share of the API's limit (``process_share``: the share divided by ``replicas``), expressed in the
API's own window so it never bursts past what the gateway counts:

- PowerOffice: ``poweroffice_requests_per_second * poweroffice_budget_share / replicas`` permits
  per 1 s (10 x 0.5 / 1 = 5 per second);
- Wix: ``wix_requests_per_minute * wix_budget_share / replicas`` permits per 60 s (200 x 0.5 / 1
  = 100 per minute, i.e. ``wix_requests_per_minute / 60 * share`` per second on average).

A share that is not a whole number of permits per window keeps its average rate with a shorter
window (``budget_for``: 10 x 0.25 = 2.5 per second -> 2 per 0.8 s); ``0`` requests lifts the limit
(simulator and benchmarks only).

With ``TETHER_SHARED_BUDGETS`` the share is not split: every loader replica takes from one
bucket per credential in PostgreSQL (``services.core.shared_budget``).

Imports: pydantic, the core settings, budget and shared budget modules only.
"""

from __future__ import annotations

from pydantic import Field

from services.core.budget import ApiBudget, process_share
from services.core.settings import (
    PowerOfficeSettings,
    SharedBudgetSettings,
    TetherSettings,
    WixSettings,
)
from services.core.shared_budget import BudgetStore, poweroffice_key, shared_budget, wix_key

#: The window each API counts requests in (the gateways' own windows).
POWEROFFICE_WINDOW_SECONDS = 1.0
WIX_WINDOW_SECONDS = 60.0


class LoaderSettings(TetherSettings, PowerOfficeSettings, WixSettings, SharedBudgetSettings):
    """Everything the loader reads from its environment."""

    http_port: int = Field(9102, ge=0, le=65535)
    loader_concurrency: int = Field(
        8, ge=1, le=256, description="Worker threads; commands of one link stay on one worker."
    )
    loader_max_in_flight: int = Field(
        1000, ge=1, description="Commands polled but without an outcome before polling pauses."
    )
    loader_retry_max_attempts: int = Field(
        8, ge=0, description="Attempts per command on transient errors (0: until stopped)."
    )
    loader_retry_initial_seconds: float = Field(0.5, ge=0)
    loader_retry_max_seconds: float = Field(
        30.0, ge=0, description="Cap of one back-off wait (jittered exponential)."
    )
    loader_client_timeout_seconds: float = Field(
        10.0, gt=0, description="HTTP timeout of one API request."
    )
    loader_client_max_attempts: int = Field(
        4, ge=1, description="Attempts inside the API clients (idempotent calls only)."
    )
    loader_drain_seconds: float = Field(
        12.0, gt=0, description="On SIGTERM: how long in-flight commands may take to finish."
    )
    loader_startup_timeout_seconds: float = Field(
        300.0, gt=0, description="Longest wait for the completed-commands index at start-up."
    )
    loader_unassigned_restart_seconds: float = Field(
        60.0,
        ge=0,
        description="Rejoin with a new consumer after this long without any partition (0: off).",
    )

    tenants_from_registry: bool = Field(
        False,
        description="Serve every tenant of the tenant registry, each with its own clients "
        "(off: the one tenant of the environment, TETHER_TENANT).",
    )
    tenants_refresh_seconds: float = Field(
        2.0, gt=0, description="How often the tenant registry is read again (registry on)."
    )
    tenant_credentials_check_seconds: float = Field(
        30.0,
        ge=0,
        description="How often a tenant's credentials are read again; a changed secret rebuilds "
        "its clients (registry on).",
    )
    loader_tenant_max_running: int = Field(
        0,
        ge=0,
        description="Most workers one tenant's commands occupy at once (0: loader_concurrency - 1, "
        "at least 1, with the registry on; all of them with it off).",
    )

    loader_tenant_max_in_flight: int = Field(
        0,
        ge=0,
        description="Commands of one tenant read and not finished before its next ones are "
        "passed over, to be read again (registry on; 0: loader_max_in_flight // 4, at least 1).",
    )

    def tenant_max_in_flight(self) -> int | None:
        """A tenant's share of the read buffer (``None``: no shares, the registry is off)."""
        if not self.tenants_from_registry:
            return None
        return self.loader_tenant_max_in_flight or max(1, self.loader_max_in_flight // 4)

    def tenant_max_running(self) -> int:
        """The running cap per tenant (``loader_tenant_max_running``, 0 resolved)."""
        if self.loader_tenant_max_running:
            return min(self.loader_tenant_max_running, self.loader_concurrency)
        if not self.tenants_from_registry:
            return self.loader_concurrency
        return max(1, self.loader_concurrency - 1)

    def poweroffice_budget(self) -> ApiBudget:
        if self.shared_budgets:
            return shared_budget(
                self._budget_store(),
                "poweroffice",
                self.poweroffice_requests_per_second * self.poweroffice_budget_share,
                POWEROFFICE_WINDOW_SECONDS,
                key=poweroffice_key(self),
                holder=self.budget_holder("loader"),
            )
        return budget_for(
            "poweroffice",
            self.poweroffice_requests_per_second * POWEROFFICE_WINDOW_SECONDS,
            process_share(self.poweroffice_budget_share, self.replicas),
            POWEROFFICE_WINDOW_SECONDS,
        )

    def wix_budget(self) -> ApiBudget:
        if self.shared_budgets:
            return shared_budget(
                self._budget_store(),
                "wix",
                self.wix_requests_per_minute * WIX_WINDOW_SECONDS / 60.0 * self.wix_budget_share,
                WIX_WINDOW_SECONDS,
                key=wix_key(self),
                holder=self.budget_holder("loader"),
            )
        return budget_for(
            "wix",
            self.wix_requests_per_minute * WIX_WINDOW_SECONDS / 60.0,
            process_share(self.wix_budget_share, self.replicas),
            WIX_WINDOW_SECONDS,
        )

    def _budget_store(self) -> BudgetStore:
        return BudgetStore.for_dsn(self.postgres_dsn.get_secret_value())


def budget_for(name: str, per_window: float, share: float, window_seconds: float) -> ApiBudget:
    """``share`` of ``per_window`` requests per ``window_seconds``; ``0`` lifts it.

    Whole permits per window as ``services.core.budget.budget_shape`` makes them (2.5 per second
    -> 2 per 0.8 s; 0.5 per second -> 1 per 2 s), the rule the extractor's budgets use too — so
    the loader can use all of its share. The budget adapts to 429s (``ApiBudget``).
    """
    return ApiBudget.for_rate(name, per_window * share, window_seconds)
