"""End to end, many tenants on one running stack: real processes, real Kafka and PostgreSQL, the
multi-tenant simulators, tenants registered as an operator would (``services.demo.tenants``).

One stack for the module: two extractor replicas, the mapper and the loader, all serving the
registry's tenants. Three tenants are registered before the start (``tenant-001`` and
``tenant-002`` share ten people's e-mails and phones); a fourth is added while the stack runs.
What is checked is read from each tenant's two systems themselves and from the mapper's tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simtenants import PowerOfficeSimulators
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simsites import WixSites
from services.core.codec import default_codec
from services.core.tenant_erasure import tenant_keys
from services.demo import mapperdb
from services.demo.main import PO_RESOURCE
from services.demo.stack import Stack
from services.demo.tenants import TenantsRun, stack_settings
from services.mapper.domain import read_hub
from services.mapper.settings import MapperSettings
from services.tenants.registry import TenantDirectory, TenantRegistry
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

STARTING = ["tenant-001", "tenant-002", "tenant-003"]
LATE = "tenant-004"


@pytest.fixture(scope="module")
def run(
    infra_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TenantsRun]:
    stack = Stack(
        infra_env["TETHER_KAFKA_BOOTSTRAP_SERVERS"],
        infra_env["TETHER_POSTGRES_DSN"],
        tmp_path_factory.mktemp("tenants"),
        simulator_tenants=4,
    )
    running = TenantsRun(
        stack,
        4,
        extractor_replicas=2,
        records=30,
        share_people_between=("tenant-001", "tenant-002"),
    )
    try:
        stack.create_database()
        stack.start_simulators()
        running.seed()
        stack.provision_topics()
        running.register(STARTING)
        late_plan = running.plans.pop(LATE)
        running.start()
        running.wait(timeout=300)
        running.plans[LATE] = late_plan
        yield running
    finally:
        stack.stop()
        stack.drop_database()


def registry(run: TenantsRun) -> TenantRegistry:
    return TenantRegistry(stack_settings(run.stack), default_codec())


def phase(run: TenantsRun, tenant: str) -> str | None:
    directory = TenantDirectory(stack_settings(run.stack), default_codec())
    try:
        directory.refresh()
        status = directory.status(tenant)
        return status.phase if status else None
    finally:
        directory.close()


def po_admin(run: TenantsRun, tenant: str) -> PowerOfficeSimulatorAdmin:
    return PowerOfficeSimulatorAdmin(
        PowerOfficeSimulators.admin_root(run.stack.poweroffice_url, tenant)
    )


def wix_admin(run: TenantsRun, tenant: str) -> WixAdmin:
    return WixAdmin(WixSites.admin_root(run.stack.wix_url, tenant))


def an_employee_link(run: TenantsRun, tenant: str) -> tuple[str, str]:
    """(employee id, Wix contact id) of one of ``tenant``'s active links."""
    for link in mapperdb.links(run.stack.database_dsn, tenant):
        employees = [m for m in link.members if m[0] == "employees"]
        if link.status == "active" and link.contact_id and employees:
            return employees[0][1], str(link.contact_id)
    raise AssertionError(f"{tenant} has no linked employee")


def edit_last_name(run: TenantsRun, tenant: str, value: str) -> Callable[[], bool]:
    """Edit one of ``tenant``'s employees in PowerOffice; returns 'has it reached Wix?'."""
    employee, contact = an_employee_link(run, tenant)
    with po_admin(run, tenant) as po:
        po.edit(PO_RESOURCE["employees"], int(employee), {"LastName": value})

    def arrived() -> bool:
        with wix_admin(run, tenant) as wix:
            return read_hub(wix.contact(contact)).get("last_name") == value

    return arrived


def test_every_tenant_syncs_exactly_and_shared_people_never_cross_link(run: TenantsRun) -> None:
    for tenant in STARTING:
        result = run.check(tenant)
        assert result["misses"] == [], (tenant, result)
        assert result["records"] == 30
    with psycopg.connect(run.stack.database_dsn) as conn:
        crossed = conn.execute(
            "SELECT count(*) FROM mapper_link_members m JOIN mapper_links l USING (link_id) "
            "WHERE m.tenant <> l.tenant"
        ).fetchone()
        keys = conn.execute(
            "SELECT count(*) FROM mapper_link_keys k JOIN mapper_links l USING (link_id) "
            "WHERE k.tenant <> l.tenant"
        ).fetchone()
    assert crossed == (0,) and keys == (0,)
    # the shared people exist in both tenants' sites, each linked within its own tenant
    with wix_admin(run, "tenant-001") as one, wix_admin(run, "tenant-002") as two:
        emails_one = {read_hub(c).get("email") for c in one.contacts()} - {None}
        emails_two = {read_hub(c).get("email") for c in two.contacts()} - {None}
    assert len(emails_one & emails_two) >= 5


