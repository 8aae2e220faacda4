"""The loader serving the tenant registry, on real Kafka, each tenant with simulators of its own.

``acme`` and ``globex`` each have a Wix site and a PowerOffice client (a simulator pair on their
own ports, own keys); their registrations point there and their credentials are files
(``dir:`` references). The deployment's own simulators (``sims``) must see none of their
traffic.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from services.connectors.poweroffice.simulator import PowerOfficeSimulator, SimulatorLimits
from services.connectors.simkit import FaultRule, ServerThread
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simulator import WixSimulator
from services.loader.plan import Action, LoaderCommand
from services.tenants import credentials
from services.tenants.model import new_tenant
from services.tenants.registry import TenantRegistry
from tests.loader.support import (
    CODEC,
    PO_CREDS,
    LoaderHarness,
    Stack,
    new_id,
    po_command,
    wix_create,
    wix_update,
)

TENANTS = ("acme", "globex")
EMAIL = "info.emails[primary].email"


@dataclass
class TenantSims:
    name: str
    wix: WixSimulator
    wix_server: ServerThread
    po: PowerOfficeSimulator
    po_server: ServerThread

    @property
    def wix_admin(self) -> WixAdmin:
        return WixAdmin(self.wix_server.url)

    def overrides(self) -> dict[str, str]:
        return {
            "wix_base_url": self.wix_server.url,
            "wix_site_id": self.wix.site_id,
            "poweroffice_base_url": self.po.base_url(self.po_server),
            "poweroffice_token_url": self.po.token_url(self.po_server),
        }

    def secrets(self) -> dict[str, str]:
        return {
            "wix_api_key": self.wix.api_key,
            "poweroffice_app_key": PO_CREDS.application_key,
            "poweroffice_client_key": PO_CREDS.client_key,
            "poweroffice_subscription_key": PO_CREDS.subscription_key,
        }


@pytest.fixture(scope="module")
def tenant_sims() -> Iterator[dict[str, TenantSims]]:
    started: dict[str, TenantSims] = {}
    for name in TENANTS:
        wix = WixSimulator(api_key=f"{name}-wix-key", site_id=f"{name}-site", rate_limit=0)
        po = PowerOfficeSimulator(limits=SimulatorLimits.lifted())
        started[name] = TenantSims(name, wix, wix.server().start(), po, po.serve().start())
    yield started
    for sims in started.values():
        sims.wix_server.stop()
        sims.po_server.stop()
        sims.wix.close()


@pytest.fixture
def own(tenant_sims: dict[str, TenantSims]) -> dict[str, TenantSims]:
    for sims in tenant_sims.values():
        sims.wix.reset()
        sims.po.reset()
    return tenant_sims


@dataclass
class Deployment:
    loader: LoaderHarness
    registry: TenantRegistry
    tmp: Path

    def add(self, sims: TenantSims, *, paused: bool = False) -> None:
        directory = self.tmp / sims.name
        credentials.write(directory, sims.secrets())
        self.registry.add(
            new_tenant(
                sims.name,
                settings=sims.overrides(),
                credentials_ref=f"dir:{directory}",
                by="test",
                paused=paused,
            )
        )

    def set_state(self, tenant: str, state: str) -> None:
        self.registry.set_state(tenant, state, by="test", reason="test")  # type: ignore[arg-type]
        self.await_state(tenant, state)

    def await_state(self, tenant: str, state: str, timeout: float = 20.0) -> None:
        """Wait until the loader's own copy of the registry has the state."""
        assert self.loader.service is not None and self.loader.service.tenants is not None
        directory = self.loader.service.tenants.directory
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = directory.get(tenant)
            if found is not None and found.state == state:
                return
            time.sleep(0.05)
        raise AssertionError(f"the loader did not see {tenant} {state}")

    def metric(self, name: str, **labels: str) -> float:
        assert self.loader.ctx is not None
        text = generate_latest(self.loader.ctx.registry).decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        found = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture
def deployment(
    sims: Stack,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Deployment]:
    overrides = dict(getattr(request, "param", {}))
    options = overrides.pop("service_options", {})
    loader = LoaderHarness(
        sims,
        kafka_bootstrap,
        topic_prefix,
        tenants_from_registry=True,
        tenants_refresh_seconds=0.2,
        **overrides,
    )
    registry = TenantRegistry(loader.settings, CODEC)
    loader.start(**options)
    yield Deployment(loader, registry, tmp_path)
    registry.close()
    loader.close()


def of(tenant: str, command: LoaderCommand) -> LoaderCommand:
    return replace(command, tenant=tenant)


