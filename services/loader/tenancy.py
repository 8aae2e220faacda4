"""The loader serving the tenants of the registry: their states and their clients.

Used only with ``tenants_from_registry`` on (off: one tenant, the environment's, as before).

- ``TenantStates`` follows the registry (``services.tenants.registry.DirectoryFollower``) and
  answers, per tenant, ``admission.admit``'s verdict: run, hold (paused; not read yet) or refuse
  (removed; absent after a refresh that started after the tenant was first looked for).
- ``TenantClients`` builds each tenant's clients, targets and executor lazily, the first time one
  of its commands runs, from ``settings_for(settings, tenant, credentials.resolve(ref))``: the
  deployment's settings with the tenant's overrides and secrets, through the same
  ``clients.build_clients`` (and so the same budget-building code, ``LoaderSettings.wix_budget``
  / ``poweroffice_budget``) as the single-tenant loader. Each tenant thus has its own clients
  and its own budgets — its credential's: tenants registered with the same ``credentials_ref``
  share them, and tenants on the deployment's own credentials share the deployment's. Clients
  are cached per tenant and registration version; the credentials are read again every
  ``tenant_credentials_check_seconds`` and a changed secret rebuilds them too (compared by a
  SHA-256 fingerprint kept in memory, never logged). Replaced clients are closed once the
  commands running on them finish (``lease``). A credential's budgets survive a rebuild whose
  budget settings did not change (their 429 adaptation and counters stay); a tenant whose rate
  settings differ gets new ones, which its credential then keeps.
- ``Breaker`` is the per-tenant circuit breaker's interface (a pure state machine, core's): the
  service counts a tenant's failures on it and holds the tenant's commands while it refuses.

Imports: the tenant registry (``services.tenants``), the core budget/errors modules and the
loader's clients, executor, settings and admission rule.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import SecretStr

from services.core.breaker import Phase as BreakerPhase
from services.core.breaker import TenantBreaker
from services.core.budget import ApiBudget
from services.core.errors import ConfigurationError
from services.loader.admission import Verdict, admit
from services.loader.clients import Clients, configured_budgets
from services.loader.executor import CommandExecutor
from services.loader.settings import LoaderSettings
from services.tenants import credentials
from services.tenants.model import Tenant, TenantError, settings_for
from services.tenants.registry import DirectoryFollower, Listener, TenantDirectory


class Breaker(Protocol):
    """A tenant's circuit breaker: ``allows()`` false while it is open."""

    def allows(self) -> bool: ...

    def record_success(self) -> None: ...

    def record_failure(self) -> None: ...


#: The ``system`` label of the loader's breakers: one per tenant, over its target APIs together.
LOADER_BREAKER_SYSTEM = "targets"


class LoaderBreaker:
    """Core's per-tenant breaker (``services/core/breaker.py``) as the loader asks it.

    The loader asks ``allows()`` whenever a worker *considers* a tenant, far more often than it
    calls the tenant's API; core's ``allows()`` hands out the half-open probe when asked, so
    asking it here would use the probe up without a call and leave the breaker half-open for
    good. Here ``allows()`` only looks (closed, or a cool-down that has passed); the transition
    to half-open happens when the outcome of an actual call is recorded."""

    def __init__(self, breaker: TenantBreaker) -> None:
        self.breaker = breaker

    def allows(self) -> bool:
        state = self.breaker.state
        if state.phase is BreakerPhase.CLOSED:
            return True
        if state.phase is BreakerPhase.HALF_OPEN:
            return not state.probing
        return self.breaker.retry_in() <= 0.0

    def record_success(self) -> None:
        self.breaker.allows()  # an open breaker whose cool-down passed: this call was the probe
        self.breaker.record_success()

    def record_failure(self) -> None:
        self.breaker.allows()
        self.breaker.record_failure("target_failure")


class TenantStates:
    """The registry as the loader sees it."""

    def __init__(self, directory: TenantDirectory, own_tenant: str, refresh_seconds: float) -> None:
        self.directory = directory
        self.own_tenant = own_tenant
        self._follower = DirectoryFollower(directory, refresh_seconds)
        self._first_looked: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._follower.start()

    def stop(self) -> None:
        self._follower.stop()

    def listen(self, listener: Listener) -> None:
        self.directory.listen(listener)

    def registration(self, tenant: str) -> Tenant | None:
        return self.directory.get(tenant)

    def verdict(self, tenant: str) -> Verdict:
        registration = self.directory.get(tenant)
        loaded = self.directory.loaded
        confirmed = False
        with self._lock:
            if registration is None and loaded:
                refreshes = self.directory.refreshes
                first = self._first_looked.setdefault(tenant, refreshes)
                # Two more refreshes: at least one of them started after the first look.
                confirmed = refreshes >= first + 2
            else:
                self._first_looked.pop(tenant, None)
        return admit(
            registration,
            own_tenant=tenant == self.own_tenant,
            loaded=loaded,
            absent_confirmed=confirmed,
        )


