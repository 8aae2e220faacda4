"""Many tenants on one deployment, end to end: ``tether demo --tenants N`` and ``bench/tenants.py``.

A :class:`TenantsRun` on a :class:`~services.demo.stack.Stack` whose simulators serve N tenants
(``Stack(simulator_tenants=N)``):

1. **register** each tenant in the registry (``tether tenants add`` semantics, through
   ``TenantRegistry``): its non-secret settings in the registry, its secrets as files in a
   credentials directory under the run directory (``dir:`` reference) — as an operator would;
2. **seed** each tenant's PowerOffice client and Wix site with its own data (50-200 records,
   ``tenantseed.generate_tenant``), optionally sharing people between two tenants;
3. **start** the mapper, the loader and ``extractor_replicas`` extractors, all reading the
   registry (``TETHER_TENANTS_FROM_REGISTRY``) and sharing each credential's API budget through
   PostgreSQL (``TETHER_SHARED_BUDGETS``);
4. **wait** until every tenant's records are linked or in review with nothing in flight, noting
   when each tenant got there (:meth:`wait`), printing progress;
5. **check** every tenant against its seed's exact expectations, reading both systems per tenant
   through the simulators' admin APIs (:meth:`check`), and count each tenant's API calls and 429s.

The extractor replicas are processes ``extractor-1`` … ``extractor-K`` (:meth:`kill_extractor`
kills one: its tenants move to the others). The simulators deliver Wix webhooks to
``extractor-1``'s public port — standing in for the ingress — which forwards a tenant it does not
own to its owner.

Imports: the demo's stack, seeding, verification and database views, the simulators' admin
clients, and the tenant registry.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.connectors.poweroffice.admin import PowerOfficeSimulatorAdmin
from services.connectors.poweroffice.simtenants import PowerOfficeSimulators
from services.connectors.seed import SeedData
from services.connectors.simkit import tenant_ids
from services.connectors.tenantseed import generate_tenant, share_people
from services.connectors.wix.admin import WixAdmin
from services.connectors.wix.simsites import WixSites
from services.core.codec import default_codec
from services.core.settings import TetherSettings
from services.demo import apicounts, mapperdb
from services.demo.seeding import Seeded
from services.demo.stack import Process, Stack, free_port
from services.demo.tenant_simulators import seed_tenant, tenant_overrides
from services.demo.verify import reconcile
from services.tenants import credentials
from services.tenants.model import new_tenant
from services.tenants.registry import TenantRegistry

#: What makes a service serve the registry's tenants, and share budgets through PostgreSQL.
REGISTRY_ENV = {"TETHER_TENANTS_FROM_REGISTRY": "true", "TETHER_SHARED_BUDGETS": "true"}


def stack_settings(stack: Stack) -> TetherSettings:
    """The Kafka side of a stack's settings (its broker and topics), for tools that read it."""
    return TetherSettings(
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        topic_prefix=stack.topic_prefix,
        topic_partitions=3,
    )


@dataclass
class TenantPlan:
    tenant: str
    data: SeedData
    seeded: Seeded = field(default_factory=Seeded)
    synced_after: float | None = None

    @property
    def total(self) -> int:
        counts = self.seeded.counts()
        return counts["employees"] + counts["customers"] + counts["contact_persons"]