def test_a_tenant_added_to_the_running_stack_syncs_without_a_restart(run: TenantsRun) -> None:
    pids = {name: p.popen.pid for name, p in run.stack.processes.items() if p.popen}
    run.register([LATE])
    plan = run.plans[LATE]
    assert eventually(
        lambda: (
            (s := mapperdb.tenant_sync_states(run.stack.database_dsn).get(LATE)) is not None
            and s.linked + s.in_review >= plan.total
            and s.pending_commands == 0
        ),
        timeout=180,
    )
    assert run.check(LATE)["misses"] == []
    assert {name: p.popen.pid for name, p in run.stack.processes.items() if p.popen} == pids
    assert eventually(lambda: phase(run, LATE) == "live")


def test_pause_holds_a_tenants_changes_and_resume_delivers_them(run: TenantsRun) -> None:
    reg = registry(run)
    try:
        reg.set_state("tenant-003", "paused", by="test", reason="pause test")
        assert eventually(lambda: phase(run, "tenant-003") == "paused")
        paused_arrived = edit_last_name(run, "tenant-003", "Paused0001")
        control = edit_last_name(run, "tenant-001", "Control0001")
        # An active tenant's edit arrives; by then the paused tenant's has not.
        assert eventually(control)
        assert not paused_arrived()
        reg.set_state("tenant-003", "active", by="test", reason="resume test")
        assert eventually(paused_arrived)
    finally:
        reg.close()


def test_a_failing_tenant_does_not_hold_up_another_tenants_edits(run: TenantsRun) -> None:
    with wix_admin(run, "tenant-002") as failing:
        failing.add_fault(kind="status", path="^/contacts/v4/contacts", method="PATCH", status=503)
        try:
            broken = edit_last_name(run, "tenant-002", "Broken0001")
            healthy = edit_last_name(run, "tenant-001", "Healthy0001")
            assert eventually(healthy)
            assert not broken()
        finally:
            failing.clear_faults()
    assert eventually(broken, timeout=180)


def test_remove_then_erase_leaves_nothing_of_the_tenant(run: TenantsRun) -> None:
    from services.erase_command import erase

    reg = registry(run)
    try:
        reg.set_state("tenant-003", "removed", by="test", reason="offboarding test")
    finally:
        reg.close()
    assert eventually(lambda: phase(run, "tenant-003") in ("stopped", None))
    others = {
        t: len(mapperdb.links(run.stack.database_dsn, t)) for t in ("tenant-001", "tenant-002")
    }

    def drained() -> bool:
        state = mapperdb.tenant_sync_states(run.stack.database_dsn).get("tenant-003")
        return state is None or (state.pending_commands == 0 and state.unproduced_outbox == 0)

    assert eventually(drained)
    settings = MapperSettings(
        kafka_bootstrap_servers=run.stack.kafka_bootstrap,
        topic_prefix=run.stack.topic_prefix,
        postgres_dsn=run.stack.database_dsn,
    )
    report: dict[str, Any] = erase(settings, "tenant-003", execute=True)
    assert sum(report["postgres_rows"].values()) > 0
    with psycopg.connect(run.stack.database_dsn) as conn:
        tables = [
            table
            for (table,) in conn.execute(
                "SELECT table_name FROM information_schema.columns "
                "WHERE column_name = 'tenant' AND table_schema = 'public'"
            )
        ]
        left = {
            table: conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE tenant = %s").format(sql.Identifier(table)),
                ("tenant-003",),
            ).fetchone()[0]  # type: ignore[index]
            for table in tables
        }
    assert tables and {t: n for t, n in left.items() if n} == {}
    assert set(tenant_keys(settings, "tenant-003").values()) == {0}
    assert {
        t: len(mapperdb.links(run.stack.database_dsn, t)) for t in ("tenant-001", "tenant-002")
    } == others
    assert phase(run, "tenant-003") is None