def test_each_tenant_writes_only_to_its_own_apis_with_its_own_credentials(
    deployment: Deployment, own: dict[str, TenantSims], sims: Stack
) -> None:
    for tenant_sims in own.values():
        deployment.add(tenant_sims)
    loader = deployment.loader
    sent: dict[str, list[LoaderCommand]] = {}
    for name in TENANTS:
        sent[name] = [
            loader.send(of(name, wix_create({EMAIL: f"{name}{i}@example.com"}))) for i in range(3)
        ]
        sent[name].append(
            loader.send(
                of(
                    name,
                    po_command(
                        "customers",
                        Action.CREATE,
                        fields={"IsPerson": "true", "FirstName": name, "LastName": "Owner"},
                        idempotency_key=f"{name}-link",
                    ),
                )
            )
        )
    for name in TENANTS:
        statuses = [loader.wait_outcome(c.command_id)["status"] for c in sent[name]]
        assert statuses == ["CREATED"] * 4
    for name, tenant_sims in own.items():
        contacts = tenant_sims.wix_admin.contacts()
        emails = sorted(e["email"] for c in contacts for e in c["info"]["emails"]["items"])
        assert emails == [f"{name}{i}@example.com" for i in range(3)]
        customers = [r["record"] for r in tenant_sims.po.store.admin_list("customers")]
        assert [c["FirstName"] for c in customers] == [name]
    # The deployment's own systems saw nothing.
    assert sims.wix_admin.contacts() == []
    assert sims.po.store.admin_list("customers") == []
    assert (
        deployment.metric(
            "tether_loader_tenant_outcomes_total", tenant="acme", system="wix", status="CREATED"
        )
        == 3.0
    )


def test_a_paused_tenants_commands_are_held_then_applied_in_order_after_resume(
    deployment: Deployment, own: dict[str, TenantSims]
) -> None:
    deployment.add(own["acme"])
    deployment.add(own["globex"], paused=True)
    deployment.await_state("globex", "paused")
    loader = deployment.loader
    contact = own["globex"].wix_admin.seed([{"info": {"name": {"first": "Zero"}}}])[0]
    link = new_id()
    first = loader.send(of("globex", wix_update(contact, {"info.name.first": "One"}, link_id=link)))
    second = loader.send(
        of(
            "globex",
            wix_update(
                contact,
                {"info.name.first": "Two"},
                link_id=link,
                expected_revision=None,
                target_record=None,
            ),
        )
    )
    later = loader.send(of("acme", wix_create({EMAIL: "a@example.com"})))
    assert loader.wait_outcome(later.command_id)["status"] == "CREATED"
    deadline = time.monotonic() + 20
    while deployment.metric("tether_loader_tenant_commands", tenant="globex", state="held") < 2:
        assert time.monotonic() < deadline, "globex's commands were not held"
        time.sleep(0.05)
    assert loader.outcomes_for(first.command_id) == loader.outcomes_for(second.command_id) == []
    assert own["globex"].wix_admin.contact(contact["id"])["info"]["name"]["first"] == "Zero"

    deployment.set_state("globex", "active")
    assert loader.wait_outcome(first.command_id)["status"] == "APPLIED"
    assert loader.wait_outcome(second.command_id)["status"] == "APPLIED"
    ids = [o["command_id"] for o in loader.outcomes() if o["link_id"] == link]
    assert ids == [first.command_id, second.command_id]
    assert own["globex"].wix_admin.contact(contact["id"])["info"]["name"]["first"] == "Two"
    assert loader.dead_letters() == []


def test_commands_of_a_removed_or_unknown_tenant_fail_with_the_reason_and_write_nothing(
    deployment: Deployment, own: dict[str, TenantSims]
) -> None:
    deployment.add(own["acme"])
    deployment.set_state("acme", "removed")
    loader = deployment.loader
    removed = loader.send(of("acme", wix_create({EMAIL: "r@example.com"})))
    unknown = loader.send(of("ghost", wix_create({EMAIL: "g@example.com"})))
    outcomes = {
        name: loader.wait_outcome(command.command_id)
        for name, command in (("removed", removed), ("unknown", unknown))
    }
    assert {n: (o["status"], o["error_code"]) for n, o in outcomes.items()} == {
        "removed": ("FAILED", "TENANT_REMOVED"),
        "unknown": ("FAILED", "TENANT_UNKNOWN"),
    }
    assert outcomes["removed"]["error_message"] == ("tenant 'acme' is removed: command not applied")
    letters = loader.wait_dead_letters(2)
    assert sorted((letter["tenant"], letter["error_class"]) for letter in letters) == [
        ("acme", "TENANT_REMOVED"),
        ("ghost", "TENANT_UNKNOWN"),
    ]
    assert own["acme"].wix_admin.contacts() == []
    assert sum(own["acme"].wix.counters.values()) == 0  # not one request