@dataclass
class TenantsRun:
    stack: Stack
    tenants: int
    extractor_replicas: int = 1
    records: int | None = None  # per tenant; None: 50-200, by tenant
    share_people_between: tuple[str, str] | None = None
    say: Callable[[str], None] = print
    plans: dict[str, TenantPlan] = field(default_factory=dict)
    started_at: float = 0.0

    def __post_init__(self) -> None:
        self.stack.extra_env.update(REGISTRY_ENV)
        self.extractors = [f"extractor-{i + 1}" for i in range(self.extractor_replicas)]

    @property
    def tenant_ids(self) -> list[str]:
        return tenant_ids(self.tenants)

    def registry_settings(self) -> TetherSettings:
        return stack_settings(self.stack)

    # -- set-up ---------------------------------------------------------------------------------

    def seed(self) -> None:
        data = {t: generate_tenant(t, records=self.records) for t in self.tenant_ids}
        if self.share_people_between is not None:
            source, target = self.share_people_between
            data[target] = share_people(data[source], data[target], 10).data
        for tenant, seed in data.items():
            plan = TenantPlan(tenant, seed)
            plan.seeded = seed_tenant(tenant, seed, self.stack.poweroffice_url, self.stack.wix_url)
            self.plans[tenant] = plan
        total = sum(plan.total for plan in self.plans.values())
        self.say(f"seeded {len(self.plans)} tenants, {total} PowerOffice records")

    def register(self, tenants: list[str] | None = None) -> None:
        """Register tenants as an operator would: settings in the registry, secrets in files."""
        registry = TenantRegistry(self.registry_settings(), default_codec())
        try:
            for tenant in tenants or self.tenant_ids:
                overrides = tenant_overrides(tenant)
                directory = self.stack.run_dir / "tenant-credentials" / tenant
                credentials.write(directory, overrides.secrets)
                registry.add(
                    new_tenant(
                        tenant,
                        settings=overrides.settings,
                        credentials_ref=f"dir:{directory}",
                        by="demo",
                        reason="onboarded by tether demo",
                    )
                )
        finally:
            registry.close()

    def start(self) -> None:
        self.stack.provision_topics()
        self.stack.start_services(("mapper", "loader"))
        for name in self.extractors:
            self.start_extractor(name)
        for name in self.extractors:
            self.stack.processes[name].wait_http("/readyz", timeout=120)
        self.started_at = time.monotonic()

    def start_extractor(self, name: str) -> Process:
        """One extractor replica; the first one's public port is the stack's webhook URL."""
        if name not in self.stack.ports:
            self.stack.ports[name] = free_port()
        env = self.stack.service_env("extractor")
        env["TETHER_HTTP_PORT"] = str(self.stack.ports[name])
        if name == self.extractors[0]:
            env["TETHER_PUBLIC_PORT"] = str(self.stack.public_ports["extractor"])
        else:
            env["TETHER_PUBLIC_PORT"] = str(free_port())
        env["HOSTNAME"] = name  # the replica id in tenant status
        process = Process(
            name,
            self.stack._tether("extractor"),
            env,
            self.stack.run_dir / f"{name}.log",
            self.stack.ports[name],
        )
        self.stack.processes[name] = process
        process.start()
        return process

    def kill_extractor(self, name: str) -> None:
        """kill -9 one replica (its tenants move to the others after the session timeout)."""
        self.stack.processes[name].kill()
        self.stack.processes.pop(name)

    # -- progress -------------------------------------------------------------------------------

    def wait(self, timeout: float, tick: Callable[[float], None] = lambda _: None) -> float:
        """Until every tenant's records are linked or in review with nothing in flight (stable
        for 3 s); records per tenant when it first got there. Returns the seconds it took."""
        stable_since: float | None = None
        last_print = 0.0
        while True:
            elapsed = time.monotonic() - self.started_at
            states = mapperdb.tenant_sync_states(self.stack.database_dsn)
            done = 0
            for tenant, plan in self.plans.items():
                state = states.get(tenant, mapperdb.SyncState())
                settled = (
                    state.linked + state.in_review >= plan.total
                    and state.pending_commands == 0
                    and state.unproduced_outbox == 0
                )
                if settled:
                    done += 1
                    if plan.synced_after is None:
                        plan.synced_after = elapsed
                else:
                    plan.synced_after = None  # not yet, or not any more
            if time.monotonic() - last_print >= 5.0:
                linked = sum(s.linked for s in states.values())
                total = sum(p.total for p in self.plans.values())
                self.say(
                    f"  {elapsed:6.1f}s  tenants synced {done}/{len(self.plans)}  "
                    f"records linked {linked}/{total}"
                )
                last_print = time.monotonic()
            if done == len(self.plans):
                stable_since = stable_since or time.monotonic()
                if time.monotonic() - stable_since >= 3.0:
                    return elapsed
            else:
                stable_since = None
            for name, process in self.stack.processes.items():
                if not process.running:
                    raise RuntimeError(f"{name} stopped unexpectedly; see {process.log_path}")
            if elapsed > timeout:
                late = [t for t, p in self.plans.items() if p.synced_after is None]
                raise TimeoutError(
                    f"{len(late)} tenants not synced after {timeout:.0f}s: {', '.join(late[:10])}"
                )
            tick(elapsed)
            time.sleep(1.0)

    # -- checking -------------------------------------------------------------------------------

    def check(self, tenant: str) -> dict[str, Any]:
        """One tenant against its seed's exact expectations, read from both systems."""
        from services.demo.main import collect_records, expectation_misses

        plan = self.plans[tenant]
        with PowerOfficeSimulatorAdmin(
            PowerOfficeSimulators.admin_root(self.stack.poweroffice_url, tenant)
        ) as po:
            records = collect_records(po)
            po_counts = apicounts.poweroffice_counts(po.counters())
        wix = WixAdmin(WixSites.admin_root(self.stack.wix_url, tenant))
        try:
            contacts = wix.contacts()
            wix_counts = apicounts.wix_counts(wix.counters())
        finally:
            wix.close()
        dsn = self.stack.database_dsn
        summary = reconcile(
            records,
            contacts,
            {str(c["id"]) for c in plan.seeded.wix_contacts},
            mapperdb.links(dsn, tenant),
            mapperdb.review_records(dsn, tenant),
        )
        review = mapperdb.review_items(dsn, tenant)
        misses = expectation_misses(summary, review, plan.data.expectations)
        return {
            "tenant": tenant,
            "records": plan.total,
            "synced_after_seconds": plan.synced_after,
            "contacts_created": summary["contacts_created"],
            "contacts_matched": summary["contacts_matched"],
            "review_items": len(review),
            "duplicate_contacts": summary["duplicate_contacts"],
            "misses": misses,
            "api": {"poweroffice": po_counts, "wix": wix_counts},
        }

    def check_all(self) -> list[dict[str, Any]]:
        return [self.check(tenant) for tenant in self.plans]


