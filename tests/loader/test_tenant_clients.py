"""``tenancy``: a tenant's clients built once per registration version and secrets, old ones
closed after their last command; an absent tenant refused only after the registry was re-read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import SecretStr

from services.core.budget import ApiBudget
from services.core.errors import ConfigurationError
from services.core.settings import TetherSettings
from services.loader.admission import TENANT_UNKNOWN, Admission, Verdict
from services.loader.clients import Clients, configured_budgets
from services.loader.executor import CommandExecutor
from services.loader.settings import LoaderSettings
from services.loader.tenancy import TenantClients, TenantStates
from services.tenants import credentials
from services.tenants.model import Tenant
from services.tenants.registry import TenantDirectory


class FakeClient:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Builds:
    """A ``Build`` recording the settings and kept budgets of each build."""

    def __init__(self) -> None:
        self.built: list[tuple[LoaderSettings, Clients]] = []
        self.kept: list[dict[str, ApiBudget]] = []

    def __call__(
        self, settings: LoaderSettings, kept: dict[str, ApiBudget]
    ) -> tuple[Clients, CommandExecutor]:
        budgets = {**configured_budgets(settings), **kept}
        clients = Clients(clients={"wix": cast(Any, FakeClient())}, budgets=budgets)
        self.built.append((settings, clients))
        self.kept.append(kept)
        return clients, CommandExecutor({})


def base() -> LoaderSettings:
    return LoaderSettings(
        wix_api_key=SecretStr("deployment-key"), wix_site_id="deployment-site", tenant="default"
    )


def registration(path: Path, version: int = 1, **settings: str) -> Tenant:
    return Tenant(tenant="acme", settings=settings, credentials_ref=f"dir:{path}", version=version)


def test_built_once_per_version_with_the_tenants_settings_and_secrets(tmp_path: Path) -> None:
    credentials.write(tmp_path, {"wix_api_key": "acme-key"})
    builds = Builds()
    tenants = TenantClients(base(), builds, check_seconds=60)
    acme = registration(tmp_path, wix_site_id="acme-site")
    for _ in range(3):
        with tenants.lease(acme):
            pass
    assert len(builds.built) == 1
    settings, clients = builds.built[0]
    assert (settings.tenant, settings.wix_site_id) == ("acme", "acme-site")
    assert settings.wix_api_key.get_secret_value() == "acme-key"
    # A new version (its settings changed) rebuilds; the old clients are closed.
    with tenants.lease(acme.changed(by="t", reason="", settings={"wix_site_id": "new-site"})):
        pass
    assert len(builds.built) == 2 and builds.built[1][0].wix_site_id == "new-site"
    assert cast(Any, clients.clients["wix"]).closed
    assert builds.kept[1].keys() == {"poweroffice", "wix"}  # same budget settings: kept


def test_a_rotated_secret_rebuilds_after_the_check_interval(tmp_path: Path) -> None:
    credentials.write(tmp_path, {"wix_api_key": "first"})
    now = [0.0]
    builds = Builds()
    tenants = TenantClients(base(), builds, check_seconds=30, clock=lambda: now[0])
    acme = registration(tmp_path)
    with tenants.lease(acme):
        pass
    credentials.write(tmp_path, {"wix_api_key": "second"})
    now[0] = 10.0
    with tenants.lease(acme):
        pass
    assert len(builds.built) == 1  # not read again before the interval
    now[0] = 31.0
    with tenants.lease(acme):
        pass
    assert [s.wix_api_key.get_secret_value() for s, _ in builds.built] == ["first", "second"]
    now[0] = 70.0
    with tenants.lease(acme):
        pass
    assert len(builds.built) == 2  # read again, unchanged: kept


def test_clients_in_use_are_closed_after_their_last_command(tmp_path: Path) -> None:
    credentials.write(tmp_path, {"wix_api_key": "k"})
    builds = Builds()
    tenants = TenantClients(base(), builds)
    acme = registration(tmp_path)
    with tenants.lease(acme):
        old = cast(Any, builds.built[0][1].clients["wix"])
        with tenants.lease(acme.changed(by="t", reason="", settings={"wix_site_id": "s2"})):
            assert not old.closed  # a command still runs on it
        assert not old.closed
    assert old.closed
    tenants.close()
    assert cast(Any, builds.built[1][1].clients["wix"]).closed


def test_a_budget_setting_change_builds_new_budgets(tmp_path: Path) -> None:
    credentials.write(tmp_path, {"wix_api_key": "k"})
    builds = Builds()
    tenants = TenantClients(base(), builds)
    acme = registration(tmp_path)
    with tenants.lease(acme):
        pass
    faster = acme.changed(by="t", reason="", settings={"poweroffice_requests_per_second": "3"})
    with tenants.lease(faster):
        pass
    assert builds.kept[1].keys() == {"wix"}
    assert builds.built[1][1].budgets["poweroffice"].rate_per_second == pytest.approx(1.5)


def test_tenants_on_one_credential_share_its_budgets(tmp_path: Path) -> None:
    credentials.write(tmp_path / "shared", {"wix_api_key": "k"})
    deployment_budgets = configured_budgets(base())
    builds = Builds()
    tenants = TenantClients(base(), builds, credential_budgets={"": deployment_budgets})
    ref = f"dir:{tmp_path / 'shared'}"
    for name in ("acme", "globex"):
        with tenants.lease(Tenant(tenant=name, credentials_ref=ref)):
            pass
    with tenants.lease(Tenant(tenant="initech")):  # the deployment's own credentials
        pass
    acme, globex, initech = (clients.budgets for _, clients in builds.built)
    assert acme["wix"] is globex["wix"] and acme["poweroffice"] is globex["poweroffice"]
    assert initech["wix"] is deployment_budgets["wix"]
    assert acme["wix"] is not initech["wix"]
    assert len(tenants.budgets()) == 6


def test_unresolvable_credentials_or_settings_are_a_configuration_error(tmp_path: Path) -> None:
    tenants = TenantClients(base(), Builds())
    missing = registration(tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="no such directory"), tenants.lease(missing):
        pass
    credentials.write(tmp_path, {"wix_api_key": "k"})
    bad = registration(tmp_path, loader_concurrency="many")
    refused = pytest.raises(ConfigurationError, match="loader_concurrency")
    with refused as raised, tenants.lease(bad):
        pass
    assert "many" not in str(raised.value)


class StubDirectory:
    """What ``TenantStates`` reads of a ``TenantDirectory``."""

    def __init__(self) -> None:
        self.loaded = False
        self.refreshes = 0
        self.registrations: dict[str, Tenant] = {}

    def get(self, tenant: str) -> Tenant | None:
        return self.registrations.get(tenant)

    def close(self) -> None:
        return None


def test_an_absent_tenant_is_refused_only_after_a_later_refresh_missed_it() -> None:
    directory = StubDirectory()
    states = TenantStates(cast(TenantDirectory, directory), "default", refresh_seconds=1)
    assert states.verdict("ghost") == Verdict(Admission.HOLD)  # not read yet
    directory.loaded, directory.refreshes = True, 1
    assert states.verdict("ghost") == Verdict(Admission.HOLD)  # first looked for now
    assert states.verdict("default") == Verdict(Admission.RUN)  # the deployment's own
    directory.refreshes = 2
    assert states.verdict("ghost") == Verdict(Admission.HOLD)  # may have started before
    directory.refreshes = 3
    assert states.verdict("ghost") == Verdict(Admission.REFUSE, TENANT_UNKNOWN)
    directory.registrations["ghost"] = Tenant(tenant="ghost")
    assert states.verdict("ghost") == Verdict(Admission.RUN)


def test_registry_off_by_default_and_the_cap_per_tenant() -> None:
    assert TetherSettings().tenant == "default"
    off = LoaderSettings(loader_concurrency=8)
    assert (off.tenants_from_registry, off.tenant_max_running()) == (False, 8)
    on = LoaderSettings(loader_concurrency=8, tenants_from_registry=True)
    assert on.tenant_max_running() == 7
    alone = LoaderSettings(loader_concurrency=1, tenants_from_registry=True)
    assert alone.tenant_max_running() == 1
    capped = LoaderSettings(loader_concurrency=8, loader_tenant_max_running=3)
    assert capped.tenant_max_running() == 3