@pytest.mark.parametrize(
    "deployment", [{"loader_concurrency": 2, "loader_client_timeout_seconds": 10.0}], indirect=True
)
def test_a_slow_tenant_does_not_hold_back_another_tenants_commands(
    deployment: Deployment, own: dict[str, TenantSims]
) -> None:
    for tenant_sims in own.values():
        deployment.add(tenant_sims)
    own["acme"].wix.faults.add(FaultRule(kind="latency", path="contacts", seconds=2.0))
    loader = deployment.loader
    slow = [loader.send(of("acme", wix_create({EMAIL: f"a{i}@example.com"}))) for i in range(4)]
    fast = [loader.send(of("globex", wix_create({EMAIL: f"g{i}@example.com"}))) for i in range(5)]
    assert [loader.wait_outcome(c.command_id)["status"] for c in fast] == ["CREATED"] * 5
    # acme (2 s per request, at most one of the two workers: its cap) has finished at most its
    # first command: globex's, sent after all of acme's, did not queue behind them (with one
    # FIFO queue per worker, each would have waited for the acme commands ahead of it).
    done_slow = sum(bool(loader.outcomes_for(c.command_id)) for c in slow)
    assert done_slow <= 1
    assert [loader.wait_outcome(c.command_id)["status"] for c in slow] == ["CREATED"] * 4
    assert deployment.metric("tether_loader_tenant_commands", tenant="acme", state="running") == 0


@dataclass
class FirstFailureBreaker:
    """Opens at the first failure; the test closes it."""

    open: bool = False
    failures: list[str] = field(default_factory=list)

    def allows(self) -> bool:
        return not self.open

    def record_success(self) -> None:
        return None

    def record_failure(self) -> None:
        self.failures.append("failure")
        self.open = True


BREAKERS: dict[str, FirstFailureBreaker] = {}


def breaker_for(tenant: str) -> FirstFailureBreaker:
    return BREAKERS.setdefault(tenant, FirstFailureBreaker())


@pytest.mark.parametrize(
    "deployment",
    [
        {
            "loader_retry_max_attempts": 2,
            "service_options": {"breaker_for": breaker_for},
        }
    ],
    indirect=True,
)
def test_a_failing_tenants_open_breaker_holds_its_commands_and_not_the_others(
    deployment: Deployment, own: dict[str, TenantSims]
) -> None:
    BREAKERS.clear()
    for tenant_sims in own.values():
        deployment.add(tenant_sims)
    own["acme"].wix.faults.add(FaultRule(kind="status", path="contacts", status=503))
    loader = deployment.loader
    first = loader.send(of("acme", wix_create({EMAIL: "a0@example.com"})))
    failed = loader.wait_outcome(first.command_id)
    assert (failed["status"], failed["error_code"]) == ("FAILED", "ServerError")
    assert BREAKERS["acme"].open and BREAKERS["acme"].failures == ["failure"]

    waiting = [loader.send(of("acme", wix_create({EMAIL: f"a{i}@example.com"}))) for i in (1, 2)]
    others = [loader.send(of("globex", wix_create({EMAIL: f"g{i}@example.com"}))) for i in (1, 2)]
    assert [loader.wait_outcome(c.command_id)["status"] for c in others] == ["CREATED"] * 2
    deadline = time.monotonic() + 20
    while deployment.metric("tether_loader_tenant_commands", tenant="acme", state="held") < 2:
        assert time.monotonic() < deadline, "acme's commands were not held"
        time.sleep(0.05)
    assert [loader.outcomes_for(c.command_id) for c in waiting] == [[], []]

    own["acme"].wix.faults.clear()
    BREAKERS["acme"].open = False  # its cool-down ended: the held commands run
    assert [loader.wait_outcome(c.command_id)["status"] for c in waiting] == ["CREATED"] * 2
    assert "globex" not in BREAKERS or not BREAKERS["globex"].failures


@pytest.mark.parametrize(
    "deployment",
    [{"loader_concurrency": 2, "loader_max_in_flight": 8, "loader_tenant_max_in_flight": 2}],
    indirect=True,
)
def test_a_tenants_backlog_larger_than_the_read_buffer_does_not_hold_back_another_tenant(
    deployment: Deployment, own: dict[str, TenantSims]
) -> None:
    for tenant_sims in own.values():
        deployment.add(tenant_sims)
    own["acme"].wix.faults.add(FaultRule(kind="latency", path="contacts", seconds=0.5))
    loader = deployment.loader
    backlog = [loader.send(of("acme", wix_create({EMAIL: f"a{i}@example.com"}))) for i in range(30)]
    behind = [loader.send(of("globex", wix_create({EMAIL: f"g{i}@example.com"}))) for i in range(5)]
    assert [loader.wait_outcome(c.command_id)["status"] for c in behind] == ["CREATED"] * 5
    # globex's commands sit behind 30 of acme's, far more than the buffer holds (8): acme's past
    # its share (2) were passed over, so globex's were read and ran while acme's backlog waits.
    done_backlog = sum(bool(loader.outcomes_for(c.command_id)) for c in backlog)
    assert done_backlog < 15
    assert deployment.metric("tether_loader_tenant_passed_over_total", tenant="acme") > 0
    # Every passed-over command is read again and applied, once.
    for command in backlog:
        assert loader.wait_outcome(command.command_id, timeout=60)["status"] == "CREATED"
    assert all(len(loader.outcomes_for(c.command_id)) == 1 for c in backlog + behind)
    assert len(own["acme"].wix_admin.contacts()) == 30