def print_table(results: list[dict[str, Any]], say: Callable[[str], None]) -> None:
    say(
        f"  {'TENANT':<12} {'RECORDS':>7} {'SYNCED':>7} {'CREATED':>7} {'MATCHED':>7} "
        f"{'REVIEW':>6} {'DUPS':>4} {'429s':>5}  EXACT"
    )
    for row in results:
        throttled = sum(api["throttled_429"] for api in row["api"].values())
        synced = row["synced_after_seconds"]
        say(
            f"  {row['tenant']:<12} {row['records']:>7} "
            f"{(f'{synced:.1f}s' if synced is not None else '-'):>7} "
            f"{row['contacts_created']:>7} {row['contacts_matched']:>7} "
            f"{row['review_items']:>6} {row['duplicate_contacts']:>4} {throttled:>5}  "
            + ("yes" if not row["misses"] else "NO: " + "; ".join(row["misses"]))
        )


def demo(args: Any, run_dir: Path, bootstrap: str, dsn: str) -> int:
    """``tether demo --tenants N``: N tenants on one deployment, each checked exactly."""
    say = args.say if hasattr(args, "say") else print
    stack = Stack(
        bootstrap,
        dsn,
        run_dir,
        lift_limits=not args.real_limits,
        webhooks=not args.no_webhooks,
        simulator_tenants=args.tenants,
    )
    run = TenantsRun(
        stack,
        args.tenants,
        extractor_replicas=args.extractor_replicas,
        records=args.records_per_tenant,
        say=say,
    )
    say(
        f"Tether demo: {args.tenants} tenants on one deployment, {args.extractor_replicas} "
        f"extractor replica(s), limits {'real' if args.real_limits else 'lifted'}, logs in "
        f"{run_dir}"
    )
    try:
        stack.create_database()
        stack.start_simulators()
        run.seed()
        stack.provision_topics()
        run.register()
        say(
            f"registered {args.tenants} tenants: tether tenants list (TETHER_TOPIC_PREFIX="
            f"{stack.topic_prefix})"
        )
        run.start()
        say("services ready; initial sync of every tenant ...")
        seconds = run.wait(args.timeout)
        results = run.check_all()
        say(f"\n=== {args.tenants} tenants synced in {seconds:.1f}s ===")
        print_table(results, say)
        exact = sum(1 for row in results if not row["misses"])
        say(f"  tenants with exact expected counts: {exact}/{len(results)}")
        if args.report:
            args.report.write_text(json.dumps(results, indent=2, ensure_ascii=False))
            say(f"report written to {args.report}")
        if not args.exit_after_sync:
            say("Tether keeps running; Ctrl-C stops everything.")
            while all(p.running for p in stack.processes.values()):
                time.sleep(1)
        return 0 if exact == len(results) else 1
    except KeyboardInterrupt:
        return 0
    finally:
        say(f"stopped: {stack.stop()}")
        stack.drop_database()