def fingerprint(secrets: dict[str, SecretStr]) -> str:
    """A digest of a tenant's secrets: tells a rotated secret apart without keeping it twice."""
    digest = hashlib.sha256()
    for name in sorted(secrets):
        digest.update(name.encode() + b"\0" + secrets[name].get_secret_value().encode() + b"\0")
    return digest.hexdigest()


@dataclass
class TenantWork:
    """One tenant's clients and the executor over their targets."""

    tenant: str
    version: int
    fingerprint: str
    settings: LoaderSettings
    clients: Clients
    executor: CommandExecutor
    checked_at: float
    users: int = 0
    retired: bool = False


Build = Callable[[LoaderSettings, dict[str, ApiBudget]], tuple[Clients, CommandExecutor]]
"""``(tenant settings, budgets to keep) -> (clients, executor)``."""


def _same_budget(kept: ApiBudget, fresh: ApiBudget) -> bool:
    return (kept.requests, kept.per_seconds, kept.adaptive) == (
        fresh.requests,
        fresh.per_seconds,
        fresh.adaptive,
    )


@dataclass
class TenantClients:
    """Each tenant's clients, built on first use and rebuilt when its registration or secrets
    change."""

    settings: LoaderSettings
    build: Build
    check_seconds: float = 30.0
    resolve: Callable[[str], dict[str, SecretStr]] = credentials.resolve
    clock: Callable[[], float] = time.monotonic
    credential_budgets: dict[str, dict[str, ApiBudget]] = field(default_factory=dict)
    """Budgets by credential reference, then system: tenants on one credential share them
    (``""``, the deployment's own credentials: the deployment's budgets)."""
    _work: dict[str, TenantWork] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @contextmanager
    def lease(self, registration: Tenant) -> Iterator[CommandExecutor]:
        """The tenant's executor for one command; its clients stay open until it is done.

        Raises ``ConfigurationError`` (naming the tenant and the field or reference, never a
        value) when its settings or credentials do not resolve."""
        with self._lock:
            work = self._current(registration)
            work.users += 1
        try:
            yield work.executor
        finally:
            with self._lock:
                work.users -= 1
                done = work.retired and work.users == 0
            if done:
                work.clients.close()

    def _current(self, registration: Tenant) -> TenantWork:
        tenant = registration.tenant
        now = self.clock()
        work = self._work.get(tenant)
        if (
            work is not None
            and work.version == registration.version
            and now - work.checked_at < self.check_seconds
        ):
            return work
        try:
            secrets = self.resolve(registration.credentials_ref)
            digest = fingerprint(secrets)
            unchanged = work is not None and work.version == registration.version
            if unchanged and work is not None and work.fingerprint == digest:
                work.checked_at = now
                return work
            tenant_settings = settings_for(self.settings, registration, secrets)
        except (TenantError, credentials.CredentialsError) as exc:
            raise ConfigurationError(str(exc)) from None
        ref = registration.credentials_ref
        kept = self._budgets_to_keep(ref, tenant_settings)
        clients, executor = self.build(tenant_settings, kept)
        self.credential_budgets[ref] = dict(clients.budgets)
        fresh = TenantWork(
            tenant, registration.version, digest, tenant_settings, clients, executor, now
        )
        self._work[tenant] = fresh
        if work is not None:
            self._retire(work)
        return fresh

    def _budgets_to_keep(self, ref: str, settings: LoaderSettings) -> dict[str, ApiBudget]:
        """The budgets of the credential ``ref`` that still fit ``settings`` (same rate)."""
        fresh = configured_budgets(settings)
        return {
            system: budget
            for system, budget in self.credential_budgets.get(ref, {}).items()
            if system in fresh and _same_budget(budget, fresh[system])
        }

    def _retire(self, work: TenantWork) -> None:
        work.retired = True
        if work.users == 0:
            work.clients.close()

    def budgets(self) -> list[tuple[str, ApiBudget]]:
        """(tenant, budget) of the clients in use."""
        with self._lock:
            return [
                (tenant, budget)
                for tenant, work in self._work.items()
                for budget in work.clients.budgets.values()
            ]

    def close(self) -> None:
        with self._lock:
            works = list(self._work.values())
            self._work.clear()
            for work in works:
                self._retire(work)
